using System.Text;
using System.Text.RegularExpressions;
using static Fed.Warehouse.Odbc.OdbcNative;

namespace Fed.Warehouse.Odbc;

/// <summary>
/// A connection through the unixODBC driver manager. Not thread-safe: use one connection per thread.
/// SQL text is passed as-is; values always travel as <c>?</c> positional parameters.
/// </summary>
public sealed unsafe partial class OdbcConnection : IDisposable
{
    private nint _env;
    private nint _dbc;
    private readonly HashSet<OdbcReader> _readers = new();
    private int _openStatements;

    private OdbcConnection(nint env, nint dbc)
    {
        _env = env;
        _dbc = dbc;
    }

    /// <summary>True between <see cref="BeginTransaction"/> and <see cref="Commit"/>/<see cref="Rollback"/>.</summary>
    public bool InTransaction { get; private set; }

    /// <summary>Statement handles currently allocated on this connection (0 when no reader is open).</summary>
    public int OpenStatements => _openStatements;

    /// <summary>
    /// Opens a connection with SQLDriverConnect (no prompting), e.g.
    /// <c>Driver=SQLite3;Database=/tmp/x.db;</c> or
    /// <c>Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=db;Uid=postgres;</c>.
    /// </summary>
    public static OdbcConnection Open(string connectionString)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        nint env = 0, dbc = 0;
        try
        {
            short rc = SQLAllocHandle(SQL_HANDLE_ENV, 0, out env);
            if (!Succeeded(rc))
                throw new OdbcException("SQLAllocHandle (environment)", rc, Array.Empty<OdbcDiagnostic>(),
                    "unixODBC could not allocate an environment: check that libodbc.so.2 (package unixodbc) is installed");

            // ODBC 3 behaviour must be declared before any connection handle is allocated.
            rc = SQLSetEnvAttr(env, SQL_ATTR_ODBC_VERSION, SQL_OV_ODBC3, 0);
            OdbcDiag.Check(rc, SQL_HANDLE_ENV, env, "SQLSetEnvAttr (ODBC version 3)");

            rc = SQLAllocHandle(SQL_HANDLE_DBC, env, out dbc);
            OdbcDiag.Check(rc, SQL_HANDLE_ENV, env, "SQLAllocHandle (connection)");

            byte[] cs = Utf8Z(connectionString);
            byte* outBuf = stackalloc byte[1024];
            short outLen;
            fixed (byte* p = cs)
                rc = SQLDriverConnect(dbc, 0, p, (short)SQL_NTS, outBuf, 1024, &outLen, SQL_DRIVER_NOPROMPT);
            OdbcDiag.Check(rc, SQL_HANDLE_DBC, dbc, "SQLDriverConnect (open connection)",
                "Connection string: " + Redact(connectionString));

            var conn = new OdbcConnection(env, dbc);
            env = dbc = 0;
            return conn;
        }
        finally
        {
            if (dbc != 0) SQLFreeHandle(SQL_HANDLE_DBC, dbc);
            if (env != 0) SQLFreeHandle(SQL_HANDLE_ENV, env);
        }
    }

    /// <summary>
    /// Executes a statement that returns no rows; returns the affected row count
    /// (SQLRowCount; -1 when the driver does not know, e.g. for DDL).
    /// </summary>
    public int Execute(string sql, IReadOnlyList<object?> args)
    {
        nint stmt = AllocStatement();
        OdbcParameters? parameters = null;
        try
        {
            parameters = OdbcParameters.Bind(stmt, args);
            short rc = ExecDirect(stmt, sql);
            if (rc == SQL_NO_DATA) return 0; // searched UPDATE/DELETE that touched no rows
            nint count;
            rc = SQLRowCount(stmt, &count);
            OdbcDiag.Check(rc, SQL_HANDLE_STMT, stmt, "SQLRowCount");
            return (int)count;
        }
        finally
        {
            FreeStatement(stmt);
            parameters?.Dispose();
        }
    }

    /// <summary>Executes with no parameters.</summary>
    public int Execute(string sql) => Execute(sql, Array.Empty<object?>());

    /// <summary>
    /// Executes a query and returns a forward-only reader. Dispose the reader to free the statement
    /// (undisposed readers are freed when the connection is disposed).
    /// </summary>
    public OdbcReader Query(string sql, IReadOnlyList<object?> args)
    {
        nint stmt = AllocStatement();
        OdbcParameters? parameters = null;
        try
        {
            parameters = OdbcParameters.Bind(stmt, args);
            short rc = ExecDirect(stmt, sql);
            var reader = new OdbcReader(this, stmt, parameters, noData: rc == SQL_NO_DATA);
            _readers.Add(reader);
            return reader;
        }
        catch
        {
            FreeStatement(stmt);
            parameters?.Dispose();
            throw;
        }
    }

    /// <summary>Executes a query with no parameters.</summary>
    public OdbcReader Query(string sql) => Query(sql, Array.Empty<object?>());

    /// <summary>Turns autocommit off; the following statements form one transaction until Commit or Rollback.</summary>
    public void BeginTransaction()
    {
        ThrowIfDisposed();
        if (InTransaction) throw new InvalidOperationException("A transaction is already open on this ODBC connection; commit or roll it back first.");
        short rc = SQLSetConnectAttr(_dbc, SQL_ATTR_AUTOCOMMIT, SQL_AUTOCOMMIT_OFF, SQL_IS_UINTEGER);
        OdbcDiag.Check(rc, SQL_HANDLE_DBC, _dbc, "SQLSetConnectAttr (autocommit off)");
        InTransaction = true;
    }

    /// <summary>Commits the open transaction (SQLEndTran) and turns autocommit back on.</summary>
    public void Commit() => EndTransaction(SQL_COMMIT, "SQLEndTran (commit)");

    /// <summary>Rolls back the open transaction (SQLEndTran) and turns autocommit back on.</summary>
    public void Rollback() => EndTransaction(SQL_ROLLBACK, "SQLEndTran (rollback)");

    private void EndTransaction(short completion, string operation)
    {
        ThrowIfDisposed();
        if (!InTransaction) throw new InvalidOperationException("No transaction is open on this ODBC connection; call BeginTransaction first.");
        short rc = SQLEndTran(SQL_HANDLE_DBC, _dbc, completion);
        OdbcDiag.Check(rc, SQL_HANDLE_DBC, _dbc, operation);
        InTransaction = false;
        rc = SQLSetConnectAttr(_dbc, SQL_ATTR_AUTOCOMMIT, SQL_AUTOCOMMIT_ON, SQL_IS_UINTEGER);
        OdbcDiag.Check(rc, SQL_HANDLE_DBC, _dbc, "SQLSetConnectAttr (autocommit on)");
    }

    private nint AllocStatement()
    {
        ThrowIfDisposed();
        short rc = SQLAllocHandle(SQL_HANDLE_STMT, _dbc, out nint stmt);
        OdbcDiag.Check(rc, SQL_HANDLE_DBC, _dbc, "SQLAllocHandle (statement)");
        _openStatements++;
        return stmt;
    }

    /// <summary>SQLFreeHandle closes any cursor and drops the statement's parameter bindings.</summary>
    internal void FreeStatement(nint stmt)
    {
        SQLFreeHandle(SQL_HANDLE_STMT, stmt);
        _openStatements--;
    }

    private static short ExecDirect(nint stmt, string sql)
    {
        ArgumentNullException.ThrowIfNull(sql);
        byte[] text = Utf8Z(sql);
        short rc;
        fixed (byte* p = text)
            rc = SQLExecDirect(stmt, p, SQL_NTS);
        if (rc == SQL_NO_DATA) return rc;
        if (rc == SQL_NEED_DATA)
            throw new OdbcException("SQLExecDirect (execute statement)", rc, Array.Empty<OdbcDiagnostic>(),
                "The driver asked for data-at-execution parameters, which this binding does not use");
        OdbcDiag.Check(rc, SQL_HANDLE_STMT, stmt, "SQLExecDirect (execute statement)", "SQL: " + Abbreviate(sql));
        return rc;
    }

    internal void ReaderClosed(OdbcReader reader) => _readers.Remove(reader);

    internal static byte[] Utf8Z(string s)
    {
        int n = Encoding.UTF8.GetByteCount(s);
        byte[] b = new byte[n + 1];
        Encoding.UTF8.GetBytes(s, 0, s.Length, b, 0);
        return b;
    }

    private static string Abbreviate(string sql) => sql.Length <= 200 ? sql : sql[..200] + "...";

    [GeneratedRegex(@"(?i)\b(pwd|password)\s*=\s*(\{[^}]*\}|[^;]*)")]
    private static partial Regex PasswordPattern();

    /// <summary>The connection string with any password replaced by ***.</summary>
    internal static string Redact(string connectionString) => PasswordPattern().Replace(connectionString, "$1=***");

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_dbc == 0, this);

    public void Dispose()
    {
        if (_dbc == 0) return;
        foreach (var r in _readers.ToArray()) r.Dispose();
        if (InTransaction)
        {
            SQLEndTran(SQL_HANDLE_DBC, _dbc, SQL_ROLLBACK);
            InTransaction = false;
        }
        SQLDisconnect(_dbc);
        SQLFreeHandle(SQL_HANDLE_DBC, _dbc);
        SQLFreeHandle(SQL_HANDLE_ENV, _env);
        _dbc = 0;
        _env = 0;
    }
}
