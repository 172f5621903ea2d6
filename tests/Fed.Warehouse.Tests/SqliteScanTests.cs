namespace Fed.Warehouse.Tests;

public class SqliteScanTests
{
    [Fact]
    public void ScanReadsTheSameValuesAsQueryWithNullAsNaN()
    {
        using var w = Fixtures.Sqlite(out _);
        w.Execute("CREATE TABLE t (id TEXT, a REAL, b REAL, c REAL)");
        w.Execute("INSERT INTO t VALUES (?, ?, ?, ?)", "s1", 0.0, null, 1.5);
        w.Execute("INSERT INTO t VALUES (?, ?, ?, ?)", "s2", -0.0, 2.25, null);
        w.Execute("INSERT INTO t VALUES (?, ?, ?, ?)", "s3", 1e-300, -7.0, 3.0);
        var expected = new List<(string, double[])>();
        using (var q = w.Query("SELECT id, a, b, c FROM t WHERE id <> ? ORDER BY id", "none"))
            while (q.Read()) expected.Add((q.GetString(0), Enumerable.Range(1, 3).Select(i => q.IsNull(i) ? double.NaN : q.GetDouble(i)).ToArray()));

        using var s = w.Scan("SELECT id, a, b, c FROM t WHERE id <> ? ORDER BY id", "none");
        Assert.Equal(4, s.FieldCount);
        Assert.Equal("b", s.GetName(2));
        var row = new double[3];
        foreach (var (id, values) in expected)
        {
            Assert.True(s.Read());
            Assert.Equal(id, s.GetString(0));
            s.GetDoubles(1, row);
            Assert.Equal(values.Select(BitConverter.DoubleToInt64Bits), row.Select(BitConverter.DoubleToInt64Bits));
        }
        Assert.False(s.Read());
        Assert.False(s.Read()); // stays at the end rather than restarting the query
        Assert.True(double.IsNaN(expected[0].Item2[1]));
    }
}
