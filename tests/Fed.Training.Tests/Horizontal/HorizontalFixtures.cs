using System.Globalization;
using System.Text.Json.Nodes;
using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.Training.Data;
using Fed.Training.Horizontal;

namespace Fed.Training.Tests.Horizontal;

/// <summary>Client splits of the shared data (IID, label skew, size skew), the scikit-learn references and held-out scoring.</summary>
public static class HorizontalFixtures
{
    public const int Clients = 6;

    /// <summary>The committed output of reference/sklearn_reference.py for a data set.</summary>
    public static (string Metric, double Value, double L2) Reference(string set)
    {
        var dir = Path.Combine(AppContext.BaseDirectory, "Horizontal", "reference", "reference.json");
        var s = JsonNode.Parse(File.ReadAllText(dir))!["sets"]![set]!;
        return ((string)s["metric"]!, (double)s["value"]!, (double)s["l2"]!);
    }

    static double Unit(string id, string salt) => Crc32.Compute(salt + id) / 4294967296.0;

    /// <summary>
    /// Splits centralized.csv (the union) into 6 (or <c>count</c>) client files. "iid": a hash of the id picks the client. "label": 80%
    /// of each client's rows come from its dominant label bin (the class, or for a numeric target its sextile), the
    /// rest anywhere. "size": client sizes in the ratio 1:2:3:5:8:13. Deterministic (hashes of the ids).
    /// </summary>
    public static List<HorizontalClient> Split(string set, string how, string dir, int count = Clients)
    {
        if (how != "iid" && count != Clients) throw new ArgumentException("skewed splits are defined for 6 clients");
        var lines = File.ReadAllLines(TrainingFixtures.Data(set, "centralized.csv"));
        var header = lines[0];
        var rows = lines.Skip(1).ToList();
        var y = rows.Select(r => double.Parse(r.Split(',')[1], CultureInfo.InvariantCulture)).ToArray();
        var distinct = y.Distinct().Order().ToArray();
        int[] bin;
        if (distinct.Length <= 10) bin = y.Select(v => Array.IndexOf(distinct, v)).ToArray();
        else
        {
            var sorted = y.Order().ToArray();
            bin = y.Select(v => Math.Min(count - 1, Array.BinarySearch(sorted, v) * count / sorted.Length)).Select(b => Math.Max(0, b)).ToArray();
        }
        var bins = bin.Max() + 1;
        double[] sizes = [1, 2, 3, 5, 8, 13];
        var cumulative = sizes.Select((_, k) => sizes.Take(k + 1).Sum() / sizes.Sum()).ToArray();
        var client = rows.Select((r, i) =>
        {
            var id = r[..r.IndexOf(',')];
            var u = Unit(id, "client");
            switch (how)
            {
                case "iid": return (int)(u * count);
                case "size": return Array.FindIndex(cumulative, c => u < c);
                case "label":
                    var dominated = Enumerable.Range(0, count).Where(k => k % bins == bin[i]).ToArray();
                    if (Unit(id, "skew") < 0.8 && dominated.Length > 0) return dominated[(int)(u * dominated.Length)];
                    return (int)(u * count);
                default: throw new ArgumentException(how);
            }
        }).ToArray();
        Directory.CreateDirectory(dir);
        var result = new List<HorizontalClient>();
        for (var k = 0; k < count; k++)
        {
            var path = Path.Combine(dir, $"client{k + 1}.csv");
            File.WriteAllLines(path, rows.Where((_, i) => client[i] == k).Prepend(header));
            result.Add(new HorizontalClient($"client{k + 1}", path));
        }
        return result;
    }

    /// <summary>Scores every client's held-out rows with the written one-party model through Fed.Core's scorer and
    /// combiner, and returns the reference's metric on them.</summary>
    public static double HeldOutMetric(string modelPath, IReadOnlyList<HorizontalClient> clients, string metric)
    {
        var file = ModelFile.Read(modelPath);
        var model = ScoringModel.From(file);
        var scorer = new PartialScorer(model);
        var rule = new SplitRule(3);
        var y = new List<double>(); var score = new List<double>(); var predicted = new List<double>();
        foreach (var c in clients)
        {
            var t = PartyTable.Load(c.Path, "id", "y");
            for (var i = 0; i < t.Rows; i++)
            {
                if (rule.IsTrain(t.Ids[i])) continue;
                var features = model.Features.Select(f => t.Columns[Array.IndexOf(t.Features, f)][i]).ToArray();
                var s = new double[model.OutputCount];
                scorer.ScoreRow(features, s);
                var p = Combiner.Combine(model.Signature, new Dictionary<string, double[]> { [HorizontalModel.Party] = s }, t.Ids[i]);
                y.Add(t.Labels![i]);
                score.Add(p.Value);
                predicted.Add(file.Kind == ModelKind.Softmax ? double.Parse(file.Classes[p.PredictedClass], CultureInfo.InvariantCulture) : p.Value);
            }
        }
        return metric switch
        {
            "auc" => TrainingFixtures.Auc(y.ToArray(), score.ToArray()),
            "r2" => TrainingFixtures.R2(y.ToArray(), score.ToArray()),
            _ => y.Zip(predicted).Count(t => t.First == t.Second) / (double)y.Count,
        };
    }

    public static HorizontalOptions Options(string set, double l2) => set switch
    {
        "wine" => new HorizontalOptions { Kind = ModelKind.Softmax, L2 = l2, LearningRate = 1.0, Rounds = 400 },
        "diabetes" => new HorizontalOptions { Kind = ModelKind.Linear, L2 = l2, LearningRate = 0.2, Rounds = 500 },
        _ => new HorizontalOptions { Kind = ModelKind.Logistic, L2 = l2, LearningRate = 1.0, Rounds = 400 },
    };
}
