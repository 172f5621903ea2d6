using System.Text;
using Fed.Core;
using Microsoft.Data.Sqlite;

namespace Fed.Warehouse.Sqlite;

/// <summary>
/// The embedded warehouse: one SQLite file, the default, so Fed runs on one machine with nothing installed.
/// Statements are prepared once and cached by text (bulk writes rebind the same command).
/// </summary>
public sealed class SqliteWarehouse : IWarehouse
{
    static SqliteWarehouse() => SQLitePCL.Batteries_V2.Init();

    readonly SqliteConnection _connection;
    readonly Dictionary<string, SqliteCommand> _prepared = new(StringComparer.Ordinal);
    SqliteTransaction? _transaction;

    public SqliteWarehouse(string path)
    {
        var full = Path.GetFullPath(path);
        Description = full;
        try
        {
            var dir = Path.GetDirectoryName(full);
            if (dir != null) Directory.CreateDirectory(dir);
            _connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = full, Pooling = false }.ToString());
            _connection.Open();
            using var pragma = _connection.CreateCommand();
            // WAL lets readers (a lookup, a report) run while a batch job writes.
            pragma.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;";
            pragma.ExecuteNonQuery();
        }
        catch (SqliteException e)
        {
            throw new FedFailureException($"cannot open the SQLite warehouse {full}: {e.Message}", e);
        }
    }

    public SqlDialect Dialect => SqlDialect.Sqlite;
    public string Description { get; }
    public SqliteConnection Connection => _connection;

    public int Execute(string sql, params object?[] args)
    {
        try { return Command(sql, args).ExecuteNonQuery(); }
        catch (SqliteException e) { throw Wrap(e, sql); }
    }

    public IRowReader Query(string sql, params object?[] args)
    {
        try { return new Reader(Command(sql, args).ExecuteReader()); }
        catch (SqliteException e) { throw Wrap(e, sql); }
    }

    public IWarehouseTransaction BeginTransaction()
    {
        if (_transaction != null) throw new InvalidOperationException("a transaction is already open on this warehouse");
        _transaction = _connection.BeginTransaction();
        foreach (var c in _prepared.Values) c.Transaction = _transaction;
        return new Tx(this);
    }

    public bool TableExists(string table)
    {
        using var r = Query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", Identifiers.SqlName(table, "table name"));
        return r.Read();
    }

    SqliteCommand Command(string sql, object?[] args)
    {
        if (!_prepared.TryGetValue(sql, out var cmd))
        {
            cmd = _connection.CreateCommand();
            cmd.CommandText = Positional(sql, out var count);
            for (var i = 0; i < count; i++) cmd.Parameters.Add(new SqliteParameter("@p" + i, null));
            cmd.Transaction = _transaction;
            if (_prepared.Count > 256) ClearPrepared();
            _prepared[sql] = cmd;
        }
        if (cmd.Parameters.Count != args.Length)
            throw new ArgumentException($"statement has {cmd.Parameters.Count} placeholders, {args.Length} values given");
        for (var i = 0; i < args.Length; i++) cmd.Parameters[i].Value = args[i] ?? DBNull.Value;
        return cmd;
    }

    void ClearPrepared()
    {
        foreach (var c in _prepared.Values) c.Dispose();
        _prepared.Clear();
    }

    /// <summary>Microsoft.Data.Sqlite binds by name: turn each '?' outside quotes into @pN.</summary>
    static string Positional(string sql, out int count)
    {
        var sb = new StringBuilder(sql.Length + 16);
        count = 0;
        char quote = '\0';
        foreach (var ch in sql)
        {
            if (quote != '\0') { if (ch == quote) quote = '\0'; sb.Append(ch); }
            else if (ch is '\'' or '"' or '`') { quote = ch; sb.Append(ch); }
            else if (ch == '?') sb.Append("@p").Append(count++);
            else sb.Append(ch);
        }
        return sb.ToString();
    }

    static FedFailureException Wrap(SqliteException e, string sql) =>
        new($"SQLite error {e.SqliteErrorCode}: {e.Message} (in: {(sql.Length > 200 ? sql[..200] + "..." : sql)})", e);

    public void Dispose()
    {
        _transaction?.Dispose();
        ClearPrepared();
        _connection.Dispose();
    }

    sealed class Tx(SqliteWarehouse owner) : IWarehouseTransaction
    {
        bool _done;
        public void Commit()
        {
            owner._transaction!.Commit();
            End();
        }

        public void Dispose()
        {
            if (!_done) { owner._transaction?.Rollback(); End(); }
        }

        void End()
        {
            _done = true;
            owner._transaction?.Dispose();
            owner._transaction = null;
            foreach (var c in owner._prepared.Values) c.Transaction = null;
        }
    }

    sealed class Reader(SqliteDataReader r) : IRowReader
    {
        public bool Read() => r.Read();
        public int FieldCount => r.FieldCount;
        public string GetName(int i) => r.GetName(i);
        public bool IsNull(int i) => r.IsDBNull(i);
        public double GetDouble(int i) => r.GetDouble(i);
        public long GetInt64(int i) => r.GetInt64(i);
        public string GetString(int i) => r.GetString(i);
        public void Dispose() => r.Dispose();
    }
}
