using System.Text;

namespace Fed.Warehouse.Odbc;

/// <summary>One diagnostic record returned by SQLGetDiagRec.</summary>
public sealed record OdbcDiagnostic(string SqlState, int NativeError, string Message);

/// <summary>
/// An ODBC call failed. Carries the SQLSTATE, the driver's native error code and message of the
/// first diagnostic record (all records are in <see cref="Diagnostics"/>), the operation that failed,
/// and a hint telling the user what to check.
/// </summary>
public sealed class OdbcException : Exception
{
    public OdbcException(string operation, short returnCode, IReadOnlyList<OdbcDiagnostic> diagnostics, string? context = null)
        : base(BuildMessage(operation, returnCode, diagnostics, context))
    {
        Operation = operation;
        ReturnCode = returnCode;
        Diagnostics = diagnostics;
        var first = Primary(diagnostics);
        SqlState = first?.SqlState ?? "";
        NativeError = first?.NativeError ?? 0;
        DriverMessage = first?.Message ?? "";
        Hint = HintFor(diagnostics);
    }

    /// <summary>The first error record; warnings (class 01) only when there is nothing else.</summary>
    private static OdbcDiagnostic? Primary(IReadOnlyList<OdbcDiagnostic> diagnostics) =>
        diagnostics.FirstOrDefault(d => !d.SqlState.StartsWith("01", StringComparison.Ordinal))
        ?? (diagnostics.Count > 0 ? diagnostics[0] : null);

    /// <summary>The ODBC function (and what it was doing), e.g. "SQLExecDirect (execute statement)".</summary>
    public string Operation { get; }

    /// <summary>The SQLRETURN of the failing call (-1 SQL_ERROR, -2 SQL_INVALID_HANDLE, ...).</summary>
    public short ReturnCode { get; }

    /// <summary>
    /// Five-character SQLSTATE of the first error record ("" if the driver gave none). Note that unixODBC
    /// reports an unknown Driver= name as 01000 "Can't open lib", not IM002.
    /// </summary>
    public string SqlState { get; }

    /// <summary>Driver/database specific error code of the first diagnostic record.</summary>
    public int NativeError { get; }

    /// <summary>The driver's message text of the first diagnostic record.</summary>
    public string DriverMessage { get; }

    /// <summary>What the user should check or do, or "" when no specific advice applies.</summary>
    public string Hint { get; }

    public IReadOnlyList<OdbcDiagnostic> Diagnostics { get; }

    private static string BuildMessage(string operation, short rc, IReadOnlyList<OdbcDiagnostic> diags, string? context)
    {
        var sb = new StringBuilder();
        sb.Append("ODBC ").Append(operation).Append(" failed");
        var primary = Primary(diags);
        if (primary is null)
        {
            sb.Append(" (return code ").Append(rc).Append(", no diagnostic record)");
        }
        else
        {
            sb.Append(": [").Append(primary.SqlState).Append("] ").Append(primary.Message.TrimEnd());
            if (primary.NativeError != 0) sb.Append(" (native error ").Append(primary.NativeError).Append(')');
            foreach (var d in diags)
                if (!ReferenceEquals(d, primary))
                    sb.Append("; [").Append(d.SqlState).Append("] ").Append(d.Message.TrimEnd());
        }
        if (context is { Length: > 0 }) sb.Append(". ").Append(context);
        var hint = HintFor(diags);
        if (hint.Length > 0) sb.Append(". ").Append(hint);
        return sb.ToString();
    }

    private const string DriverNotFound =
        "Data source not found: check the Driver= name against /etc/odbcinst.ini " +
        "(`odbcinst -q -d` lists installed drivers; names with spaces need braces, e.g. Driver={PostgreSQL Unicode}) " +
        "or the DSN= name against /etc/odbc.ini and ~/.odbc.ini";

    internal static string HintFor(IReadOnlyList<OdbcDiagnostic> diags)
    {
        // unixODBC treats a Driver= value it cannot find in odbcinst.ini as a library path: 01000 "Can't open lib".
        if (diags.Any(d => d.SqlState == "IM002" || d.Message.Contains("Can't open lib", StringComparison.Ordinal)))
            return DriverNotFound;
        var p = Primary(diags);
        return p is null ? "" : HintFor(p.SqlState, p.Message);
    }

    internal static string HintFor(string sqlState, string message)
    {
        if (message.Contains("[SQLite]connect failed", StringComparison.Ordinal))
            return "SQLite could not open the database file: check that the directory in Database= exists and is writable";
        if (message.Contains("password authentication failed", StringComparison.Ordinal) ||
            message.Contains("no pg_hba.conf entry", StringComparison.Ordinal))
            return "Authentication failed: check Uid= and Pwd= in the connection string and the server's pg_hba.conf";
        if (message.Contains("database \"", StringComparison.Ordinal) && message.Contains("does not exist", StringComparison.Ordinal))
            return "The database named in Database= does not exist on the server: create it (createdb) or fix the name";
        switch (sqlState)
        {
            case "IM002":
                return DriverNotFound;
            case "IM003":
                return "The driver library could not be loaded: check the Driver= path in /etc/odbcinst.ini " +
                       "and that the driver package (libsqliteodbc, odbc-postgresql) is installed";
            case "IM004":
            case "IM005":
                return "The driver failed to initialise: check the driver installation and its configuration in /etc/odbcinst.ini";
            case "08001":
                return "Could not reach the database: check Server=, Port= and Database= in the connection string " +
                       "and that the server is running and accepts connections (for the tests, run scripts/test.sh)";
            case "08004":
                return "The server rejected the connection: check that the database exists and the user may connect";
            case "28000":
                return "Authentication failed: check Uid= and Pwd= in the connection string";
            case "40001":
                return "Serialization failure or deadlock: the transaction was rolled back; retry it";
            case "HYT00":
            case "HYT01":
                return "Timeout expired: the database is busy or locked; retry, or raise the driver timeout";
            case "25000":
                return "Invalid transaction state: commit or roll back the open transaction first";
            case "07002":
            case "07001":
                return "The number of ? placeholders does not match the number of arguments";
        }
        if (sqlState.StartsWith("23", StringComparison.Ordinal))
            return "A constraint was violated (unique key, not null, foreign key or check): check the values inserted";
        if (sqlState.StartsWith("42", StringComparison.Ordinal) || sqlState == "37000")
            return "The statement was rejected by the database: check its syntax and that the tables and columns it names exist";
        if (sqlState.StartsWith("22", StringComparison.Ordinal))
            return "A value could not be converted or is out of range for its column: check the argument types";
        if (message.Contains("locked", StringComparison.OrdinalIgnoreCase))
            return "The database is locked by another connection or an open reader: dispose readers and commit or roll back other transactions";
        if (message.Contains("syntax", StringComparison.OrdinalIgnoreCase) || message.Contains("no such", StringComparison.OrdinalIgnoreCase))
            return "The statement was rejected by the database: check its syntax and that the tables and columns it names exist";
        return "";
    }
}
