using Fed.Core;
using Fed.Warehouse.Odbc;
using static Fed.Warehouse.Tests.Odbc.OdbcTestSupport;

namespace Fed.Warehouse.Tests.Odbc;

/// <summary>
/// Behaviour every real driver must show through Fed's ODBC warehouse (System.Data.Odbc). Subclasses supply the
/// connection string and the few dialect differences. Table names are unique per test instance (the PostgreSQL
/// database is shared).
/// </summary>
public abstract class OdbcDriverContract : IDisposable
{
    private readonly string _suffix = Guid.NewGuid().ToString("N")[..10];
    private readonly List<string> _tables = new();

    protected abstract string ConnectionString { get; }
    protected abstract SqlDialect Dialect { get; }

    /// <summary>Column type for 64-bit floating point.</summary>
    protected abstract string RealType { get; }

    /// <summary>A select-list expression that reads a double column without loss through this driver.</summary>
    protected string ExactReal(string column) => (Dialect == SqlDialect.Sqlite ? SqlDialect.SqliteOverOdbc : Dialect).ReadDouble(column);

    protected virtual IEnumerable<double> Doubles => HardDoubles;

    protected OdbcWarehouse Open() => new(ConnectionString, Dialect);

    /// <summary>A unique table name for this test, dropped on dispose.</summary>
    protected string Table(string name)
    {
        string t = $"{name}_{_suffix}";
        _tables.Add(t);
        return t;
    }

    protected static long Count(IWarehouse c, string table)
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
            catch (FedFailureException) { /* never created */ }
        }
    }

    [Fact]
    public void RoundTripsValuesIncludingNullAndUnicode()
    {
        using var c = Open();
        string t = Table("rt");
        c.Execute($"CREATE TABLE {t} (id INTEGER PRIMARY KEY, name TEXT, x {RealType}, n BIGINT, i INTEGER, flag INTEGER)");
        Assert.Equal(1, c.Execute($"INSERT INTO {t} (id, name, x, n, i, flag) VALUES (?, ?, ?, ?, ?, ?)", 1L, "特征 é", 0.1, long.MaxValue, int.MinValue, 1));
        Assert.Equal(1, c.Execute($"INSERT INTO {t} (id, name, x, n, i, flag) VALUES (?, ?, ?, ?, ?, ?)", 2, null, null, null, null, 0));

        using (var r = c.Query($"SELECT id, name, {ExactReal("x")} AS x, n, i, flag FROM {t} WHERE id = ?", 1))
        {
            Assert.Equal(6, r.FieldCount);
            Assert.Equal("name", r.GetName(1));
            Assert.True(r.Read());
            Assert.Equal(1L, r.GetInt64(0));
            Assert.Equal("特征 é", r.GetString(1));
            Assert.False(r.IsNull(2));
            AssertBitExact(0.1, r.GetDouble(2), "x");
            Assert.Equal(long.MaxValue, r.GetInt64(3));
            Assert.Equal(int.MinValue, r.GetInt64(4));
            Assert.Equal(1L, r.GetInt64(5));
            Assert.False(r.Read());
        }

        using (var r = c.Query($"SELECT id, name, x, n, i, flag FROM {t} WHERE id = ?", 2L))
        {
            Assert.True(r.Read());
            foreach (int k in new[] { 1, 2, 3, 4 })
            {
                Assert.True(r.IsNull(k), $"column {r.GetName(k)} should be NULL");
                Assert.Throws<InvalidOperationException>(() => r.GetString(k));
            }
            Assert.Equal(0L, r.GetInt64(5));
        }

        // Row counts: one row updated, then none.
        Assert.Equal(1, c.Execute($"UPDATE {t} SET name = ? WHERE id = ?", "второй", 2));
        Assert.Equal(0, c.Execute($"UPDATE {t} SET name = ? WHERE id = ?", "x", 99));
        using (var r = c.Query($"SELECT name FROM {t} WHERE id = ?", 2))
        {
            Assert.True(r.Read());
            Assert.Equal("второй", r.GetString(0));
        }
    }

    [Fact]
    public void DoublesRoundTripBitExactly()
    {
        using var c = Open();
        string t = Table("dbl");
        c.Execute($"CREATE TABLE {t} (k INTEGER PRIMARY KEY, v {RealType})");
        double[] values = Doubles.ToArray();
        using (var tx = c.BeginTransaction())
        {
            for (int k = 0; k < values.Length; k++) c.Execute($"INSERT INTO {t} (k, v) VALUES (?, ?)", k, values[k]);
            tx.Commit();
        }

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
            using var q = c.Query($"SELECT k FROM {t} WHERE v = ?", values[k]);
            Assert.True(q.Read(), $"no row has v = {values[k]:R}");
            Assert.Equal(values[k], values[(int)q.GetInt64(0)]);
        }
    }

    [Fact]
    public void LongUnicodeStringsRoundTrip()
    {
        using var c = Open();
        string t = Table("longs");
        c.Execute($"CREATE TABLE {t} (v TEXT)");
        string big = string.Concat(Enumerable.Range(0, 20_000).Select(i => (i % 3) switch { 0 => "特征", 1 => "é", _ => "ab" }));
        c.Execute($"INSERT INTO {t} (v) VALUES (?)", big);
        c.Execute($"INSERT INTO {t} (v) VALUES (?)", "");
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
            using (c.BeginTransaction())
            {
                for (int i = 0; i < 5; i++) c.Execute($"INSERT INTO {t} (v) VALUES (?)", i + 0.5);
                Assert.Equal(5, Count(c, t));
            } // disposed without Commit: rolled back
            Assert.Equal(0, Count(c, t));

            using (var tx = c.BeginTransaction())
            {
                for (int i = 0; i < 3; i++) c.Execute($"INSERT INTO {t} (v) VALUES (?)", i + 0.25);
                tx.Commit();
            }
            Assert.Equal(3, Count(c, t));

            // Back in autocommit: this insert persists without Commit.
            c.Execute($"INSERT INTO {t} (v) VALUES (?)", 9.0);
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
            c.Execute($"INSERT INTO {t} (v) VALUES (?)", 1.0);
        }
        using var c2 = Open();
        Assert.Equal(0, Count(c2, t));
    }

    [Fact]
    public void BadSqlGivesTheDriverMessageAndTheConnectionStaysUsable()
    {
        using var c = Open();
        var ex = Assert.Throws<FedFailureException>(() => c.Execute("SELEC nonsense FROM nowhere"));
        Assert.Contains("syntax", ex.Message, StringComparison.OrdinalIgnoreCase);
        Assert.StartsWith("odbc:", ex.Message);

        string missing = "no_such_table_" + Guid.NewGuid().ToString("N")[..6];
        var ex2 = Assert.Throws<FedFailureException>(() => c.Query($"SELECT x FROM {missing} WHERE x = ?", 1.5));
        Assert.Contains(missing, ex2.Message);

        using var r = c.Query("SELECT 1");
        Assert.True(r.Read());
        Assert.Equal(1L, r.GetInt64(0));
    }

    [Fact]
    public void UnsupportedParameterTypeIsRejected()
    {
        using var c = Open();
        Assert.Throws<ArgumentException>(() => c.Execute("SELECT ?", new Uri("http://x")));
    }

    [Fact]
    public void TenThousandStatementsLeakNothing()
    {
        using var c = Open();
        string t = Table("many");
        c.Execute($"CREATE TABLE {t} (k INTEGER, v {RealType}, s TEXT)");

        void Round(int from, int to)
        {
            using var tx = c.BeginTransaction();
            for (int k = from; k < to; k++)
            {
                c.Execute($"INSERT INTO {t} (k, v, s) VALUES (?, ?, ?)", k, k / 7.0, "行" + k);
                using var r = c.Query($"SELECT {ExactReal("v")}, s FROM {t} WHERE k = ?", k);
                Assert.True(r.Read());
                AssertBitExact(k / 7.0, r.GetDouble(0), "v");
                Assert.Equal("行" + k, r.GetString(1));
            }
            tx.Commit();
        }

        Round(0, 1_000); // warm-up: JIT, driver caches, page cache
        GC.Collect();
        long before = Environment.WorkingSet;
        Round(1_000, 10_000);
        GC.Collect();
        long growth = Environment.WorkingSet - before;
        Assert.Equal(10_000, Count(c, t));
        Assert.True(growth < 48L * 1024 * 1024, $"working set grew by {growth / 1024} KiB over 18,000 statements");
    }
}
