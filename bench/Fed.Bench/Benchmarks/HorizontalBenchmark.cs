using Fed.Core.Model;
using Fed.Training.Data;
using Fed.Training.Horizontal;

namespace Fed.Bench.Benchmarks;

/// <summary>
/// Horizontal FedAvg: time per round for 100 clients x 10,000 rows x 50 features (synthetic logistic data), under 10
/// aggregation servers of 10 clients and a coordinator, every role its own HTTP/2 + TLS endpoint in this process
/// (the clients share this machine's 2 cores: a real deployment runs each client on its own hardware). One local
/// epoch of 256-row steps per round (DP: Poisson sampling at q = 256/10,000, 39 noisy steps). Four configurations in
/// one run: plain FedAvg (the baseline: the same protocol with the pairwise masks left out, an in-process switch only
/// the benchmark has), secure aggregation only, DP only, and both (the goal: at most 2 s per round).
/// Each figure is the better of two interleaved passes. --quick: 20 clients x 2,000 rows under 4 servers.
/// </summary>
public sealed class HorizontalBenchmark : IBenchmark
{
    public string Name => "horizontal";

    public IReadOnlyList<BenchFigure> Run(BenchContext context)
    {
        int clients = context.Quick ? 20 : 100, rows = context.Quick ? 2_000 : 10_000, features = 50, aggregators = context.Quick ? 4 : 10;
        int rounds = context.Quick ? 3 : 5;
        var tables = Synthetic(clients, rows, features);
        var names = Enumerable.Range(1, clients).Select(i => $"client{i:D3}").ToList();
        var options = new HorizontalOptions { Kind = ModelKind.Logistic, Rounds = rounds, BatchSize = 256, LearningRate = 0.5, L2 = 1e-4, TestBuckets = 0, Tolerance = 0 };

        double PerRound(string label, bool secure, bool dp, int pass)
        {
            var o = dp ? options with { DpEpsilon = 8, DpDelta = 1e-5 } : options;
            using var plain = secure ? null : PairwiseMasker.WithoutMasksForBenchmark();
            var dir = Path.Combine(context.WorkDirectory, $"horizontal-{label}-{pass}");
            // 111 endpoints share 2 cores here: a generous liveness window keeps a busy endpoint from being taken for a dead one
            var r = HorizontalLocal.RunAsync(names, tables, aggregators, o, dir, timeouts: new Fed.Training.Transport.TransportTimeouts { Liveness = TimeSpan.FromSeconds(120), Send = TimeSpan.FromSeconds(120) })
                .GetAwaiter().GetResult();
            // the first round carries one-time costs (JIT, connection warm-up); report the steady rounds
            var steady = r.Coordinator.SecondsPerRound.Skip(1).ToList();
            context.Log($"  {label} (pass {pass}): {steady.Average():F3} s/round (rounds {string.Join(", ", r.Coordinator.SecondsPerRound.Select(s => s.ToString("F3")))}), setup {r.Coordinator.SetupSeconds:F1} s");
            details[$"{label} pass {pass}"] = new Dictionary<string, object>
            {
                ["seconds_per_round"] = steady.Average(), ["all_rounds"] = r.Coordinator.SecondsPerRound, ["setup_seconds"] = r.Coordinator.SetupSeconds,
                ["secure_aggregation"] = secure, ["dp"] = dp, ["loadavg_after"] = LoadAverage(),
            };
            return steady.Average();
        }

        // Two passes over the four configurations, each figure the better of its two: on a shared machine the load
        // changes between runs, and interleaving keeps one configuration from getting all the quiet minutes.
        double baseline = double.MaxValue, secureOnly = double.MaxValue, dpOnly = double.MaxValue, both = double.MaxValue;
        for (var pass = 1; pass <= 2; pass++)
        {
            baseline = Math.Min(baseline, PerRound("plain", secure: false, dp: false, pass));
            secureOnly = Math.Min(secureOnly, PerRound("secure-aggregation", secure: true, dp: false, pass));
            dpOnly = Math.Min(dpOnly, PerRound("dp", secure: false, dp: true, pass));
            both = Math.Min(both, PerRound("secure-aggregation+dp", secure: true, dp: true, pass));
        }
        var size = $"{clients}x{rows}x{features}";
        const string baselineName = "plain FedAvg (same protocol and transport, no masks, no DP), same run";
        BenchFigure Figure(string name, double value, string what) => new($"horizontal-{name}-{size}", "time per round", "s", value, baselineName, baseline, (long)clients * rows)
        {
            Details = new()
            {
                ["configuration"] = what, ["goal"] = "<= 2 s per round with secure aggregation and DP", ["clients"] = clients, ["aggregators"] = aggregators,
                ["rows_per_client"] = rows, ["features"] = features, ["local_epochs"] = 1, ["batch_size"] = 256, ["rounds_measured"] = rounds - 1,
                ["cores"] = Environment.ProcessorCount, ["runs"] = details, ["loadavg_after"] = LoadAverage(),
            },
        };
        return
        [
            Figure("secagg-dp", both, "secure aggregation + record-level DP-SGD (epsilon 8, delta 1e-5)"),
            Figure("secagg", secureOnly, "secure aggregation, no DP"),
            Figure("dp", dpOnly, "DP-SGD, no masks"),
        ];
    }

    readonly Dictionary<string, object> details = new();

    /// <summary>Each client's rows: standard normal features, labels from a fixed logistic model (seeded).</summary>
    static List<PartyTable> Synthetic(int clients, int rows, int features)
    {
        var truth = new Random(7);
        var w = Enumerable.Range(0, features).Select(_ => truth.NextDouble() * 2 - 1).ToArray();
        return Enumerable.Range(0, clients).Select(c =>
        {
            var rng = new Random(1000 + c);
            var cols = Enumerable.Range(0, features).Select(_ => new double[rows]).ToArray();
            var labels = new double[rows];
            for (var i = 0; i < rows; i++)
            {
                var z = 0.0;
                for (var f = 0; f < features; f++) { var x = NextGaussian(rng); cols[f][i] = x; z += w[f] * x; }
                labels[i] = rng.NextDouble() < 1 / (1 + Math.Exp(-z)) ? 1 : 0;
            }
            return new PartyTable
            {
                Path = $"synthetic-client-{c}", Ids = Enumerable.Range(0, rows).Select(i => $"c{c}-{i}").ToArray(),
                Features = Enumerable.Range(1, features).Select(f => $"f{f}").ToArray(), Columns = cols, Labels = labels,
            };
        }).ToList();
    }

    static double NextGaussian(Random r) => Math.Sqrt(-2 * Math.Log(1 - r.NextDouble())) * Math.Cos(2 * Math.PI * r.NextDouble());

    static string LoadAverage() => File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "";
}
