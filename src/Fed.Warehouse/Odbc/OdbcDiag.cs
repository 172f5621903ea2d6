using System.Text;
using static Fed.Warehouse.Odbc.OdbcNative;

namespace Fed.Warehouse.Odbc;

internal static unsafe class OdbcDiag
{
    /// <summary>Reads all diagnostic records for a handle (SQLGetDiagRec, narrow, UTF-8).</summary>
    public static List<OdbcDiagnostic> Read(short handleType, nint handle)
    {
        var list = new List<OdbcDiagnostic>();
        if (handle == 0) return list;
        byte* state = stackalloc byte[6];
        for (short rec = 1; rec <= 32; rec++)
        {
            int native;
            short textLength;
            int capacity = 1024;
            while (true)
            {
                byte[] msg = new byte[capacity];
                short rc;
                fixed (byte* m = msg)
                    rc = SQLGetDiagRec(handleType, handle, rec, state, &native, m, (short)capacity, &textLength);
                if (rc == SQL_NO_DATA || !Succeeded(rc)) return list;
                if (textLength >= capacity && capacity < 16384)
                {
                    capacity = Math.Min(16384, textLength + 1);
                    continue;
                }
                int len = Math.Clamp((int)textLength, 0, capacity - 1);
                list.Add(new OdbcDiagnostic(
                    Encoding.ASCII.GetString(state, 5),
                    native,
                    Encoding.UTF8.GetString(msg, 0, len)));
                break;
            }
        }
        return list;
    }

    /// <summary>Throws <see cref="OdbcException"/> unless <paramref name="rc"/> is SQL_SUCCESS or SQL_SUCCESS_WITH_INFO.</summary>
    public static void Check(short rc, short handleType, nint handle, string operation, string? context = null)
    {
        if (Succeeded(rc)) return;
        throw new OdbcException(operation, rc, Read(handleType, handle), context);
    }
}
