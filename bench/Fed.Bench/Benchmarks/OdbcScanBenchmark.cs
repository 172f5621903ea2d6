using System.Diagnostics;
using Fed.Warehouse;
using Fed.Warehouse.Odbc;
using Fed.Warehouse.Sqlite;

namespace Fed.Bench.Benchmarks;

/// <summary>
/// The bulk scan of a feature table (id + 50 doubles) through ODBC: Fed's warehouse on System.Data.Odbc (ADO.NET)
/// against the hand-written ODBC binding (Fed.Warehouse.Odbc.OdbcConnection / OdbcReader), same run, same data, same
/// driver. The SQLite3 ODBC driver always; the PostgreSQL Unicode driver when FED_TEST_PG_ODBC is set.
/// Figure: rows/s through ADO.NET; baseline: rows/s through the hand-written binding (ratio &lt; 0.5 would keep it).
/// </summary>
public sealed class OdbcScanBenchmark : IBenchmark
{
    public string Name => "odbc_scan";
    const int K = 50;

    public IReadOnlyList<BenchFigure> Run(BenchContext ctx)
    {
        var rows = ctx.Quick ? 20_000 : 200_000;
        var figures = new List<BenchFigure>();
        var cols = string.Join(", ", Enumerable.Range(1, K).Select(i => $"c{i}"));
        var sql = $"SELECT sample_id, {cols} FROM fed_scan_bench";

        var file = Path.Combine(ctx.WorkDirectory, "odbc_scan.db");
        File.Delete(file);
        using (var w = new SqliteWarehouse(file)) Fill(w, rows);
        figures.Add(Measure(ctx, "sqlite3_odbc", $"Driver=SQLite3;Database={file};", SqlDialect.Sqlite, sql, rows));

        if (Environment.GetEnvironmentVariable("FED_TEST_PG_ODBC") is { Length: > 0 } pg)
        {
            var cs = pg + "UseDeclareFetch=1;Fetch=10000;";
            using (var w = new OdbcWarehouse(cs, SqlDialect.Postgres)) { w.Execute("DROP TABLE IF EXISTS fed_scan_bench"); Fill(w, rows); }
            figures.Add(Measure(ctx, "postgres_odbc", cs, SqlDialect.Postgres, sql, rows));
        }
        return figures;
    }

    static void Fill(IWarehouse w, int rows)
    {
        var d = w.Dialect;
        w.Execute($"CREATE TABLE fed_scan_bench (sample_id {d.TypeName(ColumnType.String)} NOT NULL, {string.Join(", ", Enumerable.Range(1, K).Select(i => $"c{i} {d.TypeName(ColumnType.Double)}"))})");
        var ins = $"INSERT INTO fed_scan_bench VALUES (?{string.Concat(Enumerable.Repeat(", ?", K))})";
        var rng = new Random(1);
        var args = new object?[K + 1];
        using var tx = w.BeginTransaction();
        for (var r = 0; r < rows; r++)
        {
            args[0] = "s" + r;
            for (var i = 1; i <= K; i++) args[i] = rng.NextDouble() * 100 - 50;
            w.Execute(ins, args);
        }
        tx.Commit();
    }

    static BenchFigure Measure(BenchContext ctx, string driver, string cs, SqlDialect dialect, string sql, int rows)
    {
        var values = new double[K];
        double Ado()
        {
            using IWarehouse w = new OdbcWarehouse(cs, dialect);
            var sw = Stopwatch.StartNew();
            using var r = w.Scan(sql);
            long n = 0; double sum = 0;
            while (r.Read()) { _ = r.GetString(0); r.GetDoubles(1, values); sum += values[K - 1]; n++; }
            if (n != rows) throw new InvalidOperationException($"ADO.NET scan read {n} rows, expected {rows}");
            return n / sw.Elapsed.TotalSeconds;
        }
        double Native()
        {
            using var c = OdbcConnection.Open(cs);
            var sw = Stopwatch.StartNew();
            using var r = c.Query(sql);
            long n = 0; double sum = 0;
            while (r.Read())
            {
                _ = r.GetString(0);
                for (var i = 0; i < K; i++) values[i] = r.IsNull(1 + i) ? double.NaN : r.GetDouble(1 + i);
                sum += values[K - 1]; n++;
            }
            if (n != rows) throw new InvalidOperationException($"hand-written scan read {n} rows, expected {rows}");
            return n / sw.Elapsed.TotalSeconds;
        }
        // Alternate, best of 3 each, after one warm-up of each.
        Ado(); Native();
        double ado = 0, native = 0;
        for (var i = 0; i < 3; i++) { ado = Math.Max(ado, Ado()); native = Math.Max(native, Native()); }
        ctx.Log($"  {driver}: ADO.NET {ado:N0} rows/s, hand-written {native:N0} rows/s");
        return new BenchFigure($"odbc_scan_{driver}", "rows/s, id + 50 doubles, forward-only scan", "rows/s", ado, "hand-written ODBC binding, same driver, same table", native, rows)
        {
            Details = new() { ["driver"] = driver, ["load_average"] = File.ReadAllText("/proc/loadavg").Trim(), ["keep_hand_written_if_ratio_below"] = 0.5 },
        };
    }
}
