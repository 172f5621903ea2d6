using System.Diagnostics;
using System.Globalization;
using System.Text;
using Fed.Converter;
using Fed.Core.Data;
using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.SparkPredict;
using Fed.Warehouse;
using Fed.Warehouse.Sqlite;

namespace Fed.Bench.Benchmarks;

/// <summary>
/// Batch partial scoring (issue 4): the embedded engine's in-memory scoring of N x 50 vs numpy matrix-vector
/// (OPENBLAS_NUM_THREADS=1, same run), SQLite executing the generated SQL on the same rows, and end to end
/// from CSV and from a SQLite feature table. Reports rows/s, peak memory and where the time goes.
/// </summary>
public sealed class BatchScoringBenchmark : IBenchmark
{
    public string Name => "batch_scoring";
    const int K = 50;

    public IReadOnlyList<BenchFigure> Run(BenchContext ctx)
    {
        var rows = ctx.Quick ? 200_000 : 10_000_000;
        var sqlRows = ctx.Quick ? 20_000 : 500_000;
        var figures = new List<BenchFigure>();
        var model = MakeModel();
        var scoring = ScoringModel.From(model);
        var scorer = new PartialScorer(scoring);

        // 1. In memory: columnar chunks through PartialScorer on 2 workers (the local engine's hot loop).
        var rng = new Random(1);
        const int chunk = 65_536;
        var chunks = (rows + chunk - 1) / chunk;
        var cols = Enumerable.Range(0, K).Select(_ => new double[rows]).ToArray();
        foreach (var c in cols) for (var i = 0; i < rows; i++) c[i] = rng.NextDouble() * 2 - 1;
        var scores = new double[rows];
        double Once()
        {
            var sw = Stopwatch.StartNew();
            Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, () => (new double[chunk], new int[chunk], new FeatureCoverage(scoring.Features), Enumerable.Range(0, K).Select(_ => new double[chunk]).ToArray()),
                (ci, _, st) =>
                {
                    var (acc, miss, cov, view) = st;
                    var start = ci * chunk;
                    var n = Math.Min(chunk, rows - start);
                    for (var f = 0; f < K; f++) Array.Copy(cols[f], start, view[f], 0, n);
                    scorer.ScoreBatch(view, n, [acc], miss, cov);
                    Array.Copy(acc, 0, scores, start, n);
                    return st;
                }, _ => { });
            return sw.Elapsed.TotalSeconds;
        }
        Once();
        var fedSeconds = Enumerable.Range(0, 3).Min(_ => Once());
        var peak = Environment.WorkingSet;
        ctx.Log($"  embedded: {rows:N0} x {K} in {fedSeconds:F3} s");
        cols = null!;
        GC.Collect();

        var numpySeconds = Numpy(ctx, rows);
        figures.Add(new BenchFigure("partial_scoring_in_memory", "throughput", "rows/s", rows / fedSeconds, "numpy X@w (OPENBLAS_NUM_THREADS=1)", rows / numpySeconds, rows)
        {
            Details = new()
            {
                ["features"] = K, ["fed_seconds"] = fedSeconds, ["numpy_seconds"] = numpySeconds, ["workers"] = Environment.ProcessorCount,
                ["note"] = "Fed includes a copy of each chunk into the columnar batch (as the engine reads it); best of 3. numpy: one BLAS dgemv on a row-major float64 matrix, best of 3, single thread.",
                ["peak_working_set_mb"] = peak / 1e6,
            },
        });

        // 2. SQLite executing the generated SQL vs the embedded engine on the same rows (both from the SQLite table).
        var dir = Path.Combine(ctx.WorkDirectory, "batch");
        Directory.CreateDirectory(dir);
        var dbPath = Path.Combine(dir, "wh.db");
        using var w = new SqliteWarehouse(dbPath);
        new ModelExporter(w).Export(ModelFile.Stamp(model));
        var csv = Path.Combine(dir, "features.csv");
        WriteCsv(csv, sqlRows);
        var p = Partition.Parse("2024-03-01", null);
        var loadWatch = Stopwatch.StartNew();
        FeatureLoader.Load(w, csv, "feat_bench", p);
        var loadSeconds = loadWatch.Elapsed.TotalSeconds;
        var plan = ScoringPlan.Build(w, "bench", null, "guest", "feat_bench", p);
        var sqlRun = SqlEngine.Execute(plan, w);
        var localWh = LocalEngine.Execute(plan, w, Path.Combine(dir, "out-wh"));
        figures.Add(new BenchFigure("sqlite_generated_sql", "throughput", "rows/s", sqlRows / sqlRun.ScoreSeconds, "embedded engine from the same SQLite table to files", sqlRows / localWh.TotalSeconds, sqlRows)
        {
            Details = new()
            {
                ["sql_seconds_insert_select"] = sqlRun.ScoreSeconds, ["sql_seconds_with_coverage"] = sqlRun.TotalSeconds,
                ["embedded_seconds"] = localWh.TotalSeconds, ["embedded_read_seconds"] = localWh.ReadSeconds, ["embedded_score_seconds"] = localWh.ScoreSeconds,
                ["embedded_write_seconds"] = localWh.WriteSeconds, ["feature_load_seconds"] = loadSeconds,
            },
        });

        // 3. End to end from CSV (parse + score + write the partial-score file and manifest).
        var csvPlan = new ScoringPlan { Model = plan.Model, Entry = plan.Entry, Features = csv, Partition = p };
        var e2e = LocalEngine.Execute(csvPlan, w, Path.Combine(dir, "out-csv"));
        figures.Add(new BenchFigure("end_to_end_from_csv", "throughput", "rows/s", sqlRows / e2e.TotalSeconds, "end to end from the SQLite table", sqlRows / localWh.TotalSeconds, sqlRows)
        {
            Details = new()
            {
                ["csv_mb"] = new FileInfo(csv).Length / 1e6, ["read_parse_seconds"] = e2e.ReadSeconds, ["score_seconds"] = e2e.ScoreSeconds,
                ["write_seconds"] = e2e.WriteSeconds, ["total_seconds"] = e2e.TotalSeconds, ["peak_working_set_mb"] = Process.GetCurrentProcess().PeakWorkingSet64 / 1e6,
                ["where_time_goes"] = "reading/parsing (CSV text or SQLite rows) dominates; the dot products are a small share",
            },
        });
        return figures;
    }

    static PartialModel MakeModel()
    {
        var rng = new Random(7);
        return new PartialModel
        {
            ModelId = "bench", Version = 1, Kind = ModelKind.Logistic, PartyId = "guest", Role = PartyRole.Guest, Parties = ["guest", "host"],
            Features = Enumerable.Range(1, K).Select(i => $"f{i}").ToArray(),
            Weights = [Enumerable.Range(0, K).Select(_ => rng.NextDouble() - 0.5).ToArray()], Intercepts = [0.25],
        };
    }

    static void WriteCsv(string path, int rows)
    {
        var rng = new Random(3);
        using var w = new StreamWriter(path, false, new UTF8Encoding(false), 1 << 16);
        w.Write("id");
        for (var f = 1; f <= K; f++) w.Write($",f{f}");
        w.Write('\n');
        for (var r = 0; r < rows; r++)
        {
            w.Write("s"); w.Write(r.ToString(CultureInfo.InvariantCulture));
            for (var f = 0; f < K; f++) { w.Write(','); w.Write((rng.NextDouble() * 2 - 1).ToString("R", CultureInfo.InvariantCulture)); }
            w.Write('\n');
        }
    }

    static double Numpy(BenchContext ctx, int rows)
    {
        var script = $$"""
            import numpy as np, time
            rng = np.random.default_rng(1)
            X = rng.random(({{rows}}, {{K}})) * 2 - 1
            w = rng.random({{K}}) - 0.5
            best = 1e9
            for _ in range(3):
                t = time.perf_counter(); s = 0.25 + X @ w; best = min(best, time.perf_counter() - t)
            print(best)
            """;
        var python = File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
        var output = ctx.RunProcess(python, ["-c", script], new Dictionary<string, string> { ["OPENBLAS_NUM_THREADS"] = "1" });
        return double.Parse(output.Trim(), CultureInfo.InvariantCulture);
    }
}
