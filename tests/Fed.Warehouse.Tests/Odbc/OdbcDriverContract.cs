using Fed.Warehouse.Odbc;
using static Fed.Warehouse.Tests.Odbc.OdbcTestSupport;

namespace Fed.Warehouse.Tests.Odbc;

/// <summary>
/// Behaviour every real driver must show through the binding. Subclasses supply the connection string
/// and the few dialect differences. Table names are unique per test instance (the PostgreSQL database is shared).
/// </summary>
public abstract class OdbcDriverContract : IDisposable
{
    private readonly string _suffix = Guid.NewGuid().ToString("N")[..10];
    private readonly List<string> _tables = new();

    protected abstract string ConnectionString { get; }

    /// <summary>Column type for 64-bit floating point.</summary>
    protected abstract string RealType { get; }

    /// <summary>A select-list expression that reads a double column without loss through this driver.</summary>
    protected abstract string ExactReal(string column);

    protected virtual IEnumerable<double> Doubles => HardDoubles;

    protected OdbcConnection Open() => OdbcConnection.Open(ConnectionString);

    /// <summary>A unique table name for this test, dropped on dispose.</summary>
    protected string Table(string name)
    {
        string t = $"{name}_{_suffix}";
        _tables.Add(t);
        return t;
    }

    protected static long Count(OdbcConnection c, string table)
    {
        using var r = c.Query("SELECT COUNT(*) FROM " + table);
        Assert.True(r.Read());
        return r.GetInt64(0);
    }

    public virtual void Dispose()
    {
        GC.SuppressFinalize(this);
        if (_tables.Count == 0) return;
        using var c = Open();
        foreach (var t in _tables)
        {
            try { c.Execute("DROP TABLE " + t); }
            catch (OdbcException) { /* never created */ }
        }
    }

    [Fact]
    public void RoundTripsValuesIncludingNullAndUnicode()
    {
        using var c = Open();
        string t = Table("rt");
        c.Execute($"CREATE TABLE {t} (id INTEGER PRIMARY KEY, name TEXT, x {RealType}, n BIGINT, i INTEGER, flag INTEGER, ts TEXT)");
        var when = new DateTime(2024, 5, 1, 13, 45, 10, 123, DateTimeKind.Utc);

        Assert.Equal(1, c.Execute($"INSERT INTO {t} (id, name, x, n, i, flag, ts) VALUES (?, ?, ?, ?, ?, ?, ?)",
            new object?[] { 1L, "特征 é", 0.1, long.MaxValue, int.MinValue, 1, when }));
        Assert.Equal(1, c.Execute($"INSERT INTO {t} (id, name, x, n, i, flag, ts) VALUES (?, ?, ?, ?, ?, ?, ?)",
            new object?[] { 2, null, null, null, null, 0, null }));

        using (var r = c.Query($"SELECT id, name, {ExactReal("x")} AS x, n, i, flag, ts FROM {t} WHERE id = ?", new object?[] { 1 }))
        {
            Assert.Equal(7, r.FieldCount);
            Assert.Equal("name", r.GetName(1));
            Assert.Equal(2, r.GetOrdinal("X"));
            Assert.True(r.Read());
            Assert.Equal(1L, r.GetInt64(0));
            Assert.Equal("特征 é", r.GetString(1));
            Assert.False(r.IsNull(2));
            AssertBitExact(0.1, r.GetDouble(2), "x");
            Assert.Equal(long.MaxValue, r.GetInt64(3));
            Assert.Equal(int.MinValue, r.GetInt64(4));
            Assert.Equal(1L, r.GetInt64(5));
            Assert.Equal("2024-05-01T13:45:10.123Z", r.GetString(6));
            Assert.False(r.Read());
            Assert.False(r.Read());
        }

        using (var r = c.Query($"SELECT id, name, x, n, i, flag, ts FROM {t} WHERE id = ?", new object?[] { 2L }))
        {
            Assert.True(r.Read());
            foreach (int k in new[] { 1, 2, 3, 4, 6 })
            {
                Assert.True(r.IsNull(k), $"column {r.GetName(k)} should be NULL");
                Assert.Null(r.GetValue(k));
                Assert.Throws<InvalidOperationException>(() => r.GetString(k));
            }
            Assert.Equal(0L, r.GetInt64(5));
        }

        // Row counts: one row updated, then none (SQL_NO_DATA from the driver maps to 0).
        Assert.Equal(1, c.Execute($"UPDATE {t} SET name = ? WHERE id = ?", new object?[] { "второй", 2 }));
        Assert.Equal(0, c.Execute($"UPDATE {t} SET name = ? WHERE id = ?", new object?[] { "x", 99 }));
        using (var r = c.Query($"SELECT name FROM {t} WHERE id = ?", new object?[] { 2 }))
        {
            Assert.True(r.Read());
            Assert.Equal("второй", r.GetValue(0));
        }
    }

    [Fact]
    public void DoublesRoundTripBitExactly()
    {
        using var c = Open();
        string t = Table("dbl");
        c.Execute($"CREATE TABLE {t} (k INTEGER PRIMARY KEY, v {RealType})");
        double[] values = Doubles.ToArray();
        c.BeginTransaction();
        for (int k = 0; k < values.Length; k++)
            c.Execute($"INSERT INTO {t} (k, v) VALUES (?, ?)", new object?[] { k, values[k] });
        c.Commit();

        using (var r = c.Query($"SELECT k, {ExactReal("v")} FROM {t} ORDER BY k"))
        {
            int seen = 0;
            while (r.Read())
            {
                int k = (int)r.GetInt64(0);
                AssertBitExact(values[k], r.GetDouble(1), $"row {k}");
                seen++;
            }
            Assert.Equal(values.Length, seen);
        }

        // Each stored value equals the bound parameter exactly (the write side is lossless).
        for (int k = 0; k < values.Length; k++)
        {
            using var q = c.Query($"SELECT k FROM {t} WHERE v = ?", new object?[] { values[k] });
            Assert.True(q.Read(), $"no row has v = {values[k]:R}");
            Assert.Equal(values[k], values[(int)q.GetInt64(0)]);
        }
    }

    [Fact]
    public void LongUnicodeStringsSurviveTheGetDataLoop()
    {
        using var c = Open();
        string t = Table("longs");
        c.Execute($"CREATE TABLE {t} (v TEXT)");
        string big = string.Concat(Enumerable.Range(0, 20_000).Select(i => (i % 3) switch { 0 => "特征", 1 => "é", _ => "ab" }));
        c.Execute($"INSERT INTO {t} (v) VALUES (?)", new object?[] { big });
        c.Execute($"INSERT INTO {t} (v) VALUES (?)", new object?[] { "" });
        using var r = c.Query($"SELECT v, length(v) FROM {t} ORDER BY length(v) DESC");
        Assert.True(r.Read());
        Assert.Equal(big, r.GetString(0));
        Assert.Equal(big.Length, r.GetInt64(1));
        Assert.True(r.Read());
        Assert.Equal("", r.GetString(0));
        Assert.False(r.IsNull(0));
    }

    [Fact]
    public void RollbackLeavesNothingAndCommitPersists()
    {
        string t = Table("tx");
        using (var c = Open())
        {
            c.Execute($"CREATE TABLE {t} (v {RealType})");

            c.BeginTransaction();
            Assert.True(c.InTransaction);
            for (int i = 0; i < 5; i++) c.Execute($"INSERT INTO {t} (v) VALUES (?)", new object?[] { i + 0.5 });
            Assert.Equal(5, Count(c, t));
            c.Rollback();
            Assert.False(c.InTransaction);
            Assert.Equal(0, Count(c, t));

            c.BeginTransaction();
            for (int i = 0; i < 3; i++) c.Execute($"INSERT INTO {t} (v) VALUES (?)", new object?[] { i + 0.25 });
            c.Commit();
            Assert.Equal(3, Count(c, t));

            // Back in autocommit: this insert persists without Commit.
            c.Execute($"INSERT INTO {t} (v) VALUES (?)", new object?[] { 9.0 });
            Assert.Throws<InvalidOperationException>(() => c.Commit());
        }
        using (var c2 = Open())
            Assert.Equal(4, Count(c2, t));
    }

    [Fact]
    public void DisposingWithAnOpenTransactionRollsBack()
    {
        string t = Table("txd");
        using (var c = Open())
        {
            c.Execute($"CREATE TABLE {t} (v {RealType})");
            c.BeginTransaction();
            c.Execute($"INSERT INTO {t} (v) VALUES (?)", new object?[] { 1.0 });
        }
        using var c2 = Open();
        Assert.Equal(0, Count(c2, t));
    }

    [Fact]
    public void BadSqlGivesSqlStateAndDriverMessage()
    {
        using var c = Open();
        var ex = Assert.Throws<OdbcException>(() => c.Execute("SELEC nonsense FROM nowhere"));
        Assert.Matches("^[0-9A-Z]{5}$", ex.SqlState);
        Assert.Contains("syntax", ex.DriverMessage, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("SQLExecDirect", ex.Operation);
        Assert.Contains(ex.SqlState, ex.Message);
        Assert.Contains("check its syntax", ex.Message);

        string missing = "no_such_table_" + Guid.NewGuid().ToString("N")[..6];
        var ex2 = Assert.Throws<OdbcException>(() => c.Query($"SELECT x FROM {missing} WHERE x = ?", new object?[] { 1.5 }));
        Assert.Contains(missing, ex2.Message);
        Assert.Equal(0, c.OpenStatements);

        // The connection is still usable after errors.
        using var r = c.Query("SELECT 1");
        Assert.True(r.Read());
        Assert.Equal(1L, r.GetInt64(0));
    }

    [Fact]
    public void UnsupportedParameterTypeIsRejectedWithoutLeakingTheStatement()
    {
        using var c = Open();
        var ex = Assert.Throws<ArgumentException>(() => c.Execute("SELECT ?", new object?[] { new Uri("http://x") }));
        Assert.Contains("supported:", ex.Message);
        Assert.Equal(0, c.OpenStatements);
    }

    [Fact]
    public void TenThousandStatementsLeakNoHandles()
    {
        using var c = Open();
        string t = Table("many");
        c.Execute($"CREATE TABLE {t} (k INTEGER, v {RealType}, s TEXT)");

        void Round(int from, int to)
        {
            c.BeginTransaction();
            for (int k = from; k < to; k++)
            {
                c.Execute($"INSERT INTO {t} (k, v, s) VALUES (?, ?, ?)", new object?[] { k, k / 7.0, "行" + k });
                using var r = c.Query($"SELECT {ExactReal("v")}, s FROM {t} WHERE k = ?", new object?[] { k });
                Assert.True(r.Read());
                AssertBitExact(k / 7.0, r.GetDouble(0), "v");
                Assert.Equal("行" + k, r.GetString(1));
            }
            c.Commit();
        }

        Round(0, 1_000); // warm-up: JIT, driver caches, page cache
        GC.Collect();
        long before = Environment.WorkingSet;
        Round(1_000, 10_000);
        GC.Collect();
        long growth = Environment.WorkingSet - before;

        Assert.Equal(0, c.OpenStatements);
        Assert.Equal(10_000, Count(c, t));
        // 18,000 statement handles were allocated and freed; leaking them (kilobytes each in the driver) would show.
        Assert.True(growth < 48L * 1024 * 1024, $"working set grew by {growth / 1024} KiB over 18,000 statements");
    }

    [Fact]
    public void UndisposedReadersAreFreedWithTheConnection()
    {
        var c = Open();
        var r1 = c.Query("SELECT 1");
        var r2 = c.Query("SELECT 2");
        Assert.Equal(2, c.OpenStatements);
        r1.Dispose();
        Assert.Equal(1, c.OpenStatements);
        c.Dispose();
        Assert.Equal(0, c.OpenStatements);
        Assert.Throws<ObjectDisposedException>(() => r2.Read());
        Assert.Throws<ObjectDisposedException>(() => c.Execute("SELECT 1"));
    }
}
