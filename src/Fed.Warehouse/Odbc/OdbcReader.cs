using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using static Fed.Warehouse.Odbc.OdbcNative;

namespace Fed.Warehouse.Odbc;

/// <summary>
/// Forward-only reader over one statement's result set. Each column of the current row is fetched
/// at most once with SQLGetData (in the C type of the first accessor that touches it) and cached,
/// so <see cref="IsNull"/> followed by a typed getter is fine. Doubles are read as SQL_C_DOUBLE,
/// strings as SQL_C_CHAR (UTF-8) with the SQLGetData loop for long values.
/// </summary>
public sealed unsafe class OdbcReader : IDisposable
{
    private enum Kind { Double, Int64, String, Bool, Decimal, Binary }

    private readonly OdbcConnection _connection;
    private nint _stmt;
    private OdbcParameters? _parameters;
    private readonly string[] _names;
    private readonly short[] _sqlTypes;
    private readonly object?[] _values;
    private readonly bool[] _fetched;
    private bool _onRow;
    private bool _done;

    internal OdbcReader(OdbcConnection connection, nint stmt, OdbcParameters parameters, bool noData)
    {
        _connection = connection;
        _stmt = stmt;
        _parameters = parameters;
        _done = noData;

        short cols = 0;
        if (!noData)
        {
            short rc = SQLNumResultCols(stmt, &cols);
            OdbcDiag.Check(rc, SQL_HANDLE_STMT, stmt, "SQLNumResultCols");
        }
        _names = new string[cols];
        _sqlTypes = new short[cols];
        _values = new object?[cols];
        _fetched = new bool[cols];
        for (int i = 0; i < cols; i++) Describe(i);
    }

    public int FieldCount => _names.Length;

    public string GetName(int ordinal) => _names[CheckOrdinal(ordinal)];

    /// <summary>The ODBC SQL data type the driver reported for the column (SQL_DOUBLE = 8, SQL_VARCHAR = 12, ...).</summary>
    public short GetSqlType(int ordinal) => _sqlTypes[CheckOrdinal(ordinal)];

    /// <summary>Column ordinal for a name (case-insensitive), or -1.</summary>
    public int GetOrdinal(string name) =>
        Array.FindIndex(_names, n => string.Equals(n, name, StringComparison.OrdinalIgnoreCase));

    /// <summary>Advances to the next row (SQLFetch); false at the end of the result set.</summary>
    public bool Read()
    {
        ObjectDisposedException.ThrowIf(_stmt == 0, this);
        Array.Clear(_values);
        Array.Clear(_fetched);
        _onRow = false;
        if (_done || _names.Length == 0) return false;
        short rc = SQLFetch(_stmt);
        if (rc == SQL_NO_DATA)
        {
            _done = true;
            SQLCloseCursor(_stmt);
            return false;
        }
        OdbcDiag.Check(rc, SQL_HANDLE_STMT, _stmt, "SQLFetch");
        _onRow = true;
        return true;
    }

    public bool IsNull(int ordinal) => Value(ordinal, NaturalKind(ordinal)) is null;

    public double GetDouble(int ordinal) => Value(ordinal, Kind.Double) switch
    {
        null => throw NullColumn(ordinal),
        double d => d,
        long l => l,
        bool b => b ? 1 : 0,
        decimal m => (double)m,
        string s => double.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture),
        var o => throw BadCast(ordinal, o, "double"),
    };

    public long GetInt64(int ordinal) => Value(ordinal, Kind.Int64) switch
    {
        null => throw NullColumn(ordinal),
        long l => l,
        bool b => b ? 1 : 0,
        double d when d == Math.Floor(d) && d >= long.MinValue && d < 9.2233720368547758E18 => (long)d,
        decimal m when m == decimal.Truncate(m) => (long)m,
        string s => long.Parse(s, NumberStyles.Integer, CultureInfo.InvariantCulture),
        var o => throw BadCast(ordinal, o, "long"),
    };

    public string GetString(int ordinal) => Value(ordinal, Kind.String) switch
    {
        null => throw NullColumn(ordinal),
        string s => s,
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        var o => throw BadCast(ordinal, o, "string"),
    };

    /// <summary>
    /// The value in the column's natural .NET type: null, double (DOUBLE/FLOAT/REAL), long (integer types),
    /// bool (BIT), decimal (NUMERIC/DECIMAL), byte[] (binary types) or string (everything else).
    /// </summary>
    public object? GetValue(int ordinal) => Value(ordinal, NaturalKind(ordinal));

    private object? Value(int ordinal, Kind kind)
    {
        CheckOrdinal(ordinal);
        ObjectDisposedException.ThrowIf(_stmt == 0, this);
        if (!_onRow) throw new InvalidOperationException("No current row: call Read() and check that it returned true.");
        if (!_fetched[ordinal])
        {
            _values[ordinal] = Fetch(ordinal, kind);
            _fetched[ordinal] = true;
        }
        return _values[ordinal];
    }

    private Kind NaturalKind(int ordinal) => _sqlTypes[CheckOrdinal(ordinal)] switch
    {
        SQL_DOUBLE or SQL_FLOAT or SQL_REAL => Kind.Double,
        SQL_INTEGER or SQL_SMALLINT or SQL_TINYINT or SQL_BIGINT => Kind.Int64,
        SQL_BIT => Kind.Bool,
        SQL_NUMERIC or SQL_DECIMAL => Kind.Decimal,
        SQL_BINARY or SQL_VARBINARY or SQL_LONGVARBINARY => Kind.Binary,
        _ => Kind.String,
    };

    private object? Fetch(int ordinal, Kind kind)
    {
        ushort col = (ushort)(ordinal + 1);
        nint ind;
        short rc;
        switch (kind)
        {
            case Kind.Double:
            {
                double d = 0;
                rc = SQLGetData(_stmt, col, SQL_C_DOUBLE, &d, sizeof(double), &ind);
                CheckGetData(rc, ordinal, "SQL_C_DOUBLE");
                return ind == SQL_NULL_DATA ? null : d;
            }
            case Kind.Int64:
            {
                long l = 0;
                rc = SQLGetData(_stmt, col, SQL_C_SBIGINT, &l, sizeof(long), &ind);
                CheckGetData(rc, ordinal, "SQL_C_SBIGINT");
                return ind == SQL_NULL_DATA ? null : l;
            }
            case Kind.Bool:
            {
                byte b = 0;
                rc = SQLGetData(_stmt, col, SQL_C_BIT, &b, 1, &ind);
                CheckGetData(rc, ordinal, "SQL_C_BIT");
                return ind == SQL_NULL_DATA ? null : b != 0;
            }
            case Kind.Decimal:
            {
                byte[]? text = FetchChunks(col, ordinal, SQL_C_CHAR);
                if (text is null) return null;
                string s = Encoding.UTF8.GetString(text);
                return decimal.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var m) ? m : s;
            }
            case Kind.Binary:
                return FetchChunks(col, ordinal, SQL_C_BINARY);
            default:
            {
                byte[]? text = FetchChunks(col, ordinal, SQL_C_CHAR);
                return text is null ? null : Encoding.UTF8.GetString(text);
            }
        }
    }

    /// <summary>
    /// The SQLGetData loop for variable-length data: repeat while the driver reports truncation
    /// (SQL_SUCCESS_WITH_INFO), concatenating the chunks; SQL_C_CHAR chunks carry a NUL terminator.
    /// Returns null for SQL NULL. The bytes are decoded only once, so UTF-8 sequences split across chunks survive.
    /// </summary>
    private byte[]? FetchChunks(ushort col, int ordinal, short cType)
    {
        int terminator = cType == SQL_C_CHAR ? 1 : 0;
        int size = 4096;
        var result = new List<byte>();
        byte[]? whole = null;
        bool first = true;
        while (true)
        {
            byte[] buf = new byte[size];
            nint ind;
            short rc;
            fixed (byte* p = buf)
                rc = SQLGetData(_stmt, col, cType, p, size, &ind);
            if (rc == SQL_NO_DATA)
            {
                if (first) throw new InvalidOperationException(
                    $"Column {ordinal} ('{_names[ordinal]}') was already read for this row; the driver returns each column once.");
                break;
            }
            CheckGetData(rc, ordinal, cType == SQL_C_CHAR ? "SQL_C_CHAR" : "SQL_C_BINARY");
            if (ind == SQL_NULL_DATA) return null;

            int capacity = size - terminator;
            int got;
            bool more;
            if (ind != SQL_NO_TOTAL && ind <= capacity)
            {
                got = (int)ind;
                more = false;
            }
            else
            {
                // Truncated. A text chunk ends at its NUL (a driver may stop short of a split UTF-8 character).
                got = capacity;
                if (terminator == 1)
                {
                    int nul = Array.IndexOf(buf, (byte)0, 0, capacity);
                    if (nul >= 0) got = nul;
                }
                more = true;
            }

            if (first && !more)
            {
                whole = buf.AsSpan(0, got).ToArray();
                break;
            }
            result.AddRange(buf.AsSpan(0, got));
            first = false;
            if (!more) break;
            // The driver told us what remains (total length before this chunk): size the next buffer for it.
            size = ind != SQL_NO_TOTAL && ind > got
                ? (int)Math.Min(ind - got + terminator, 64 * 1024 * 1024)
                : Math.Min(size * 2, 64 * 1024 * 1024);
            size = Math.Max(size, 256);
        }
        return whole ?? CollectionsMarshal.AsSpan(result).ToArray();
    }

    private void CheckGetData(short rc, int ordinal, string cType) =>
        OdbcDiag.Check(rc, SQL_HANDLE_STMT, _stmt, $"SQLGetData ({cType})",
            $"Column {ordinal} ('{_names[ordinal]}')");

    private void Describe(int i)
    {
        ushort col = (ushort)(i + 1);
        byte* name = stackalloc byte[512];
        short nameLen, dataType, digits, nullable;
        nuint size;
        short rc = SQLDescribeCol(_stmt, col, name, 512, &nameLen, &dataType, &size, &digits, &nullable);
        OdbcDiag.Check(rc, SQL_HANDLE_STMT, _stmt, "SQLDescribeCol", $"Column {i}");
        int len = Math.Clamp((int)nameLen, 0, 511);
        _names[i] = Encoding.UTF8.GetString(name, len);
        _sqlTypes[i] = dataType;
    }

    private int CheckOrdinal(int ordinal)
    {
        if ((uint)ordinal >= (uint)_names.Length)
            throw new ArgumentOutOfRangeException(nameof(ordinal), ordinal, $"The result has {_names.Length} column(s); ordinals are 0-based.");
        return ordinal;
    }

    private InvalidOperationException NullColumn(int ordinal) =>
        new($"Column {ordinal} ('{_names[ordinal]}') is NULL; check IsNull({ordinal}) or use GetValue.");

    private InvalidCastException BadCast(int ordinal, object value, string target) =>
        new($"Column {ordinal} ('{_names[ordinal]}') holds {value.GetType().Name}, which cannot be read as {target}.");

    /// <summary>Frees the statement handle, then the parameter buffers it pointed at.</summary>
    public void Dispose()
    {
        if (_stmt == 0) return;
        _connection.FreeStatement(_stmt);
        _stmt = 0;
        _parameters?.Dispose();
        _parameters = null;
        _connection.ReaderClosed(this);
    }
}
