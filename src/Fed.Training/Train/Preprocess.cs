using Fed.Core;
using Fed.Core.Model;
using Fed.Training.Data;

namespace Fed.Training.Train;

/// <summary>
/// A party's local preprocessing: missing values become the training mean (recorded in the model as the
/// missing-value default) and every feature is standardized with the party's own training-row mean and std.
/// The statistics never leave the party; the model records them as transform "standardize".
/// </summary>
public sealed class Standardizer
{
    public required double[] Mean { get; init; }
    public required double[] Std { get; init; }

    public static Standardizer Fit(double[][] columns, IReadOnlyList<int> trainRows)
    {
        var k = columns.Length;
        var mean = new double[k];
        var std = new double[k];
        for (var f = 0; f < k; f++)
        {
            double sum = 0; long count = 0;
            foreach (var r in trainRows) { var x = columns[f][r]; if (!double.IsNaN(x)) { sum += x; count++; } }
            var m = count == 0 ? 0 : sum / count;
            double ss = 0;
            foreach (var r in trainRows) { var x = columns[f][r]; if (!double.IsNaN(x)) ss += (x - m) * (x - m); }
            var s = count == 0 ? 0 : Math.Sqrt(ss / count);
            mean[f] = m;
            std[f] = s > 1e-12 * Math.Max(1, Math.Abs(m)) ? s : 1.0; // a constant column keeps std 1 (weight stays ~0)
        }
        return new Standardizer { Mean = mean, Std = std };
    }

    /// <summary>Per feature, the blank (missing) values among <paramref name="rows"/>: what <see cref="Transform"/> fills
    /// with the training mean. Features without blanks are left out.</summary>
    public static Dictionary<string, long> Blanks(string[] features, double[][] columns, IReadOnlyList<int> rows)
    {
        var blanks = new Dictionary<string, long>(StringComparer.Ordinal);
        for (var f = 0; f < columns.Length; f++)
        {
            long n = 0;
            foreach (var r in rows) if (double.IsNaN(columns[f][r])) n++;
            if (n > 0) blanks[features[f]] = n;
        }
        return blanks;
    }

    /// <summary>The one console line saying how many blanks were filled, e.g.
    /// "guest: filled 7 blank values with the training mean (age 5, income 2)".</summary>
    public static string BlanksLine(string party, IReadOnlyDictionary<string, long> blanks) =>
        blanks.Count == 0 ? $"{party}: no blank values to fill in the training rows"
            : $"{party}: filled {blanks.Values.Sum()} blank values with the training mean ({string.Join(", ", blanks.Select(b => $"{b.Key} {b.Value}"))})";

    /// <summary>Row-major standardized matrix of the given rows (missing -> mean -> 0).</summary>
    public double[][] Transform(double[][] columns, IReadOnlyList<int> rows)
    {
        var k = columns.Length;
        var result = new double[rows.Count][];
        for (var i = 0; i < rows.Count; i++)
        {
            var row = result[i] = new double[k];
            for (var f = 0; f < k; f++)
            {
                var x = columns[f][rows[i]];
                row[f] = double.IsNaN(x) ? 0.0 : (x - Mean[f]) / Std[f];
            }
        }
        return result;
    }

    public FeatureTransform ToTransform() => new(TransformKind.Standardize, Mean, Std);
    public MissingPolicy ToMissingPolicy() => new(MissingPolicyKind.Default, Mean);
}

/// <summary>Turns the guest's label column into training targets: one column for logistic/linear, one-hot for softmax.</summary>
public sealed class LabelEncoding
{
    public required ModelKind Kind { get; init; }
    /// <summary>Softmax class labels (sorted numerically), empty otherwise.</summary>
    public required string[] Classes { get; init; }
    public int Outputs => Kind == ModelKind.Softmax ? Classes.Length : 1;

    public static LabelEncoding For(ModelKind kind, double[] labels, string source)
    {
        switch (kind)
        {
            case ModelKind.Logistic:
                var bad = Array.FindIndex(labels, y => y != 0 && y != 1);
                if (bad >= 0)
                    throw new BadInputException($"{source}: logistic regression needs labels 0/1, row {bad + 1} has {labels[bad]}; use --kind softmax for several classes or --kind linear for a numeric target");
                return new LabelEncoding { Kind = kind, Classes = [] };
            case ModelKind.Linear:
                return new LabelEncoding { Kind = kind, Classes = [] };
            default:
                var distinct = labels.Distinct().OrderBy(v => v).ToArray();
                if (distinct.Length < 2) throw new BadInputException($"{source}: softmax needs at least 2 classes, the labels hold {distinct.Length}");
                if (distinct.Length > 100) throw new BadInputException($"{source}: {distinct.Length} distinct labels: that looks like a numeric target; use --kind linear");
                if (distinct.Length != SoftmaxSeries.MaxClasses)
                    throw new BadInputException($"{source}: {distinct.Length} classes; multinomial softmax training supports {SoftmaxSeries.MaxClasses}" +
                        (distinct.Length == 2 ? " (for 2 classes use --kind logistic)" : " (its masked series grows as (2J+1)^(K-1))"));
                return new LabelEncoding { Kind = kind, Classes = distinct.Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture)).ToArray() };
        }
    }

    /// <summary>Targets[c][i]: y for logistic/linear, [label == class c] for softmax.</summary>
    public double[][] Targets(double[] labels)
    {
        if (Kind != ModelKind.Softmax) return [labels.ToArray()];
        var values = Classes.Select(c => double.Parse(c, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        return values.Select(v => labels.Select(y => y == v ? 1.0 : 0.0).ToArray()).ToArray();
    }
}

/// <summary>Which aligned rows are trained on and which tested, and the per-epoch mini-batch order.</summary>
public static class BatchPlan
{
    /// <summary>Mini-batches of an epoch: a seeded permutation of 0..n-1 (identical at every party), cut in batchSize pieces.</summary>
    public static List<int[]> Batches(int n, int batchSize, int seed, int epoch)
    {
        var perm = Enumerable.Range(0, n).ToArray();
        var state = (ulong)(uint)seed * 0x9E3779B97F4A7C15UL ^ (ulong)(epoch + 1) * 0xD1B54A32D192ED03UL;
        for (var i = n - 1; i > 0; i--)
        {
            var j = (int)(SplitMix(ref state) % (ulong)(i + 1));
            (perm[i], perm[j]) = (perm[j], perm[i]);
        }
        var size = BatchRows(n, batchSize);
        var result = new List<int[]>();
        // a short remainder joins the last full batch, so no batch is smaller than the size the parties checked
        for (var s = 0; s < n;)
        {
            var end = n - (s + size) < size ? n : s + size;
            result.Add(perm[s..end]);
            s = end;
        }
        return result;
    }

    /// <summary>The smallest batch of an epoch: batchSize (0 = every training row), at most n.</summary>
    public static int BatchRows(int n, int batchSize) => batchSize <= 0 || batchSize >= n ? n : batchSize;

    /// <summary>
    /// The smallest mini-batch every party accepts: twice the larger of d_g + 1 and the largest host's d_h.
    /// A party that learns its own gradient X_p^T d of a batch of m rows learns d_p (+1 intercept) linear equations in
    /// the m residuals: with m &lt;= d_g + 1 the guest solves for the residuals and so for the hosts' per-row scores;
    /// with m &lt;= d_h a host solves for the residuals (with zero initial weights, the labels). The factor 2 keeps at
    /// least as many unknowns unresolved as equations are learned.
    /// </summary>
    public static int MinimumBatch(int guestFeatures, IEnumerable<int> hostFeatures) =>
        2 * Math.Max(guestFeatures + 1, hostFeatures.DefaultIfEmpty(0).Max());

    /// <summary>Refuses a batch size below <see cref="MinimumBatch"/> (each party calls it with the plan's counts).</summary>
    public static void CheckBatch(int n, int batchSize, int guestFeatures, IReadOnlyList<int> hostFeatures, string who)
    {
        var min = MinimumBatch(guestFeatures, hostFeatures);
        var rows = BatchRows(n, batchSize);
        if (rows < min)
            throw new BadInputException($"{who}: mini-batches of {rows} rows are below the minimum of {min} = 2 x max(guest features + 1 = {guestFeatures + 1}, " +
                $"largest host's features = {hostFeatures.DefaultIfEmpty(0).Max()}); smaller batches let a party solve for another's per-row values " +
                (rows == n ? "(too few training rows)" : "(raise --batch-size)"));
    }

    static ulong SplitMix(ref ulong x)
    {
        var z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public static (int[] Train, int[] Test) Split(IReadOnlyList<string> alignedIds, SplitRule rule)
    {
        var train = new List<int>();
        var test = new List<int>();
        for (var i = 0; i < alignedIds.Count; i++) (rule.IsTrain(alignedIds[i]) ? train : test).Add(i);
        return (train.ToArray(), test.ToArray());
    }
}
