using Fed.Converter;
using Fed.Core.Data;
using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.Warehouse;

namespace Fed.Streaming.Tests;

/// <summary>
/// Real data (breast_cancer, vertically split: guest 10 features, host 20) and a two-party logistic model with
/// deterministic fixed weights (no training), versions 1 and 2, written with ModelFile.Write and exported with
/// ModelExporter into one SQLite warehouse per party. v1 is active. Shared with bench/Fed.Bench (linked source).
/// </summary>
public sealed class BreastCancerModels
{
    public required string ModelId { get; init; }
    public static readonly string DataDir = Environment.GetEnvironmentVariable("FED_SHARED_DATA") is { Length: > 0 } d
        ? Path.Combine(d, "breast_cancer") : FindData();

    /// <summary>../shared/data/breast_cancer beside the repository (the layout CI and developers share).</summary>
    static string FindData()
    {
        var dir = AppContext.BaseDirectory;
        while (dir != null && !File.Exists(Path.Combine(dir, "Fed.sln"))) dir = Path.GetDirectoryName(dir);
        return Path.GetFullPath(Path.Combine(dir ?? ".", "..", "shared", "data", "breast_cancer"));
    }
    public static string GuestCsv => Path.Combine(DataDir, "guest.csv");
    public static string HostCsv => Path.Combine(DataDir, "host.csv");

    public required string Dir { get; init; }
    public string GuestDb => Path.Combine(Dir, "guest.db");
    public string HostDb => Path.Combine(Dir, "host.db");
    public required string[] GuestFeatures { get; init; }
    public required string[] HostFeatures { get; init; }
    /// <summary>Features per sample id, per party, exactly as read from the CSVs.</summary>
    public required Dictionary<string, double[]> Guest { get; init; }
    public required Dictionary<string, double[]> Host { get; init; }

    public IEnumerable<string> BothIds => Guest.Keys.Where(Host.ContainsKey);

    public static BreastCancerModels Create(string dir, string modelId)
    {
        Directory.CreateDirectory(dir);
        var gf = CsvFeatureSource.ReadHeader(GuestCsv).Where(h => h is not "id" and not "y").ToArray();
        var hf = CsvFeatureSource.ReadHeader(HostCsv).Where(h => h is not "id").ToArray();
        var m = new BreastCancerModels { Dir = dir, ModelId = modelId, GuestFeatures = gf, HostFeatures = hf, Guest = Read(GuestCsv, gf), Host = Read(HostCsv, hf) };
        string[] parties = ["guest", "host"];
        foreach (var v in new[] { 1, 2 })
        {
            Export(m.GuestDb, Build(modelId, "guest", PartyRole.Guest, gf, m.Guest, v, parties), dir, activate: v == 1);
            Export(m.HostDb, Build(modelId, "host", PartyRole.Host, hf, m.Host, v, parties), dir, activate: v == 1);
        }
        return m;
    }

    static void Export(string db, PartialModel model, string dir, bool activate)
    {
        // One directory per version: the layout 'fed predict local --models DIR' reads.
        var path = Path.Combine(dir, $"v{model.Version}", $"{model.PartyId}.json");
        ModelFile.Write(model, path);
        using var w = WarehouseFactory.Open("sqlite:" + db);
        new ModelExporter(w).Export(ModelFile.Read(path), activate);
    }

    /// <summary>Fixed weights (a deterministic function of position and version) on standardized features.</summary>
    static PartialModel Build(string modelId, string party, PartyRole role, string[] features, Dictionary<string, double[]> rows, int version, string[] parties)
    {
        var k = features.Length;
        var mean = new double[k];
        var std = new double[k];
        for (var f = 0; f < k; f++)
        {
            var xs = rows.Values.Select(r => r[f]).Where(x => !double.IsNaN(x)).ToArray();
            mean[f] = Math.Round(xs.Average(), 6);
            std[f] = Math.Round(Math.Sqrt(xs.Select(x => (x - mean[f]) * (x - mean[f])).Average()), 6);
            if (std[f] <= 0) std[f] = 1;
        }
        var w = Enumerable.Range(0, k).Select(f => Math.Round(0.6 * Math.Sin(1.3 * f + 0.7 * version + (role == PartyRole.Guest ? 0.0 : 2.0)), 4)).ToArray();
        return new PartialModel
        {
            ModelId = modelId, Version = version, Kind = ModelKind.Logistic, PartyId = party, Role = role, Parties = parties,
            Features = features, Weights = [w], Intercepts = role == PartyRole.Guest ? [-0.25 * version] : [],
            Transform = new FeatureTransform(TransformKind.Standardize, mean, std), Missing = MissingPolicy.RejectRow,
        };
    }

    static Dictionary<string, double[]> Read(string csv, string[] features)
    {
        var d = new Dictionary<string, double[]>(StringComparer.Ordinal);
        using var src = new CsvFeatureSource(csv, features);
        var b = new FeatureBatch(features.Length, 256);
        while (src.ReadBatch(b))
            for (var r = 0; r < b.Count; r++)
                d[b.SampleIds[r]] = Enumerable.Range(0, features.Length).Select(f => b.Columns[f][r]).ToArray();
        return d;
    }

    /// <summary>The reference: the same features scored directly with Fed.Core (PartialScorer + Combiner), models read back from the warehouses.</summary>
    public Dictionary<string, Prediction> Expected(int version)
    {
        ScoringModel g, h;
        using (var w = WarehouseFactory.Open("sqlite:" + GuestDb)) g = new ModelRegistry(w).Load(ModelId, "guest", version);
        using (var w = WarehouseFactory.Open("sqlite:" + HostDb)) h = new ModelRegistry(w).Load(ModelId, "host", version);
        var gs = new PartialScorer(g);
        var hs = new PartialScorer(h);
        var result = new Dictionary<string, Prediction>(StringComparer.Ordinal);
        foreach (var id in BothIds)
        {
            var pg = new double[1];
            var ph = new double[1];
            gs.ScoreRow(Guest[id], pg);
            hs.ScoreRow(Host[id], ph);
            result[id] = Combiner.Combine(g.Signature, new Dictionary<string, double[]> { ["guest"] = pg, ["host"] = ph }, id);
        }
        return result;
    }

    /// <summary>The batch path's reference ('fed predict local') on the same CSVs and model files: sample id -> prediction.</summary>
    public Dictionary<string, double> PredictLocal(int version)
    {
        var res = Fed.SparkPredict.LocalPredictor.Run(Path.Combine(Dir, $"v{version}"), [("guest", GuestCsv), ("host", HostCsv)],
            Path.Combine(Dir, $"local-v{version}.csv"));
        return res.Predictions.Ids.Select((id, r) => (id, r)).ToDictionary(x => x.id, x => res.Predictions.Values[x.r]);
    }

    public void Activate(string db, int version)
    {
        using var w = WarehouseFactory.Open("sqlite:" + db);
        new ModelRegistry(w).Activate(ModelId, version);
    }
}
