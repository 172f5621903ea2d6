using System.Diagnostics;
using System.Globalization;
using DuckDB.NET.Data;
using Fed.Converter;
using Fed.Core.Model;
using Fed.SparkPredict;
using Fed.Warehouse.Sqlite;

namespace Fed.Bench.Benchmarks;

/// <summary>
/// Hive-layout Parquet end to end (issue 11): N x 50 features in TABLE/dt=D/part-*.parquet (written by DuckDB, as a
/// cluster job would have), scored by the local engine into Hive-layout Parquet partial scores with their manifest,
/// at one thread (the process pinned to one core) and at all cores. Beside it, in the same run, DuckDB computes the
/// same expression (c + w1*f1 + ... + w50*f50, left to right) from the same files into a Parquet file with the same
/// threads (SET threads = N), and the two outputs are compared bit for bit.
/// </summary>
public sealed class ParquetScoringBenchmark : IBenchmark
{
    public string Name => "parquet_scoring";
    const int K = 50;
    const string Dt = "2024-03-01";

    public IReadOnlyList<BenchFigure> Run(BenchContext ctx)
    {
        var rows = ctx.Quick ? 1_000_000 : 10_000_000;
        var files = 10;
        var load = File.ReadAllText("/proc/loadavg").Trim();
        ctx.Log($"  load average at start: {load}");
        var dir = Path.Combine(ctx.WorkDirectory, "parquet");
        var table = Path.Combine(dir, "feat");
        var part = Path.Combine(table, $"dt={Dt}");
        Directory.CreateDirectory(part);
        var model = BatchScoringBenchmark.MakeModel();
        using var w = new SqliteWarehouse(Path.Combine(dir, "wh.db"));
        new ModelExporter(w).Export(ModelFile.Stamp(model));
        var p = Partition.Parse(Dt, null);
        var plan = ScoringPlan.Build(w, "bench", null, "guest", table, p);

        using var db = new DuckDBConnection("DataSource=:memory:");
        db.Open();
        // Features: values at magnitudes 1e-3..1e3 with full 53-bit mantissas (incompressible, like real measurements), nullable columns, DuckDB's default row groups.
        var gen = Stopwatch.StartNew();
        var per = rows / files;
        var cols = string.Join(", ", Enumerable.Range(1, K).Select(f => $"(random() * 2 - 1) * {Math.Pow(10, f % 7 - 3).ToString("R", CultureInfo.InvariantCulture)} AS f{f}"));
        for (var i = 0; i < files; i++)
            Exec(db, $"COPY (SELECT 's' || (range + {i * per}) AS id, {cols} FROM range({per})) TO '{part}/part-{i:D5}.parquet' (FORMAT parquet)");
        var inputBytes = Directory.GetFiles(part).Sum(f => new FileInfo(f).Length);
        ctx.Log($"  {rows:N0} x {K} features written in {gen.Elapsed.TotalSeconds:F1} s ({inputBytes / 1e9:F2} GB, {files} files)");

        var scoring = Fed.Core.Scoring.ScoringModel.From(model);
        // Literals as DOUBLE parsed from their round-trip text: a bare 0.123 is a DECIMAL in DuckDB, whose cast to DOUBLE
        // is not correctly rounded (10% of the sums then differ in the last bits).
        static string Lit(double v) => $"'{v.ToString("R", CultureInfo.InvariantCulture)}'::DOUBLE";
        var expr = new System.Text.StringBuilder(Lit(scoring.Constants[0]));
        for (var f = 0; f < K; f++) expr.Append($" + {Lit(scoring.Weights[0][f])} * f{f + 1}");
        var duckOut = Path.Combine(dir, "duck.parquet");
        var duckSql = $"COPY (SELECT id AS sample_id, 0::INTEGER AS class_index, {expr} AS partial_score FROM read_parquet('{part}/*.parquet')) " +
                      $"TO '{duckOut}' (FORMAT parquet)";
        var outDir = Path.Combine(dir, "out");
        var fedOut = HiveParquet.PartialScoresPartition(outDir, "bench", 1, "guest", p);

        double RunFed(int threads) => LocalEngine.Execute(plan, null, outDir, format: OutputFormat.Parquet, workers: threads).TotalSeconds;
        double RunDuck(int threads)
        {
            Exec(db, $"SET threads = {threads}");
            var sw = Stopwatch.StartNew();
            Exec(db, duckSql);
            return sw.Elapsed.TotalSeconds;
        }
        // Warm-up: page cache and JIT for both.
        RunFed(Environment.ProcessorCount);
        RunDuck(Environment.ProcessorCount);
        var fed1 = Enumerable.Range(0, 2).Select(_ => BatchScoringBenchmark.OnOneCore(() => RunFed(1)).Result).ToArray();
        var duck1 = Enumerable.Range(0, 2).Select(_ => BatchScoringBenchmark.OnOneCore(() => RunDuck(1)).Result).ToArray();
        var fedN = Enumerable.Range(0, 2).Select(_ => RunFed(Environment.ProcessorCount)).ToArray();
        var duckN = Enumerable.Range(0, 2).Select(_ => RunDuck(Environment.ProcessorCount)).ToArray();
        var peak = Process.GetCurrentProcess().PeakWorkingSet64;
        ctx.Log($"  one thread: Fed {fed1.Min():F2} s, DuckDB {duck1.Min():F2} s; all cores: Fed {fedN.Min():F2} s, DuckDB {duckN.Min():F2} s");

        // Same bits? (DuckDB reads both outputs; outside the timed runs.)
        var check = Query(db, $"SELECT count(*), count(*) FILTER (WHERE f.partial_score <> d.partial_score) FROM read_parquet('{fedOut}/*.parquet') f JOIN read_parquet('{duckOut}') d USING (sample_id)");
        ctx.Log($"  compared {check[0]:N0} rows, {check[1]:N0} differ");

        Dictionary<string, object> Details(double[] fed, double[] duck, int threads) => new()
        {
            ["features"] = K, ["threads"] = threads, ["input_gb"] = inputBytes / 1e9, ["input_files"] = files,
            ["input"] = "TABLE/dt=D/part-*.parquet written by DuckDB (snappy, nullable DOUBLE columns, 122,880-row row groups, string ids)",
            ["fed_seconds_each_run"] = fed, ["duckdb_seconds_each_run"] = duck,
            ["fed"] = "fed predict batch --features TABLE --format parquet (local engine): read, score (PartialScorer, missing-value checks and coverage), write TABLE/model_id=/version=/party=/dt=/part-00000.parquet (sample_id, class_index, partial_score; snappy) + manifest with sha256, swap the partition in",
            ["duckdb"] = "SET threads = N; COPY (SELECT id, 0, c + w1*f1 + ... + w50*f50 FROM read_parquet(...)) TO 'x.parquet' (FORMAT parquet)",
            ["one_thread"] = "the whole process (Fed's reader/scorer/writer threads, DuckDB's) pinned to CPU 0",
            ["rows_compared"] = check[0], ["rows_differing_bits"] = check[1],
            ["peak_working_set_mb"] = peak / 1e6, ["loadavg"] = load, ["loadavg_end"] = File.ReadAllText("/proc/loadavg").Trim(),
        };
        return
        [
            new BenchFigure("parquet_end_to_end_one_thread", "throughput", "rows/s", rows / fed1.Min(), "DuckDB, SET threads = 1, same expression, same files, into Parquet", rows / duck1.Min(), rows)
                { Details = Details(fed1, duck1, 1) },
            new BenchFigure("parquet_end_to_end_all_cores", "throughput", "rows/s", rows / fedN.Min(), $"DuckDB, SET threads = {Environment.ProcessorCount}, same expression, same files, into Parquet", rows / duckN.Min(), rows)
                { Details = Details(fedN, duckN, Environment.ProcessorCount) },
        ];
    }

    static void Exec(DuckDBConnection db, string sql)
    {
        using var c = db.CreateCommand();
        c.CommandText = sql;
        c.ExecuteNonQuery();
    }

    static long[] Query(DuckDBConnection db, string sql)
    {
        using var c = db.CreateCommand();
        c.CommandText = sql;
        using var r = c.ExecuteReader();
        r.Read();
        return Enumerable.Range(0, r.FieldCount).Select(i => Convert.ToInt64(r.GetValue(i))).ToArray();
    }
}
