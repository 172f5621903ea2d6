using System.Globalization;
using Fed.Core;
using Fed.Core.Model;
using Fed.Training.Data;
using Fed.Training.Train;

namespace Fed.Training.Horizontal;

/// <summary>
/// A client's training rows (its held-out rows removed by the shared crc32 split), in the plan's feature order,
/// and the local sums the federated standardization aggregates. Nothing here leaves the client except through a
/// secure sum.
/// </summary>
public sealed class ClientData
{
    public required string Source { get; init; }
    public required string[] Features { get; init; }
    /// <summary>Column-major raw training values (NaN = missing).</summary>
    public required double[][] Columns { get; init; }
    public required double[] Labels { get; init; }
    public int Rows => Labels.Length;

    /// <summary>Reads a client CSV (id, label, features); <paramref name="featureOrder"/> (from the plan) reorders the columns.</summary>
    public static ClientData Load(PartyTable table, int testBuckets, string[]? featureOrder = null)
    {
        var labels = table.Labels ?? throw new BadInputException($"{table.Path}: a horizontal client's file needs the label column");
        var order = featureOrder ?? table.Features;
        var missing = order.Except(table.Features).ToList();
        var extra = table.Features.Except(order).ToList();
        if (missing.Count > 0 || extra.Count > 0)
            throw new BadInputException($"{table.Path}: every client needs the same feature columns; " +
                (missing.Count > 0 ? $"missing {string.Join(", ", missing.Take(5))} " : "") + (extra.Count > 0 ? $"unexpected {string.Join(", ", extra.Take(5))}" : ""));
        var rule = new SplitRule(testBuckets);
        var train = Enumerable.Range(0, table.Rows).Where(i => rule.IsTrain(table.Ids[i])).ToArray();
        if (train.Length == 0) throw new BadInputException($"{table.Path}: no training rows (all {table.Rows} ids fall in the held-out split)");
        var cols = order.Select(f => table.Columns[Array.IndexOf(table.Features, f)]).Select(c => train.Select(i => c[i]).ToArray()).ToArray();
        return new ClientData { Source = table.Path, Features = order, Columns = cols, Labels = train.Select(i => labels[i]).ToArray() };
    }

    /// <summary>The label column as the learner's targets: 0/1 (logistic), the class index (softmax) or the raw value (linear).</summary>
    public double[] Targets(HorizontalOptions o)
    {
        switch (o.Kind)
        {
            case ModelKind.Logistic:
                var bad = Array.FindIndex(Labels, y => y != 0 && y != 1);
                if (bad >= 0) throw new BadInputException($"{Source}: logistic regression needs labels 0/1, a training row has {Labels[bad]}");
                return Labels;
            case ModelKind.Softmax:
                var classes = o.Classes.Select(c => double.Parse(c, CultureInfo.InvariantCulture)).ToArray();
                return Labels.Select(y =>
                {
                    var k = Array.IndexOf(classes, y);
                    return k >= 0 ? k : throw new BadInputException($"{Source}: label {y} is not one of the classes {string.Join(", ", o.Classes)}");
                }).Select(k => (double)k).ToArray();
            default:
                return Labels;
        }
    }

    /// <summary>Columns standardized: the features, and for linear the target as the last column.</summary>
    double[][] StatColumns(HorizontalOptions o) => o.Kind == ModelKind.Linear ? [.. Columns, Labels] : Columns;

    /// <summary>"mean" step: [count_f..., sum_f...] over present values.</summary>
    public double[] MeanSums(HorizontalOptions o)
    {
        var cols = StatColumns(o);
        var v = new double[2 * cols.Length];
        for (var f = 0; f < cols.Length; f++)
            foreach (var x in cols[f]) if (!double.IsNaN(x)) { v[f]++; v[cols.Length + f] += x; }
        return v;
    }

    /// <summary>"var" step: [sum_f (x - mean_f)^2...] over present values.</summary>
    public double[] SquareSums(HorizontalOptions o, double[] mean)
    {
        var cols = StatColumns(o);
        if (mean.Length != cols.Length) throw new FedFailureException($"protocol error: {mean.Length} means for {cols.Length} columns");
        var v = new double[cols.Length];
        for (var f = 0; f < cols.Length; f++)
            foreach (var x in cols[f]) if (!double.IsNaN(x)) v[f] += (x - mean[f]) * (x - mean[f]);
        return v;
    }

    /// <summary>The learner over standardized rows (missing values become the mean, i.e. 0).</summary>
    public LocalLearner Learner(HorizontalOptions o, double[] mean, double[] std)
    {
        var F = Features.Length;
        var x = new double[Rows * F];
        for (var f = 0; f < F; f++)
        {
            var c = Columns[f];
            for (var i = 0; i < Rows; i++) x[i * F + f] = double.IsNaN(c[i]) ? 0.0 : (c[i] - mean[f]) / std[f];
        }
        var y = Targets(o);
        if (o.Kind == ModelKind.Linear) y = y.Select(v => (v - mean[F]) / std[F]).ToArray();
        return new LocalLearner(o.Kind, o.Outputs, x, y, F);
    }
}

/// <summary>Federated statistics into a standardization, and the final parameters into a one-party Fed model.</summary>
public static class HorizontalModel
{
    public const string Party = "global";

    /// <summary>Mean and population std (as scikit-learn's StandardScaler) from the aggregated sums; a constant
    /// column keeps std 1, as the vertical <see cref="Standardizer"/> does.</summary>
    public static double[] Means(double[] meanSums)
    {
        var k = meanSums.Length / 2;
        var mean = new double[k];
        for (var f = 0; f < k; f++)
        {
            var n = Math.Round(meanSums[f]);
            if (n < 1) throw new BadInputException($"column {f + 1} has no value at any client");
            mean[f] = meanSums[k + f] / n;
        }
        return mean;
    }

    public static double[] Stds(double[] meanSums, double[] squareSums, double[] mean)
    {
        var k = mean.Length;
        var std = new double[k];
        for (var f = 0; f < k; f++)
        {
            var s = Math.Sqrt(Math.Max(0, squareSums[f]) / Math.Round(meanSums[f]));
            std[f] = s > 1e-12 * Math.Max(1, Math.Abs(mean[f])) ? s : 1.0;
        }
        return std;
    }

    /// <summary>The one-party model: party "global" (role guest, parties ["global"]), weights on standardized features
    /// with the federated mean/std as its transform and the mean as each feature's missing-value default. A linear
    /// model's target was standardized too; its weights and intercept are scaled back here.</summary>
    public static PartialModel Build(HorizontalOptions o, string[] features, double[] mean, double[] std, double[] theta, IDictionary<string, string> meta)
    {
        var F = features.Length;
        var outputs = o.Outputs;
        if (theta.Length != outputs * (F + 1)) throw new FedFailureException($"protocol error: {theta.Length} parameters for {outputs} x ({F} + 1)");
        var (scale, shift) = o.Kind == ModelKind.Linear ? (std[F], mean[F]) : (1.0, 0.0);
        var weights = Enumerable.Range(0, outputs).Select(c => Enumerable.Range(0, F).Select(f => theta[c * (F + 1) + f] * scale).ToArray()).ToArray();
        var intercepts = Enumerable.Range(0, outputs).Select(c => theta[c * (F + 1) + F] * scale + shift).ToArray();
        var inv = CultureInfo.InvariantCulture;
        var training = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["algorithm"] = "horizontal-fedavg-" + PartialModel.KindName(o.Kind) + (o.Dp ? "-dpsgd" : ""),
            ["created_at"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ"),
            ["learning_rate"] = o.LearningRate.ToString("R", inv),
            ["l2"] = o.L2.ToString("R", inv),
            ["local_epochs"] = o.LocalEpochs.ToString(inv),
            ["batch_size"] = o.BatchSize.ToString(inv),
            ["secure_aggregation"] = "pairwise-masks-x25519",
            ["split"] = $"crc32(id) % 10 >= {o.TestBuckets}",
        };
        if (o.Dp)
        {
            training["dp_epsilon"] = o.DpEpsilon!.Value.ToString("R", inv);
            training["dp_delta"] = o.DpDelta.ToString("R", inv);
            training["dp_clip"] = o.DpClip.ToString("R", inv);
        }
        foreach (var (k, v) in meta) training[k] = v;
        var featureMean = mean.Take(F).ToArray();
        return Fed.Core.Model.ModelFile.Stamp(new PartialModel
        {
            ModelId = o.ModelId, Version = o.Version, Kind = o.Kind, Classes = o.Kind == ModelKind.Softmax ? o.Classes : [],
            PartyId = Party, Role = PartyRole.Guest, Parties = [Party], Features = features,
            Weights = weights, Intercepts = intercepts,
            Transform = new FeatureTransform(TransformKind.Standardize, featureMean, std.Take(F).ToArray()),
            Missing = new MissingPolicy(MissingPolicyKind.Default, featureMean), Training = training,
        });
    }
}
