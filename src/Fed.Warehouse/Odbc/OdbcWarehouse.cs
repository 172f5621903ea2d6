using Fed.Core;

namespace Fed.Warehouse.Odbc;

/// <summary>
/// Any ODBC data source as a Fed warehouse: PostgreSQL (psqlODBC), SQLite (SQLite3 ODBC), or a Hive / Spark Thrift
/// Server DSN. The dialect is given, not guessed: it decides quoting, types and whether transactions exist.
/// </summary>
public sealed class OdbcWarehouse : IWarehouse
{
    readonly OdbcConnection _connection;

    public OdbcWarehouse(string connectionString, SqlDialect dialect)
    {
        // The SQLite3 driver reads doubles through 15-digit text; its dialect variant reads them exactly.
        Dialect = dialect == SqlDialect.Sqlite ? SqlDialect.SqliteOverOdbc : dialect;
        Description = $"odbc:{dialect.Name}:{OdbcConnection.Redact(connectionString)}";
        try { _connection = OdbcConnection.Open(connectionString); }
        catch (OdbcException e) { throw new FedFailureException($"cannot connect to {Description}: {e.Message}", e); }
    }

    public SqlDialect Dialect { get; }
    public string Description { get; }

    public int Execute(string sql, params object?[] args)
    {
        try { return _connection.Execute(sql, args); }
        catch (OdbcException e) { throw new FedFailureException($"{Description}: {e.Message}", e); }
    }

    public IRowReader Query(string sql, params object?[] args)
    {
        try { return new Reader(_connection.Query(sql, args)); }
        catch (OdbcException e) { throw new FedFailureException($"{Description}: {e.Message}", e); }
    }

    public IWarehouseTransaction BeginTransaction()
    {
        if (!Dialect.SupportsTransactions) throw new InvalidOperationException($"{Dialect.Name} has no transactions");
        _connection.BeginTransaction();
        return new Tx(_connection);
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

    public void Dispose() => _connection.Dispose();

    sealed class Tx(OdbcConnection c) : IWarehouseTransaction
    {
        bool _done;
        public void Commit() { c.Commit(); _done = true; }
        public void Dispose() { if (!_done) c.Rollback(); }
    }

    sealed class Reader(OdbcReader r) : IRowReader
    {
        public bool Read() => r.Read();
        public int FieldCount => r.FieldCount;
        public string GetName(int i) => r.GetName(i);
        public bool IsNull(int i) => r.IsNull(i);
        public double GetDouble(int i) => r.GetDouble(i);
        public long GetInt64(int i) => r.GetInt64(i);
        public string GetString(int i) => r.GetString(i);
        public void Dispose() => r.Dispose();
    }
}
