using System.Diagnostics;
using System.Globalization;
using System.Text;
using Fed.Core.Model;
using Fed.Training.Protocol;
using Fed.Training.Train;

namespace Fed.Bench.Benchmarks;

/// <summary>
/// Seconds per epoch of federated training (`fed train local`: guest, host, arbiter over loopback HTTP/2 + TLS,
/// ECDH PSI excluded from the epoch time), on breast_cancer and on a synthetic set of rows x (30 guest + 300 host)
/// features, with 1024-bit Paillier keys (FATE's default, what the goal compares with) and, for the synthetic set,
/// also with Fed's default 2048-bit keys. Same-run baseline: the plaintext reference trainer's
/// epoch on the same data (same preprocessing, batches and update). Goal for 100,000 x (30 + 300): no slower than
/// FATE 2.0's published 136 s per epoch on 2 x 16 cores. The full run measures the real 100,000-row set; with --quick
/// it has 2,000 rows and the details give a linear extrapolation to 100,000 rows, labelled as an estimate.
/// </summary>
public sealed class TrainingBenchmark : IBenchmark
{
    public string Name => "training";

    public IReadOnlyList<BenchFigure> Run(BenchContext context)
    {
        var figures = new List<BenchFigure>();
        var data = context.SharedData;
        var bc = new List<LocalParty> { new("guest", Path.Combine(data, "breast_cancer", "guest.csv")), new("host", Path.Combine(data, "breast_cancer", "host.csv")) };
        figures.Add(Measure(context, "breast_cancer", bc, epochs: context.Quick ? 2 : 5, rows: 569, keyBits: 1024, extrapolateTo: 0));

        var rows = context.Quick ? 2_000 : 100_000;
        var dir = Path.Combine(context.WorkDirectory, "synthetic");
        var synth = Synthetic(dir, rows, 30, 300);
        // 1024-bit keys as FATE's default (the goal's comparison), then Fed's default 2048-bit keys
        foreach (var bits in new[] { 1024, 2048 })
            figures.Add(Measure(context, $"synthetic_{rows}x(30+300)" + (bits == 1024 ? "" : "-2048bit"), synth, epochs: 1, rows: rows, keyBits: bits, extrapolateTo: 100_000));
        return figures;
    }

    static string LoadAverage() => File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "";

    static BenchFigure Measure(BenchContext context, string name, List<LocalParty> parties, int epochs, long rows, int keyBits, int extrapolateTo)
    {
        var load = LoadAverage();
        var o = new TrainOptions { KeyBits = keyBits, InsecureTestKeyBits = keyBits < 2048, MaxIter = epochs, Tolerance = 0, BatchSize = 0, TestBuckets = 0 }; // every aligned row trains
        var outDir = Path.Combine(context.WorkDirectory, name);
        context.Log($"   {name}: federated, {epochs} epoch(s)");
        var r = LocalTraining.RunAsync(parties, "id", "y", o, "ecdh", outDir).GetAwaiter().GetResult();
        var g = r.Guest;
        var fedEpoch = (g.Seconds["total"] - g.Seconds.GetValueOrDefault("psi")) / g.Losses.Count;

        var sw = Stopwatch.StartNew();
        var plain = PlainReference.Run(parties, "id", "y", o);
        var plainEpoch = sw.Elapsed.TotalSeconds / plain.Train.Epochs; // includes loading + preprocessing: favours neither much
        var details = new Dictionary<string, object>
        {
            ["key_bits"] = keyBits, ["feature_bits"] = o.FeatureBits, ["epochs"] = g.Losses.Count, ["train_rows"] = g.TrainRows, ["intersection"] = g.Intersection,
            ["guest_seconds"] = g.Seconds, ["host_seconds"] = r.Outcomes[1].Seconds, ["arbiter_seconds"] = r.Outcomes[^1].Seconds,
            ["objective"] = "logistic: Fourier sigmoid, P = 44, J = 10: the arbiter returns 20 fresh encryptions per row (CRT fixed-base)",
            ["loadavg_at_start"] = load, ["loadavg_at_end"] = LoadAverage(),
            ["cores"] = Environment.ProcessorCount,
            ["transport"] = "HTTP/2 + mutual TLS on loopback, all three roles in one process",
        };
        if (extrapolateTo > 0)
        {
            details["goal"] = "100,000 x (30+300) epoch <= 136 s (FATE 2.0 published, 2 x 16 cores, FATE's default 1024-bit key)";
            if (g.TrainRows < extrapolateTo)
            {
                details["extrapolated_seconds_per_epoch_at_100000_rows"] = fedEpoch * extrapolateTo / g.TrainRows;
                details["extrapolation_note"] = "linear in training rows; an estimate, not a measurement (--quick)";
            }
            else details["measured_at_full_size"] = true;
        }
        return new BenchFigure(name, "seconds_per_epoch", "s", fedEpoch, "plaintext reference trainer, same data and settings", plainEpoch, rows) { Details = details };
    }

    /// <summary>Guest: id, y, 30 features; host: id, 300 features; all ids shared; y from a planted linear model.</summary>
    static List<LocalParty> Synthetic(string dir, int rows, int guestFeatures, int hostFeatures)
    {
        Directory.CreateDirectory(dir);
        var rng = new Random(7);
        var w = Enumerable.Range(0, guestFeatures + hostFeatures).Select(_ => rng.NextDouble() * 2 - 1).ToArray();
        var g = new StringBuilder("id,y," + string.Join(',', Enumerable.Range(0, guestFeatures).Select(i => $"g{i}")) + "\n");
        var h = new StringBuilder("id," + string.Join(',', Enumerable.Range(0, hostFeatures).Select(i => $"h{i}")) + "\n");
        var x = new double[w.Length];
        for (var r = 0; r < rows; r++)
        {
            var z = 0.0;
            for (var f = 0; f < x.Length; f++) { x[f] = Math.Round(rng.NextDouble() * 4 - 2, 4); z += w[f] * x[f] / 10; }
            var y = rng.NextDouble() < 1 / (1 + Math.Exp(-z)) ? 1 : 0;
            var id = "s" + r.ToString("D7", CultureInfo.InvariantCulture);
            g.Append(id).Append(',').Append(y);
            for (var f = 0; f < guestFeatures; f++) g.Append(',').Append(x[f].ToString(CultureInfo.InvariantCulture));
            g.Append('\n');
            h.Append(id);
            for (var f = guestFeatures; f < x.Length; f++) h.Append(',').Append(x[f].ToString(CultureInfo.InvariantCulture));
            h.Append('\n');
        }
        File.WriteAllText(Path.Combine(dir, "guest.csv"), g.ToString());
        File.WriteAllText(Path.Combine(dir, "host.csv"), h.ToString());
        return [new("guest", Path.Combine(dir, "guest.csv")), new("host", Path.Combine(dir, "host.csv"))];
    }
}
