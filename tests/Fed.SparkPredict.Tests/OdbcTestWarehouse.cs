using Fed.Warehouse;
using Fed.Warehouse.Odbc;

namespace Fed.SparkPredict.Tests;

/// <summary>
/// Test-only IWarehouse over the ODBC binding (branch odbc), until its OdbcWarehouse lands in WarehouseFactory.
/// The engines only see IWarehouse, so they run unchanged on it. Remove when WarehouseFactory opens odbc: specs.
/// </summary>
sealed class OdbcTestWarehouse(string connectionString, SqlDialect dialect) : IWarehouse
{
    readonly OdbcConnection _c = OdbcConnection.Open(connectionString);

    public static IWarehouse Open(string connectionString, SqlDialect dialect) =>
        WarehouseFactory.OdbcOpener is null ? new OdbcTestWarehouse(connectionString, dialect)
            : WarehouseFactory.Open($"odbc:dialect={dialect.Name};{connectionString}");

    public SqlDialect Dialect => dialect;
    public string Description => "odbc:" + dialect.Name;
    public int Execute(string sql, params object?[] args) => _c.Execute(sql, args);
    public IRowReader Query(string sql, params object?[] args) => new Reader(_c.Query(sql, args));
    public IWarehouseTransaction BeginTransaction() { _c.BeginTransaction(); return new Tx(_c); }
    public bool TableExists(string table)
    {
        using var r = _c.Query("SELECT 1 FROM information_schema.tables WHERE table_name = ?", [table]);
        return r.Read();
    }
    public void Dispose() => _c.Dispose();

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
