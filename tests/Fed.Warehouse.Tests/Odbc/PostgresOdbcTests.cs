using Fed.Warehouse.Odbc;
using static Fed.Warehouse.Tests.Odbc.OdbcTestSupport;

namespace Fed.Warehouse.Tests.Odbc;

/// <summary>
/// Against a real PostgreSQL through psqlODBC ("PostgreSQL Unicode"). The connection string comes from
/// FED_TEST_PG_ODBC, exported by scripts/test.sh; without it every test here fails (never skips).
/// </summary>
public sealed class PostgresOdbcTests : OdbcDriverContract
{
    private readonly string _cs = PostgresConnectionString();

    protected override string ConnectionString => _cs;

    protected override string RealType => "DOUBLE PRECISION";

    /// <summary>
    /// psqlODBC transfers floats as text, but both directions are exact: parameters are printed with 17
    /// significant digits, and the driver sets extra_float_digits=2 on connect, so PostgreSQL 12+ sends the
    /// shortest round-trip representation. No detour needed.
    /// </summary>
    protected override string ExactReal(string column) => column;

    /// <summary>PostgreSQL also keeps negative zero (SQLite does not).</summary>
    protected override IEnumerable<double> Doubles => HardDoubles.Append(-0.0);

    [Fact]
    public void DriverSessionUsesRoundTripFloatOutput()
    {
        using var c = Open();
        using var r = c.Query("SHOW extra_float_digits");
        Assert.True(r.Read());
        Assert.True(int.Parse(r.GetString(0)) >= 1, "psqlODBC should set extra_float_digits >= 1 (shortest exact output)");
    }

    [Fact]
    public void DoubleColumnsReportAFloatingTypeAndGetValueIsADouble()
    {
        using var c = Open();
        string t = Table("ty");
        c.Execute($"CREATE TABLE {t} (v DOUBLE PRECISION)");
        c.Execute($"INSERT INTO {t} VALUES (?)", new object?[] { 1 / 3.0 });
        using var r = c.Query($"SELECT v FROM {t}");
        Assert.True(r.Read());
        var v = Assert.IsType<double>(r.GetValue(0));
        AssertBitExact(1 / 3.0, v, "GetValue");
    }

    [Fact]
    public void BoolAndDateTimeParametersFitBooleanAndTimestampColumns()
    {
        using var c = Open();
        string t = Table("bt");
        c.Execute($"CREATE TABLE {t} (b BOOLEAN, ts TIMESTAMP, n DOUBLE PRECISION)");
        c.Execute($"INSERT INTO {t} VALUES (?, ?, ?)", new object?[] { true, new DateTime(2024, 5, 1, 13, 45, 10, 123), null });
        c.Execute($"INSERT INTO {t} VALUES (?, ?, ?)", new object?[] { false, null, 2.5 });
        using var r = c.Query($"SELECT b, ts, n FROM {t} ORDER BY b DESC");
        Assert.True(r.Read());
        Assert.Equal(1L, r.GetInt64(0)); // psqlODBC's default BoolsAsChar=1 reports booleans as '1'/'0' text
        Assert.Equal("2024-05-01 13:45:10.123", r.GetString(1));
        Assert.True(r.IsNull(2));
        Assert.True(r.Read());
        Assert.Equal(0L, r.GetInt64(0));
        Assert.True(r.IsNull(1));
        Assert.Equal(2.5, r.GetDouble(2));
    }

    [Fact]
    public void UnreachableServerTellsWhatToCheck()
    {
        var ex = Assert.Throws<OdbcException>(() =>
            OdbcConnection.Open("Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=1;Database=fedtest;Uid=postgres;Pwd=hunter2;"));
        Assert.Equal("08001", ex.SqlState);
        Assert.Contains("check Server=, Port= and Database=", ex.Message);
        Assert.DoesNotContain("hunter2", ex.Message);
    }

    [Fact]
    public void MissingDatabaseTellsHowToFixIt()
    {
        var b = new System.Text.RegularExpressions.Regex(@"(?i)Database=[^;]*;?");
        string cs = b.Replace(_cs, "") + ";Database=no_such_db_fed;";
        var ex = Assert.Throws<OdbcException>(() => OdbcConnection.Open(cs));
        Assert.Contains("does not exist", ex.DriverMessage);
        Assert.Contains("create it (createdb)", ex.Message);
    }
}
