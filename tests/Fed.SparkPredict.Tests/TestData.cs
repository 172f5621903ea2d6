using System.Globalization;
using Fed.Converter;
using Fed.Core.Model;
using Fed.Warehouse;
using Fed.Cli;
using Fed.Cli.Commands;

namespace Fed.SparkPredict.Tests;

/// <summary>A real data set from ../shared/data with deterministic partial models (seeded weights, no training).</summary>
public sealed class Scenario : IDisposable
{
    public static readonly string DataRoot = Fed.TestSupport.TestEnvironment.SharedData;

    public string Dir { get; } = Path.Combine(Path.GetTempPath(), "fed-batch-tests-" + Guid.NewGuid().ToString("N")[..8]);
    public string ModelsDir => Path.Combine(Dir, "models");
    public string ModelId { get; }
    public ModelKind Kind { get; }
    public string[] Parties { get; }
    public Dictionary<string, string> Csv { get; } = new();
    public Dictionary<string, PartialModel> Models { get; } = new();
    public string Dataset { get; }
    /// <summary>The party's feature table (per data set, since a PostgreSQL test database is shared).</summary>
    public string Table(string party) => $"feat_{Dataset}_{party}";

    /// <summary>dataset: breast_cancer | wine | german_credit. missing: per party, the policy (reject or default).</summary>
    public Scenario(string dataset, ModelKind kind, string[] classes, int seed = 42, Dictionary<string, MissingPolicyKind>? policy = null,
        Dictionary<string, int>? blanks = null, string? modelId = null)
    {
        Directory.CreateDirectory(ModelsDir);
        Dataset = dataset;
        ModelId = modelId ?? dataset.Replace("_", "-") + "-m";
        Kind = kind;
        var files = Directory.GetFiles(Path.Combine(DataRoot, dataset), "*.csv").Where(f => !f.EndsWith("centralized.csv"))
            .OrderBy(f => Path.GetFileName(f) == "guest.csv" ? "" : Path.GetFileName(f)).ToList();
        Parties = files.Select(f => Path.GetFileNameWithoutExtension(f)).ToArray();
        var rng = new Random(seed);
        foreach (var (file, i) in files.Select((f, i) => (f, i)))
        {
            var party = Parties[i];
            var lines = File.ReadAllLines(file);
            // Optionally blank a few cells (missing values) in a copy of the file.
            if (blanks != null && blanks.TryGetValue(party, out var nb))
                for (var b = 0; b < nb; b++)
                {
                    var row = 1 + (b * 37) % (lines.Length - 1);
                    var cells = lines[row].Split(',');
                    cells[1 + (b % (cells.Length - 1))] = "";
                    lines[row] = string.Join(',', cells);
                }
            var csv = Path.Combine(Dir, party + ".csv");
            File.WriteAllLines(csv, lines);
            Csv[party] = csv;
            var header = lines[0].Split(',');
            var features = header.Where(h => h != "id" && h != "y").ToArray();
            var idx = features.Select(f => Array.IndexOf(header, f)).ToArray();
            var values = lines.Skip(1).Select(l => l.Split(',')).ToList();
            double[] Col(int j) => values.Select(v => v[j]).Where(s => s.Length > 0).Select(s => double.Parse(s, CultureInfo.InvariantCulture)).ToArray();
            var mean = idx.Select(j => Col(j).Average()).ToArray();
            var std = idx.Select((j, f) => Math.Sqrt(Col(j).Select(x => (x - mean[f]) * (x - mean[f])).Average()) is var s && s > 0 ? s : 1.0).ToArray();
            var outputs = PartialModel.HasClasses(kind) ? classes.Length : 1;
            var pol = policy != null && policy.TryGetValue(party, out var pk) ? pk : MissingPolicyKind.Reject;
            var model = new PartialModel
            {
                ModelId = ModelId, Version = 1, Kind = kind, Classes = classes, PartyId = party,
                Role = i == 0 ? PartyRole.Guest : PartyRole.Host, Parties = Parties, Features = features,
                Weights = Enumerable.Range(0, outputs).Select(_ => features.Select(_ => Math.Round(rng.NextDouble() * 1.2 - 0.6, 6)).ToArray()).ToArray(),
                Intercepts = i == 0 ? Enumerable.Range(0, outputs).Select(_ => Math.Round(rng.NextDouble() - 0.5, 6)).ToArray() : [],
                Transform = new FeatureTransform(TransformKind.Standardize, mean, std),
                Missing = pol == MissingPolicyKind.Reject ? MissingPolicy.RejectRow : new MissingPolicy(MissingPolicyKind.Default, mean),
            };
            Models[party] = ModelFile.Write(model, Path.Combine(ModelsDir, party + ".json"));
        }
    }

    /// <summary>Exports every party's model into the warehouse and loads every party's CSV as feat_{party} for dt.</summary>
    public void Setup(IWarehouse w, string dt = "2024-03-01")
    {
        foreach (var m in Models.Values) new ModelExporter(w).Export(m);
        foreach (var p in Parties) FeatureLoader.Load(w, Csv[p], Table(p), Partition.Parse(dt, null));
    }

    public void Dispose() { try { Directory.Delete(Dir, true); } catch (IOException) { } }
}

public static class Env
{
    public static string Require(string name) => Fed.TestSupport.TestEnvironment.Require(name);

    public static (int Code, string Out, string Err) Cli(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        var code = CliApp.Run(args, PredictCommands.All, o, e);
        return (code, o.ToString(), e.ToString());
    }

    public static Dictionary<string, (double Value, string? Class, string? Probs)> ReadPredictions(IWarehouse w, string model, string dt, string? hour = null)
    {
        var t = hour is null ? "fed_predictions" : "fed_predictions_hourly";
        var d = new Dictionary<string, (double, string?, string?)>();
        using var r = hour is null
            ? w.Query($"SELECT sample_id, predict_value, predicted_class, probabilities FROM {t} WHERE model_id = ? AND dt = ?", model, dt)
            : w.Query($"SELECT sample_id, predict_value, predicted_class, probabilities FROM {t} WHERE model_id = ? AND dt = ? AND hour = ?", model, dt, hour);
        while (r.Read()) d.Add(r.GetString(0), (r.GetDouble(1), r.IsNull(2) ? null : r.GetString(2), r.IsNull(3) ? null : r.GetString(3)));
        return d;
    }

    public static Dictionary<(string Party, string Id, long Class), double> ReadPartials(IWarehouse w, string model, string dt)
    {
        var d = new Dictionary<(string, string, long), double>();
        using var r = w.Query("SELECT party, sample_id, class_index, partial_score FROM fed_partial_scores WHERE model_id = ? AND dt = ?", model, dt);
        while (r.Read()) d.Add((r.GetString(0), r.GetString(1), r.GetInt64(2)), r.GetDouble(3));
        return d;
    }

    public static long Bits(double x) => BitConverter.DoubleToInt64Bits(x);
}
