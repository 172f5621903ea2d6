using System.Buffers.Binary;
using Fed.Core;
using Fed.Core.Model;
using Fed.Core.Scoring;

namespace Fed.Training.Train;

/// <summary>Metrics of the held-out rows, from the federated prediction the guest combines after training.</summary>
public sealed record Holdout
{
    public required int Rows { get; init; }
    public double? Auc { get; init; }
    public double? Ks { get; init; }
    public double? Accuracy { get; init; }
    public double? LogLoss { get; init; }
    public double? R2 { get; init; }
    public double? Rmse { get; init; }

    public Dictionary<string, object?> ToJson() => new()
    {
        ["rows"] = Rows, ["auc"] = Auc, ["ks"] = Ks, ["accuracy"] = Accuracy, ["log_loss"] = LogLoss, ["r2"] = R2, ["rmse"] = Rmse,
    };

    public override string ToString() => string.Join(", ", new (string, double?)[]
        { ("AUC", Auc), ("KS", Ks), ("accuracy", Accuracy), ("log-loss", LogLoss), ("R2", R2), ("RMSE", Rmse) }
        .Where(m => m.Item2 != null).Select(m => $"{m.Item1} {m.Item2:G4}")) + $" on {Rows} held-out rows";

    /// <summary>logistic: AUC, KS, accuracy (p &gt;= 0.5), log-loss; softmax: accuracy, log-loss; linear: R2, RMSE.</summary>
    public static Holdout Evaluate(ModelKind kind, LabelEncoding encoding, double[] labels, Prediction[] predictions)
    {
        var p = predictions.Select(x => x.Value).ToArray();
        switch (kind)
        {
            case ModelKind.Logistic:
                return new Holdout
                {
                    Rows = labels.Length, Auc = Metrics.Auc(labels, p), Ks = Metrics.Ks(labels, p),
                    Accuracy = labels.Zip(p).Count(t => (t.Second >= 0.5 ? 1 : 0) == t.First) / (double)labels.Length,
                    LogLoss = labels.Zip(p).Average(t => -Math.Log(Clip(t.First == 1 ? t.Second : 1 - t.Second))),
                };
            case ModelKind.Softmax:
                var classes = encoding.Classes.Select(c => double.Parse(c, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
                return new Holdout
                {
                    Rows = labels.Length,
                    Accuracy = labels.Zip(predictions).Count(t => classes[t.Second.PredictedClass] == t.First) / (double)labels.Length,
                    LogLoss = labels.Zip(predictions).Average(t =>
                    {
                        var c = Array.IndexOf(classes, t.First);
                        return -Math.Log(Clip(c < 0 ? 0 : t.Second.Probabilities![c]));
                    }),
                };
            default:
                return new Holdout { Rows = labels.Length, R2 = Metrics.R2(labels, p), Rmse = Math.Sqrt(labels.Zip(p).Average(t => (t.First - t.Second) * (t.First - t.Second))) };
        }
    }

    static double Clip(double p) => Math.Clamp(p, 1e-15, 1);

    /// <summary>Partial scores as little-endian doubles, row-major (the "score" message class).</summary>
    public static byte[] Pack(double[][] scores)
    {
        var k = scores.Length == 0 ? 0 : scores[0].Length;
        var bytes = new byte[scores.Length * k * 8];
        for (var i = 0; i < scores.Length; i++)
            for (var c = 0; c < k; c++) BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan((i * k + c) * 8), scores[i][c]);
        return bytes;
    }

    public static double[][] Unpack(byte[] bytes, int rows, int outputs, string context)
    {
        if (bytes.Length != rows * outputs * 8) throw new FedFailureException($"protocol error: {context}: {bytes.Length} bytes, expected {rows * outputs * 8}");
        return Enumerable.Range(0, rows).Select(i => Enumerable.Range(0, outputs).Select(c => BinaryPrimitives.ReadDoubleLittleEndian(bytes.AsSpan((i * outputs + c) * 8))).ToArray()).ToArray();
    }
}

/// <summary>Evaluation metrics (ties in AUC get average ranks).</summary>
public static class Metrics
{
    public static double Auc(double[] y, double[] score)
    {
        var order = Enumerable.Range(0, y.Length).OrderBy(i => score[i]).ToArray();
        double rankSum = 0; long pos = 0;
        for (var i = 0; i < order.Length;)
        {
            var j = i;
            while (j < order.Length && score[order[j]] == score[order[i]]) j++;
            var avg = (i + j + 1) / 2.0;
            for (var k = i; k < j; k++) if (y[order[k]] == 1) { rankSum += avg; pos++; }
            i = j;
        }
        var neg = y.Length - pos;
        return (rankSum - pos * (pos + 1) / 2.0) / (pos * (double)neg);
    }

    /// <summary>Kolmogorov-Smirnov: the largest gap between the score distributions of positives and negatives.</summary>
    public static double Ks(double[] y, double[] score)
    {
        var order = Enumerable.Range(0, y.Length).OrderBy(i => score[i]).ToArray();
        double pos = y.Count(v => v == 1), neg = y.Length - pos, cp = 0, cn = 0, best = 0;
        for (var i = 0; i < order.Length;)
        {
            var j = i;
            while (j < order.Length && score[order[j]] == score[order[i]]) { if (y[order[j]] == 1) cp++; else cn++; j++; }
            best = Math.Max(best, Math.Abs(cp / pos - cn / neg));
            i = j;
        }
        return best;
    }

    public static double R2(double[] y, double[] p)
    {
        var mean = y.Average();
        return 1 - y.Zip(p).Sum(t => (t.First - t.Second) * (t.First - t.Second)) / y.Sum(v => (v - mean) * (v - mean));
    }
}
