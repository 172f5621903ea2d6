using Fed.Warehouse.Odbc;
using Microsoft.Data.Sqlite;
using static Fed.Warehouse.Tests.Odbc.OdbcTestSupport;

namespace Fed.Warehouse.Tests.Odbc;

/// <summary>Against the real SQLite3 ODBC driver (libsqliteodbc, "SQLite3" in /etc/odbcinst.ini) on a temp file.</summary>
public sealed class SqliteOdbcTests : OdbcDriverContract
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "fed-odbc-" + Guid.NewGuid().ToString("N"));
    private readonly string _db;

    public SqliteOdbcTests()
    {
        Directory.CreateDirectory(_dir);
        _db = Path.Combine(_dir, "test.db");
    }

    protected override string ConnectionString => $"Driver=SQLite3;Database={_db};";

    protected override string RealType => "REAL";

    /// <summary>
    /// The driver hands every value over as SQLite's text rendering, which in SQLite 3.40 (Debian 12) is
    /// "%!.15g" and loses bits. quote() re-checks the round trip and falls back to 20 digits, which is exact.
    /// quote(NULL) is the text 'NULL', hence the CASE.
    /// </summary>
    protected override string ExactReal(string column) => $"CASE WHEN {column} IS NULL THEN NULL ELSE quote({column}) END";

    public override void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void PitfallPlainRealColumnsComeBackWithFifteenDigits()
    {
        // Pins the driver behaviour that ExactReal works around; if this starts failing, the driver
        // (or libsqlite3) now renders REAL exactly and the quote() detour can go.
        using var c = Open();
        c.Execute("CREATE TABLE p (v REAL)");
        c.Execute("INSERT INTO p (v) VALUES (?)", new object?[] { 1 / 3.0 });
        using var r = c.Query("SELECT v FROM p");
        Assert.True(r.Read());
        Assert.Equal(0.333333333333333, r.GetDouble(0));
        Assert.NotEqual(1 / 3.0, r.GetDouble(0));
    }

    [Fact]
    public void StoredDoublesAreBitExactWhenReadWithoutOdbc()
    {
        using (var c = Open())
        {
            c.Execute("CREATE TABLE x (k INTEGER, v REAL)");
            for (int k = 0; k < HardDoubles.Length; k++)
                c.Execute("INSERT INTO x (k, v) VALUES (?, ?)", new object?[] { k, HardDoubles[k] });
        }
        SQLitePCL.Batteries_V2.Init();
        using var s = new SqliteConnection($"Data Source={_db};Mode=ReadOnly;Pooling=False");
        s.Open();
        using var cmd = s.CreateCommand();
        cmd.CommandText = "SELECT k, v FROM x ORDER BY k";
        using var r = cmd.ExecuteReader();
        int n = 0;
        while (r.Read())
        {
            AssertBitExact(HardDoubles[r.GetInt32(0)], r.GetDouble(1), $"row {r.GetInt32(0)} via Microsoft.Data.Sqlite");
            n++;
        }
        Assert.Equal(HardDoubles.Length, n);
    }

    [Fact]
    public void UnknownDriverNameTellsWhereToLook()
    {
        var ex = Assert.Throws<OdbcException>(() => OdbcConnection.Open("Driver=NoSuchDriver;Database=/tmp/x.db;"));
        // unixODBC reports this as 01000 "Can't open lib 'NoSuchDriver'" rather than IM002.
        Assert.Matches("^[0-9A-Z]{5}$", ex.SqlState);
        Assert.Contains("NoSuchDriver", ex.DriverMessage);
        Assert.Contains("Data source not found: check the Driver= name against /etc/odbcinst.ini", ex.Message);
        Assert.Contains("SQLDriverConnect", ex.Operation);
    }

    [Fact]
    public void UnopenableDatabaseFileTellsWhatToCheck()
    {
        var ex = Assert.Throws<OdbcException>(() => OdbcConnection.Open("Driver=SQLite3;Database=/nonexistent-dir/x.db;"));
        Assert.Contains("check that the directory in Database= exists", ex.Message);
    }

    [Fact]
    public void PasswordsAreRedactedFromConnectionErrors()
    {
        var ex = Assert.Throws<OdbcException>(() => OdbcConnection.Open("Driver=NoSuchDriver;Uid=u;Pwd=s3cret;"));
        Assert.DoesNotContain("s3cret", ex.Message);
        Assert.Contains("Pwd=***", ex.Message);
    }

    [Fact]
    public void BoolsAndDateTimesBindAsIntegerAndIsoText()
    {
        using var c = Open();
        c.Execute("CREATE TABLE bd (b INTEGER, d TEXT)");
        c.Execute("INSERT INTO bd VALUES (?, ?)", new object?[] { true, new DateTime(2024, 1, 2, 3, 4, 5) });
        c.Execute("INSERT INTO bd VALUES (?, ?)", new object?[] { false, new DateTime(2024, 1, 2, 3, 4, 5, 678).AddTicks(9) });
        using var r = c.Query("SELECT b, d FROM bd ORDER BY b DESC");
        Assert.True(r.Read());
        Assert.Equal(1L, r.GetValue(0));
        Assert.Equal("2024-01-02T03:04:05", r.GetString(1));
        Assert.True(r.Read());
        Assert.Equal(0L, r.GetInt64(0));
        Assert.Equal("2024-01-02T03:04:05.6780009", r.GetString(1));
    }
}
