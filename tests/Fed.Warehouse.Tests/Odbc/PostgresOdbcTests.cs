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

    /// <summary>psqlODBC transfers floats as text, but both directions are exact: parameters are printed with 17
    /// significant digits, and the driver sets extra_float_digits on connect, so PostgreSQL 12+ sends the shortest
    /// round-trip representation. No detour needed.</summary>
    protected override SqlDialect Dialect => SqlDialect.Postgres;

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
    public void UnreachableServerFailsWithoutThePassword()
    {
        var ex = Assert.Throws<Fed.Core.FedFailureException>(() =>
            new OdbcWarehouse("Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=1;Database=fedtest;Uid=postgres;Pwd=hunter2;", SqlDialect.Postgres));
        Assert.Contains("cannot connect", ex.Message);
        Assert.DoesNotContain("hunter2", ex.Message);
    }

    [Fact]
    public void MissingDatabaseIsNamed()
    {
        var b = new System.Text.RegularExpressions.Regex(@"(?i)Database=[^;]*;?");
        string cs = b.Replace(_cs, "") + ";Database=no_such_db_fed;";
        var ex = Assert.Throws<Fed.Core.FedFailureException>(() => new OdbcWarehouse(cs, SqlDialect.Postgres));
        Assert.Contains("does not exist", ex.Message);
    }
}
