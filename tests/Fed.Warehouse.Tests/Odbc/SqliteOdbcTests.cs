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

    /// <summary>The driver hands every value over as SQLite's text rendering ("%!.15g" in SQLite 3.40, Debian 12),
    /// which loses bits; the dialect reads doubles through quote(), which is exact (SqlDialect.SqliteOverOdbc).</summary>
    protected override SqlDialect Dialect => SqlDialect.Sqlite;

    public override void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void PitfallPlainRealColumnsComeBackWithFifteenDigits()
    {
        // Pins the driver behaviour that ReadDouble works around; if this starts failing, the driver
        // (or libsqlite3) now renders REAL exactly and the quote() detour can go.
        using var c = Open();
        c.Execute("CREATE TABLE p (v REAL)");
        c.Execute("INSERT INTO p (v) VALUES (?)", 1 / 3.0);
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
                c.Execute("INSERT INTO x (k, v) VALUES (?, ?)", k, HardDoubles[k]);
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
    public void UnknownDriverNameIsNamedAndPasswordsAreRedacted()
    {
        var ex = Assert.Throws<Fed.Core.FedFailureException>(() => new OdbcWarehouse("Driver=NoSuchDriver;Uid=u;Pwd=s3cret;", SqlDialect.Sqlite));
        Assert.Contains("NoSuchDriver", ex.Message);
        Assert.Contains("cannot connect", ex.Message);
        Assert.DoesNotContain("s3cret", ex.Message);
        Assert.Contains("Pwd=***", ex.Message);
    }
}
