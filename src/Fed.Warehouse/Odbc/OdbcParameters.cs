using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using static Fed.Warehouse.Odbc.OdbcNative;

namespace Fed.Warehouse.Odbc;

/// <summary>
/// Unmanaged buffers for the values and length/indicator words of bound parameters.
/// SQLBindParameter stores the pointers, and drivers read them at execute time (and, for SQLite,
/// possibly while stepping the cursor), so the owner frees this only after the statement handle is freed.
/// </summary>
internal sealed unsafe class OdbcParameters : IDisposable
{
    private readonly List<nint> _blocks = new();

    private OdbcParameters() { }

    public static OdbcParameters Bind(nint stmt, IReadOnlyList<object?> args)
    {
        var p = new OdbcParameters();
        try
        {
            for (int i = 0; i < args.Count; i++)
                p.BindOne(stmt, (ushort)(i + 1), args[i]);
            return p;
        }
        catch
        {
            p.Dispose();
            throw;
        }
    }

    private void* Alloc(nuint bytes)
    {
        void* ptr = NativeMemory.AllocZeroed(bytes == 0 ? 1 : bytes);
        _blocks.Add((nint)ptr);
        return ptr;
    }

    private void BindOne(nint stmt, ushort number, object? value)
    {
        nint* ind = (nint*)Alloc((nuint)sizeof(nint));
        short cType, sqlType;
        nuint columnSize;
        short digits = 0;
        void* data;
        nint bufferLength;

        switch (value)
        {
            case null:
            case DBNull:
                cType = SQL_C_CHAR; sqlType = SQL_VARCHAR; columnSize = 1;
                data = null; bufferLength = 0; *ind = SQL_NULL_DATA;
                break;
            case string s:
                BindText(s, out data, out bufferLength, out columnSize, out sqlType);
                cType = SQL_C_CHAR; *ind = bufferLength;
                break;
            case long l:
                data = Alloc(8); *(long*)data = l;
                cType = SQL_C_SBIGINT; sqlType = SQL_BIGINT; columnSize = 19; bufferLength = 8; *ind = 8;
                break;
            case int n:
                data = Alloc(4); *(int*)data = n;
                cType = SQL_C_SLONG; sqlType = SQL_INTEGER; columnSize = 10; bufferLength = 4; *ind = 4;
                break;
            case double d:
                data = Alloc(8); *(double*)data = d;
                cType = SQL_C_DOUBLE; sqlType = SQL_DOUBLE; columnSize = 15; bufferLength = 8; *ind = 8;
                break;
            case bool b:
                data = Alloc(1); *(byte*)data = b ? (byte)1 : (byte)0;
                cType = SQL_C_BIT; sqlType = SQL_BIT; columnSize = 1; bufferLength = 1; *ind = 1;
                break;
            case DateTime dt:
                BindText(FormatDateTime(dt), out data, out bufferLength, out columnSize, out sqlType);
                cType = SQL_C_CHAR; *ind = bufferLength;
                break;
            default:
                throw new ArgumentException(
                    $"ODBC parameter {number} has unsupported type {value.GetType().FullName}; " +
                    "supported: null, string, long, int, double, bool, DateTime", nameof(value));
        }

        short rc = SQLBindParameter(stmt, number, SQL_PARAM_INPUT, cType, sqlType, columnSize, digits, data, bufferLength, ind);
        OdbcDiag.Check(rc, SQL_HANDLE_STMT, stmt, "SQLBindParameter (bind parameter)", $"Parameter {number} ({value?.GetType().Name ?? "null"})");
    }

    private void BindText(string s, out void* data, out nint bufferLength, out nuint columnSize, out short sqlType)
    {
        int n = Encoding.UTF8.GetByteCount(s);
        byte* buf = (byte*)Alloc((nuint)n + 1);
        if (n > 0)
        {
            fixed (char* c = s)
                Encoding.UTF8.GetBytes(c, s.Length, buf, n);
        }
        buf[n] = 0;
        data = buf;
        bufferLength = n;
        columnSize = (nuint)Math.Max(n, 1);
        sqlType = n > 4000 ? SQL_LONGVARCHAR : SQL_VARCHAR;
    }

    /// <summary>ISO 8601, e.g. 2024-05-01T13:45:10.1234567 (fraction omitted when zero, 'Z' for UTC).</summary>
    internal static string FormatDateTime(DateTime dt)
    {
        string s = dt.ToString("yyyy-MM-dd'T'HH:mm:ss.FFFFFFF", CultureInfo.InvariantCulture);
        return dt.Kind == DateTimeKind.Utc ? s + "Z" : s;
    }

    public void Dispose()
    {
        foreach (nint b in _blocks) NativeMemory.Free((void*)b);
        _blocks.Clear();
    }
}
