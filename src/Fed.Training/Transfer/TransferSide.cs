using Fed.Core;
using Fed.Core.Model;
using Fed.Training.Data;
using Fed.Training.Train;

namespace Fed.Training.Transfer;

/// <summary>
/// One party of federated transfer learning, after local preparation: its own labelled customers (training split),
/// standardized features (common first-class columns of its own file) and its mapping model. Nothing here leaves the
/// party in the clear; <see cref="TransferProtocol"/> says what crosses, and in which form.
/// </summary>
/// <remarks>
/// The union model is z = (A's part) + (B's part), each party's part a linear function of its own standardized
/// features (common ones included); the first party (the guest) also holds the intercept. On a customer the other
/// party does not hold, a party's own features are completed by its mapping model: ridge regressions from the
/// standardized common features to each of its own standardized features, fitted on its own customers (no intercept:
/// both sides are centered on the training rows). The completion is linear, so the part a party contributes on the
/// other party's customer is gamma . c~ + b with gamma = J^T w (J: a common feature's row is the unit vector, an own
/// feature's row its ridge coefficients): the party's "completion model", a partial model over the common features.
/// </remarks>
public sealed class TransferSide
{
    public const double RidgeLambda = 1.0;

    public required string Name { get; init; }
    public required PartyTable Table { get; init; }
    public required string[] Common { get; init; }
    /// <summary>Index of each common feature in <see cref="PartyTable.Features"/>.</summary>
    public required int[] CommonIndex { get; init; }
    public required int[] Train { get; init; }
    public required Standardizer Std { get; init; }
    /// <summary>Standardized training rows, all features in file order: X[i][f].</summary>
    public required double[][] X { get; init; }
    /// <summary>Raw common features of the training rows (missing = the party's mean): CRaw[i][k].</summary>
    public required double[][] CRaw { get; init; }
    public required double[] Y { get; init; }
    /// <summary>J[f][k]: how standardized feature f is completed from the standardized common features.</summary>
    public required double[][] J { get; init; }

    public int Features => Table.Features.Length;
    public int Rows => Train.Length;

    /// <summary>The common features: the columns both files have, besides id and label (the plan carries the list and each
    /// party checks it against its own header).</summary>
    public static string[] CommonFeatures(PartyTable a, PartyTable b)
    {
        var common = a.Features.Where(b.Features.Contains).ToArray();
        if (common.Length == 0) throw new BadInputException("transfer learning needs common features: the two files share no feature column name besides the id and the label");
        return common;
    }

    public static TransferSide Prepare(string name, PartyTable table, string[] common, int testBuckets, ModelKind kind)
    {
        if (table.Labels is null) throw new BadInputException($"{table.Path}: transfer learning needs labels at every party (no label column)");
        var commonIndex = common.Select(c => Array.IndexOf(table.Features, c)).ToArray();
        var missing = common.Where((c, k) => commonIndex[k] < 0).ToArray();
        if (missing.Length > 0) throw new BadInputException($"{table.Path}: common feature(s) {string.Join(", ", missing)} agreed in the plan are not in this party's file");
        if (common.Length == table.Features.Length) throw new BadInputException($"{table.Path}: this party has no features of its own besides the common ones");
        var (train, _) = BatchPlan.Split(table.Ids, new SplitRule(testBuckets));
        if (train.Length < 2 * (table.Features.Length + 1))
            throw new BadInputException($"{table.Path}: {train.Length} training rows; transfer learning needs at least {2 * (table.Features.Length + 1)} (twice the party's features + 1)");
        foreach (var r in train)
            if (kind == ModelKind.Logistic && table.Labels[r] is not (0 or 1)) throw new BadInputException($"{table.Path}: id '{table.Ids[r]}' has label {table.Labels[r]}; logistic transfer learning needs labels 0/1");
        var std = Standardizer.Fit(table.Columns, train);
        var x = std.Transform(table.Columns, train);
        var craw = x.Select(row => commonIndex.Select((f, k) => row[f] * std.Std[f] + std.Mean[f]).ToArray()).ToArray();
        var c = common.Length;
        // Ridge from the standardized common features to every feature: A = (C^T C + lambda I)^-1 C^T X.
        var gram = new double[c, c];
        foreach (var row in x)
            for (var k = 0; k < c; k++)
                for (var l = 0; l < c; l++) gram[k, l] += row[commonIndex[k]] * row[commonIndex[l]];
        for (var k = 0; k < c; k++) gram[k, k] += RidgeLambda;
        var jm = new double[table.Features.Length][];
        for (var f = 0; f < jm.Length; f++)
        {
            var at = Array.IndexOf(commonIndex, f);
            if (at >= 0) { jm[f] = new double[c]; jm[f][at] = 1; continue; }
            var rhs = new double[c];
            foreach (var row in x)
                for (var k = 0; k < c; k++) rhs[k] += row[commonIndex[k]] * row[f];
            jm[f] = Solve(gram, rhs);
        }
        return new TransferSide
        {
            Name = name, Table = table, Common = common, CommonIndex = commonIndex, Train = train, Std = std, X = x, CRaw = craw,
            Y = train.Select(r => table.Labels[r]).ToArray(), J = jm,
        };
    }

    /// <summary>gamma = J^T w: the party's part on a customer it does not hold, over the standardized common features.</summary>
    public double[] Gamma(double[] w)
    {
        var g = new double[Common.Length];
        for (var f = 0; f < w.Length; f++)
            for (var k = 0; k < g.Length; k++) g[k] += w[f] * J[f][k];
        return g;
    }

    /// <summary>The completion part in raw common coordinates: beta . [c; 1] = gamma . (c - mean) / std + intercept.</summary>
    public double[] RawCompletion(double[] w, double intercept)
    {
        var g = Gamma(w);
        var beta = new double[g.Length + 1];
        beta[^1] = intercept;
        for (var k = 0; k < g.Length; k++)
        {
            var f = CommonIndex[k];
            beta[k] = g[k] / Std.Std[f];
            beta[^1] -= g[k] * Std.Mean[f] / Std.Std[f];
        }
        return beta;
    }

    /// <summary>
    /// L such that the gradient of this party's parameters (weights, then the intercept on the guest) over the other
    /// party's customers is L . G, G = sum_i d_i [c_i; 1] in raw common coordinates (what the other party sends encrypted).
    /// </summary>
    public double[][] GradientMap(bool intercept)
    {
        var c = Common.Length;
        // T: raw [c; 1] sums -> standardized sums, t_k = (G_k - mean_k G_c) / std_k.
        var t = new double[c][];
        for (var k = 0; k < c; k++)
        {
            var f = CommonIndex[k];
            t[k] = new double[c + 1];
            t[k][k] = 1 / Std.Std[f];
            t[k][c] = -Std.Mean[f] / Std.Std[f];
        }
        var rows = new List<double[]>();
        foreach (var jf in J)
        {
            var r = new double[c + 1];
            for (var k = 0; k < c; k++)
                for (var l = 0; l <= c; l++) r[l] += jf[k] * t[k][l];
            rows.Add(r);
        }
        if (intercept) { var r = new double[c + 1]; r[c] = 1; rows.Add(r); }
        return rows.ToArray();
    }

    /// <summary>The completion model file: this party's part on customers only the other party holds, a partial model over
    /// the common features with this party's standardization (the weights are its asset, like its main model's).</summary>
    public PartialModel CompletionModel(PartialModel main, double[] w, double intercept)
    {
        var idx = CommonIndex;
        return ModelFile.Stamp(new PartialModel
        {
            ModelId = main.ModelId, Version = main.Version, Kind = main.Kind, Classes = main.Classes,
            PartyId = main.PartyId, Role = main.Role, Parties = main.Parties,
            Features = Common,
            Weights = [Gamma(w)],
            Intercepts = main.Role == PartyRole.Guest ? [intercept] : [],
            Transform = new FeatureTransform(TransformKind.Standardize, idx.Select(f => Std.Mean[f]).ToArray(), idx.Select(f => Std.Std[f]).ToArray()),
            Missing = new MissingPolicy(MissingPolicyKind.Default, idx.Select(f => Std.Mean[f]).ToArray()),
            Training = new SortedDictionary<string, string>(main.Training, StringComparer.Ordinal) { ["completion_of"] = main.PartyId },
        });
    }

    /// <summary>Gaussian elimination with partial pivoting (the ridge system is small and positive definite).</summary>
    static double[] Solve(double[,] a0, double[] b0)
    {
        var n = b0.Length;
        var a = (double[,])a0.Clone();
        var b = (double[])b0.Clone();
        for (var col = 0; col < n; col++)
        {
            var piv = col;
            for (var r = col + 1; r < n; r++) if (Math.Abs(a[r, col]) > Math.Abs(a[piv, col])) piv = r;
            if (piv != col)
            {
                for (var k = 0; k < n; k++) (a[col, k], a[piv, k]) = (a[piv, k], a[col, k]);
                (b[col], b[piv]) = (b[piv], b[col]);
            }
            for (var r = col + 1; r < n; r++)
            {
                var m = a[r, col] / a[col, col];
                for (var k = col; k < n; k++) a[r, k] -= m * a[col, k];
                b[r] -= m * b[col];
            }
        }
        var x = new double[n];
        for (var r = n - 1; r >= 0; r--)
        {
            var s = b[r];
            for (var k = r + 1; k < n; k++) s -= a[r, k] * x[k];
            x[r] = s / a[r, r];
        }
        return x;
    }
}
