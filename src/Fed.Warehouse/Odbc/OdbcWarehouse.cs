using System.Data;
using System.Globalization;
using Fed.Core;
using Ado = System.Data.Odbc;

namespace Fed.Warehouse.Odbc;

/// <summary>
/// Any ODBC data source as a Fed warehouse, through System.Data.Odbc (ADO.NET over the unixODBC driver manager):
/// PostgreSQL (psqlODBC), SQLite (SQLite3 ODBC), or a Hive / Spark Thrift Server DSN. The dialect is given, not
/// guessed: it decides quoting, types and whether transactions exist. Values are bound as typed '?' parameters
/// (doubles as SQL_DOUBLE, so no digits are lost); statements are prepared once per SQL text and reused.
/// </summary>
public sealed partial class OdbcWarehouse : IWarehouse
{
    [System.Text.RegularExpressions.GeneratedRegex(@"(?i)\b(pwd|password)\s*=\s*(\{[^}]*\}|[^;]*)")]
    private static partial System.Text.RegularExpressions.Regex PasswordPattern();

    /// <summary>Text with any Pwd=/Password= value replaced by ***: connection strings and driver messages that echo them.</summary>
    public static string Redact(string text) => PasswordPattern().Replace(text, "$1=***");

    readonly Ado.OdbcConnection _connection;
    readonly Dictionary<string, Ado.OdbcCommand> _commands = new(StringComparer.Ordinal);
    Ado.OdbcTransaction? _tx;

    public OdbcWarehouse(string connectionString, SqlDialect dialect)
    {
        // The SQLite3 driver reads doubles through 15-digit text; its dialect variant reads them exactly.
        Dialect = dialect == SqlDialect.Sqlite ? SqlDialect.SqliteOverOdbc : dialect;
        Description = $"odbc:{dialect.Name}:{Redact(connectionString)}";
        _connection = new Ado.OdbcConnection(connectionString);
        try { _connection.Open(); }
        catch (Ado.OdbcException e) { _connection.Dispose(); throw new FedFailureException($"cannot connect to {Description}: {Redact(e.Message)}", e); }
    }

    public SqlDialect Dialect { get; }
    public string Description { get; }

    Ado.OdbcCommand Command(string sql, object?[] args)
    {
        if (!_commands.TryGetValue(sql, out var cmd))
        {
            cmd = _connection.CreateCommand();
            cmd.CommandText = sql;
            _commands[sql] = cmd;
        }
        cmd.Transaction = _tx;
        if (cmd.Parameters.Count != args.Length)
        {
            cmd.Parameters.Clear();
            for (var i = 0; i < args.Length; i++) cmd.Parameters.Add(new Ado.OdbcParameter { ParameterName = "p" + i });
        }
        for (var i = 0; i < args.Length; i++) Bind(cmd.Parameters[i], args[i]);
        return cmd;
    }

    static void Bind(Ado.OdbcParameter p, object? value)
    {
        switch (value)
        {
            case null or DBNull: p.OdbcType = Ado.OdbcType.VarChar; p.Value = DBNull.Value; break;
            case string s: p.OdbcType = Ado.OdbcType.VarChar; p.Value = s; p.Size = Math.Max(1, s.Length); break;
            case double d: p.OdbcType = Ado.OdbcType.Double; p.Value = d; break;
            case int n: p.OdbcType = Ado.OdbcType.Int; p.Value = n; break;
            case long l: p.OdbcType = Ado.OdbcType.BigInt; p.Value = l; break;
            case bool b: p.OdbcType = Ado.OdbcType.Bit; p.Value = b; break;
            default: throw new ArgumentException($"unsupported parameter type {value.GetType().Name}");
        }
    }

    public int Execute(string sql, params object?[] args)
    {
        try { return Command(sql, args).ExecuteNonQuery(); }
        catch (Ado.OdbcException e) { throw new FedFailureException($"{Description}: {e.Message}", e); }
    }

    public IRowReader Query(string sql, params object?[] args)
    {
        try { return new Reader(Command(sql, args).ExecuteReader()); }
        catch (Ado.OdbcException e) { throw new FedFailureException($"{Description}: {e.Message}", e); }
    }

    public IWarehouseTransaction BeginTransaction()
    {
        if (!Dialect.SupportsTransactions) throw new InvalidOperationException($"{Dialect.Name} has no transactions");
        if (_tx != null) throw new InvalidOperationException("a transaction is already open on this warehouse");
        _tx = _connection.BeginTransaction();
        return new Tx(this);
    }

    public bool TableExists(string table)
    {
        Identifiers.SqlName(table, "table name");
        var sql = Dialect.Name switch
        {
            "postgres" => "SELECT 1 FROM information_schema.tables WHERE table_name = ? AND table_schema = current_schema()",
            "sqlite" => "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
            _ => null,
        };
        if (sql is null)
        {
            // Hive/Spark: SHOW TABLES LIKE takes a pattern, not a parameter; the name was checked above.
            using var show = Query($"SHOW TABLES LIKE '{table}'");
            return show.Read();
        }
        using var r = Query(sql, table);
        return r.Read();
    }

    public void Dispose()
    {
        foreach (var c in _commands.Values) c.Dispose();
        _tx?.Dispose();
        _connection.Dispose();
    }

    sealed class Tx(OdbcWarehouse w) : IWarehouseTransaction
    {
        bool _done;
        public void Commit()
        {
            try { w._tx!.Commit(); }
            catch (Ado.OdbcException e) { throw new FedFailureException($"{w.Description}: commit: {e.Message}", e); }
            finally { End(); }
            _done = true;
        }

        void End() { w._tx?.Dispose(); w._tx = null; }

        public void Dispose()
        {
            if (_done || w._tx is null) return;
            try { w._tx.Rollback(); } finally { End(); }
        }
    }

    /// <summary>Values as the natural .NET type the driver reports, converted the way Fed reads them (text the SQLite3
    /// driver returns for quote() parses back to the exact double).</summary>
    sealed class Reader(Ado.OdbcDataReader r) : IRowReader
    {
        public bool Read() => r.Read();
        public int FieldCount => r.FieldCount;
        public string GetName(int i) => r.GetName(i);
        public bool IsNull(int i) => Value(i) is DBNull;

        // GetValue maps the column's SQL type first, and System.Data.Odbc knows no type for some drivers' columns
        // (the SQLite3 driver reports BIGINT as -25): then the typed getter asks the driver to convert.
        object Value(int i)
        {
            try { return r.GetValue(i); }
            catch (ArgumentException)
            {
                try { return r.GetString(i); }
                catch (Exception e) when (e is InvalidCastException or System.Data.SqlTypes.SqlNullValueException) { return DBNull.Value; }
            }
        }

        public double GetDouble(int i) => Value(i) switch
        {
            double d => d,
            float f => f,
            string s => double.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture),
            DBNull => throw Null(i),
            var o => Convert.ToDouble(o, CultureInfo.InvariantCulture),
        };

        public long GetInt64(int i) => Value(i) switch
        {
            long l => l,
            int n => n,
            short s => s,
            string s => long.Parse(s, NumberStyles.Integer, CultureInfo.InvariantCulture),
            double d when d == Math.Floor(d) => (long)d,
            decimal m when m == decimal.Truncate(m) => (long)m,
            DBNull => throw Null(i),
            var o => Convert.ToInt64(o, CultureInfo.InvariantCulture),
        };

        public string GetString(int i) => Value(i) switch
        {
            string s => s,
            double d => d.ToString("R", CultureInfo.InvariantCulture),
            DBNull => throw Null(i),
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            var o => o.ToString() ?? "",
        };

        InvalidOperationException Null(int i) => new($"column {i} ({r.GetName(i)}) is NULL");
        public void Dispose() => r.Dispose();
    }
}
