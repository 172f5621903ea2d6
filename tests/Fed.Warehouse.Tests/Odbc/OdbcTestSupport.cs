using Fed.Warehouse.Odbc;

namespace Fed.Warehouse.Tests.Odbc;

internal static class OdbcTestSupport
{
    public const string PgVariable = "FED_TEST_PG_ODBC";

    /// <summary>The PostgreSQL ODBC connection string; fails (never skips) the test when it is absent.</summary>
    public static string PostgresConnectionString()
    {
        string? cs = Environment.GetEnvironmentVariable(PgVariable);
        if (string.IsNullOrWhiteSpace(cs))
            Assert.Fail($"{PgVariable} is not set: run scripts/test.sh, which starts PostgreSQL and exports " +
                        $"{PgVariable} (e.g. Driver={{PostgreSQL Unicode}};Server=127.0.0.1;Port=PORT;Database=fedtest;Uid=postgres;)");
        return cs!;
    }

    /// <summary>Doubles that a text-based conversion would easily damage.</summary>
    public static readonly double[] HardDoubles =
    {
        0.1, 1e-300, -2.5e307, double.Epsilon, 1 / 3.0, 2 / 3.0, Math.PI, -Math.E,
        double.MaxValue, double.MinValue, 2.2250738585072014E-308 /* smallest normal */,
        2.2250738585072009E-308 /* largest subnormal */, 0.30000000000000004, 123456789.12345679,
        1e21, 9007199254740993.0, -1.0000000000000002, 0.0, 1.0, 4.9406564584124654e-322,
    };

    public static void AssertBitExact(double expected, double actual, string what)
    {
        long e = BitConverter.DoubleToInt64Bits(expected), a = BitConverter.DoubleToInt64Bits(actual);
        Assert.True(e == a, $"{what}: expected {expected:R} (0x{e:X16}) but read {actual:R} (0x{a:X16})");
    }
}
