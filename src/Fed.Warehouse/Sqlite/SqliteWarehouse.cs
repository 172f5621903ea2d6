using System.Text;
using Fed.Core;
using System.Runtime.InteropServices;
using Microsoft.Data.Sqlite;
using SQLitePCL;

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

    /// <summary>Feature-table scans read through SQLite's C API directly (see <see cref="ScanReader"/>).</summary>
    public IRowReader Scan(string sql, params object?[] args) => new ScanReader(this, sql, args);

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

    /// <summary>
    /// A scan through SQLite's C API on the warehouse connection: one prepared statement, values read with
    /// sqlite3_column_* on the raw statement pointer, no boxing. Those calls never call back into .NET; they take the
    /// connection's mutex, which another thread holds only for the length of one SQLite call (the local engine's writer
    /// inserting on the same connection) and releases before returning, so a wait is short and cannot deadlock: the GC
    /// transition is skipped. Millions of rows x dozens of columns is where Microsoft.Data.Sqlite's per-value cost shows.
    /// </summary>
    sealed unsafe class ScanReader : IRowReader
    {
        readonly sqlite3_stmt _stmt;
        readonly IntPtr _h;
        readonly string _sql;
        readonly sqlite3 _db;

        public ScanReader(SqliteWarehouse owner, string sql, object?[] args)
        {
            _sql = sql;
            _db = owner._connection.Handle ?? throw new InvalidOperationException("the SQLite connection is closed");
            Check(raw.sqlite3_prepare_v2(_db, sql, out _stmt));
            try
            {
                if (raw.sqlite3_bind_parameter_count(_stmt) != args.Length)
                    throw new ArgumentException($"statement has {raw.sqlite3_bind_parameter_count(_stmt)} placeholders, {args.Length} values given");
                for (var i = 0; i < args.Length; i++)
                    Check(args[i] switch
                    {
                        null or DBNull => raw.sqlite3_bind_null(_stmt, i + 1),
                        string t => raw.sqlite3_bind_text(_stmt, i + 1, t),
                        int v => raw.sqlite3_bind_int64(_stmt, i + 1, v),
                        long v => raw.sqlite3_bind_int64(_stmt, i + 1, v),
                        double v => raw.sqlite3_bind_double(_stmt, i + 1, v),
                        var other => throw new ArgumentException($"cannot bind a {other.GetType().Name} in a scan"),
                    });
            }
            catch
            {
                _stmt.Dispose();
                throw;
            }
            _h = _stmt.DangerousGetHandle();
        }

        void Check(int rc)
        {
            if (rc != raw.SQLITE_OK) throw new FedFailureException($"SQLite error {rc}: {raw.sqlite3_errmsg(_db).utf8_to_string()} (in: {(_sql.Length > 200 ? _sql[..200] + "..." : _sql)})");
        }

        bool _done;

        public bool Read()
        {
            // Stepping a finished statement would silently restart the query: stay at the end, like a data reader.
            if (_done) return false;
            var rc = raw.sqlite3_step(_stmt);
            if (rc == raw.SQLITE_ROW) return true;
            _done = true;
            if (rc != raw.SQLITE_DONE) Check(rc);
            return false;
        }

        public int FieldCount => raw.sqlite3_column_count(_stmt);
        public string GetName(int i) => raw.sqlite3_column_name(_stmt, i).utf8_to_string();
        public bool IsNull(int i) => Native.sqlite3_column_type(_h, i) == raw.SQLITE_NULL;
        public double GetDouble(int i) => Native.sqlite3_column_double(_h, i);
        public long GetInt64(int i) => Native.sqlite3_column_int64(_h, i);

        public string GetString(int i)
        {
            var text = Native.sqlite3_column_text(_h, i);
            if (text == null) throw new InvalidCastException($"column {i} is NULL");
            return Encoding.UTF8.GetString(text, Native.sqlite3_column_bytes(_h, i));
        }

        public void GetDoubles(int first, Span<double> values)
        {
            // Each column call takes the connection's mutex, so ask for the type only when the value reads as 0.0
            // (what NULL reads as): one call per value instead of two.
            for (var i = 0; i < values.Length; i++)
            {
                var v = Native.sqlite3_column_double(_h, first + i);
                values[i] = v == 0 && Native.sqlite3_column_type(_h, first + i) == raw.SQLITE_NULL ? double.NaN : v;
            }
        }

        public void Dispose() => _stmt.Dispose();
    }

    /// <summary>The column accessors of the bundled e_sqlite3 library (the one SQLitePCLRaw loads).</summary>
    static unsafe class Native
    {
        const string Lib = "e_sqlite3";
        [DllImport(Lib), SuppressGCTransition] public static extern int sqlite3_column_type(IntPtr stmt, int i);
        [DllImport(Lib), SuppressGCTransition] public static extern double sqlite3_column_double(IntPtr stmt, int i);
        [DllImport(Lib), SuppressGCTransition] public static extern long sqlite3_column_int64(IntPtr stmt, int i);
        [DllImport(Lib), SuppressGCTransition] public static extern byte* sqlite3_column_text(IntPtr stmt, int i);
        [DllImport(Lib), SuppressGCTransition] public static extern int sqlite3_column_bytes(IntPtr stmt, int i);
    }
}
