using System.Globalization;
using System.Text;
using Fed.Core.Model;

namespace Fed.TestSupport;

/// <summary>
/// A model of N parties (guest + N-1 hosts: "guest", "host1", ...) with seeded random weights, and one feature CSV per
/// party where each party lacks a few ids (so some samples are missing at some party). For tests of every path.
/// </summary>
public sealed class MultiPartyFixture
{
    public required string ModelsDir { get; init; }
    public required string ModelId { get; init; }
    public required string[] Parties { get; init; }
    public required Dictionary<string, string> Csv { get; init; }
    public required Dictionary<string, string> ModelFiles { get; init; }

    public static MultiPartyFixture Write(string dir, int parties, int rows = 400, int features = 4, int seed = 5,
        ModelKind kind = ModelKind.Logistic, string modelId = "mp", int version = 1)
    {
        var rng = new Random(seed);
        var names = new[] { "guest" }.Concat(Enumerable.Range(1, parties - 1).Select(i => $"host{i}")).ToArray();
        var classes = PartialModel.HasClasses(kind) ? new[] { "a", "b", "c" } : [];
        var outputs = Math.Max(1, classes.Length);
        var models = Path.Combine(dir, "models");
        Directory.CreateDirectory(models);
        var csv = new Dictionary<string, string>();
        var files = new Dictionary<string, string>();
        foreach (var (party, i) in names.Select((p, i) => (p, i)))
        {
            var feats = Enumerable.Range(0, features).Select(f => $"{party}_x{f}").ToArray();
            var m = ModelFile.Stamp(new PartialModel
            {
                ModelId = modelId, Version = version, Kind = kind, Classes = classes, PartyId = party,
                Role = i == 0 ? PartyRole.Guest : PartyRole.Host, Parties = names, Features = feats,
                Weights = Enumerable.Range(0, outputs).Select(_ => feats.Select(_ => Math.Round(rng.NextDouble() * 2 - 1, 6)).ToArray()).ToArray(),
                Intercepts = i == 0 ? Enumerable.Range(0, outputs).Select(_ => Math.Round(rng.NextDouble() - 0.5, 6)).ToArray() : [],
                Transform = FeatureTransform.Identity, Missing = MissingPolicy.RejectRow,
                Training = new SortedDictionary<string, string>(StringComparer.Ordinal) { ["algorithm"] = "fixture" },
            });
            files[party] = Path.Combine(models, $"{party}.json");
            ModelFile.Write(m, files[party]);
            var sb = new StringBuilder("id," + string.Join(',', feats) + "\n");
            for (var r = 0; r < rows; r++)
            {
                if ((r * 7 + i * 13) % 37 == 0) continue; // this party lacks the id
                sb.Append("c").Append(r.ToString(CultureInfo.InvariantCulture));
                foreach (var _ in feats) sb.Append(',').Append(Math.Round(rng.NextDouble() * 6 - 3, 4).ToString("R", CultureInfo.InvariantCulture));
                sb.Append('\n');
            }
            csv[party] = Path.Combine(dir, $"{party}.csv");
            File.WriteAllText(csv[party], sb.ToString());
        }
        return new MultiPartyFixture { ModelsDir = models, ModelId = modelId, Parties = names, Csv = csv, ModelFiles = files };
    }

    /// <summary>--party P=CSV arguments for every party.</summary>
    public string[] PartyArgs() => Parties.SelectMany(p => new[] { "--party", $"{p}={Csv[p]}" }).ToArray();
}

/// <summary>Statistics the masking transcript tests share.</summary>
public static class TranscriptStats
{
    /// <summary>Pearson correlation of two equally long series.</summary>
    public static double Pearson(double[] x, double[] y)
    {
        double mx = x.Average(), my = y.Average(), sxy = 0, sxx = 0, syy = 0;
        for (var i = 0; i < x.Length; i++) { sxy += (x[i] - mx) * (y[i] - my); sxx += (x[i] - mx) * (x[i] - mx); syy += (y[i] - my) * (y[i] - my); }
        return sxy / Math.Sqrt(sxx * syy);
    }

    /// <summary>A fixture party's true partial scores (first output) per sample, through the one scorer.</summary>
    public static Dictionary<string, double> TrueScores(MultiPartyFixture fx, string party)
    {
        var model = Fed.Core.Scoring.ScoringModel.From(ModelFile.Read(fx.ModelFiles[party]));
        var scorer = new Fed.Core.Scoring.PartialScorer(model);
        var result = new Dictionary<string, double>();
        var s = new double[model.OutputCount];
        foreach (var line in File.ReadLines(fx.Csv[party]).Skip(1))
        {
            var f = line.Split(',');
            scorer.ScoreRow(f.Skip(1).Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray(), s);
            result[f[0]] = s[0];
        }
        return result;
    }
}
