using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.Training.Data;
using Fed.Training.Protocol;
using Fed.Training.Train;

namespace Fed.Training.Tests;

/// <summary>Shared helpers: data paths, scoring the written models with Fed.Core's scorer and combiner, metrics.</summary>
public static class TrainingFixtures
{
    public static string Data(string set, string file)
    {
        var dir = Fed.TestSupport.TestEnvironment.SharedData;
        var path = Path.Combine(dir, set, file);
        Assert.True(File.Exists(path), $"data file {path} missing (set FED_SHARED_DATA to the shared data directory)");
        return path;
    }

    public static List<LocalParty> Parties(string set) => set switch
    {
        "german_credit" => [new("guest", Data(set, "guest.csv")), new("host", Data(set, "host1.csv")), new("host2", Data(set, "host2.csv"))],
        _ => [new("guest", Data(set, "guest.csv")), new("host", Data(set, "host.csv"))],
    };

    public static string TempDir()
    {
        var d = Path.Combine(Path.GetTempPath(), "fed-train-test-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(d);
        return d;
    }

    /// <summary>Scores the test split (ids all parties hold, crc32 % 10 &lt; 3; or the training split) with the written model files.</summary>
    public static (double[] Y, Prediction[] P) ScoreTest(IReadOnlyDictionary<string, string> modelPaths, IReadOnlyList<LocalParty> parties, int testBuckets = 3, bool trainRows = false)
    {
        var models = parties.ToDictionary(p => p.Name, p => ScoringModel.From(ModelFile.Read(modelPaths[p.Name])));
        var tables = parties.ToDictionary(p => p.Name, p => PartyTable.Load(p.Path, "id", p.Name == "guest" ? "y" : null));
        var index = tables.ToDictionary(t => t.Key, t => t.Value.Ids.Select((id, i) => (id, i)).ToDictionary(x => x.id, x => x.i));
        var rule = new SplitRule(testBuckets);
        var ids = tables["guest"].Ids.Where(id => rule.IsTrain(id) == trainRows && index.Values.All(ix => ix.ContainsKey(id))).ToList();
        var sig = models["guest"].Signature;
        var y = new List<double>(); var preds = new List<Prediction>();
        foreach (var id in ids)
        {
            var partials = new Dictionary<string, double[]>();
            foreach (var (name, m) in models)
            {
                var t = tables[name]; var r = index[name][id];
                var features = m.Features.Select(f => t.Columns[Array.IndexOf(t.Features, f)][r]).ToArray();
                var s = new double[m.OutputCount];
                new PartialScorer(m).ScoreRow(features, s);
                partials[name] = s;
            }
            preds.Add(Combiner.Combine(sig, partials, id));
            y.Add(tables["guest"].Labels![index["guest"][id]]);
        }
        return (y.ToArray(), preds.ToArray());
    }

    public static double Auc(double[] y, double[] score) => Metrics.Auc(y, score);
    public static double R2(double[] y, double[] p) => Metrics.R2(y, p);

    /// <summary>The committed scikit-learn references (reference/sklearn_reference.py, run once; CI does not need sklearn).</summary>
    public static System.Text.Json.JsonElement Reference(string set) =>
        System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "reference", "sklearn_reference.json")))
            .RootElement.GetProperty("sets").GetProperty(set);
}
