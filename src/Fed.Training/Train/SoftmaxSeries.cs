namespace Fed.Training.Train;

/// <summary>
/// The multinomial cross-entropy in the form a party can evaluate on masked inputs, for K = 3 classes.
/// With the score differences delta_k = z_k - z_0 (k = 1..D, D = K - 1):
/// <code>
/// LSE(delta) = ln(1 + sum_k e^delta_k) ~ f(delta) = a_0 + sum_k l_k delta_k + sum_w [A_w cos(2 pi w.delta / P) + B_w sin(2 pi w.delta / P)]
/// loss(z, y) = f(delta) - delta_y                           (the cross-entropy -ln softmax(z)_y; delta_0 = 0)
/// p_k = d f / d delta_k (k &gt;= 1),  p_0 = 1 - sum_k p_k     (the residual of class c is p_c - [y = c])
/// </code>
/// over integer frequency vectors w with |w_k| &lt;= J, one of each pair +-w. The probabilities are the loss's exact
/// gradient, so the loss the arbiter watches and the residuals the parties descend on belong to one function, and
/// they sum to 1. f is fitted once (deterministically) by least squares to both LSE and its gradient (the softmax
/// probabilities) on a grid over [-R, R]^D; the torus margin between R and P/2 is left free, which is what lets a
/// non-periodic function be matched by a periodic one. A party evaluates cos/sin(2 pi w.delta / P) on masked
/// differences x = delta_h + r mod P exactly as <see cref="SigmoidSeries"/> does in one dimension
/// (w.delta = w.x + w.u mod P for integer w). The basis has ((2J + 1)^D - 1) / 2 frequencies: the reason for K = 3.
/// Error (P = 32, J = 6, R = 10, 84 frequencies, 168 ciphertexts per row; SoftmaxSeriesTests, on a grid 4x finer
/// than the fit's): probabilities within 1.2e-2 and the cross-entropy within 6.1e-3 for |delta_k| &lt;= 10; outside,
/// as for the sigmoid series, the residual is wrong (with the L2 penalty, wine's score differences stay inside).
/// </summary>
public sealed class SoftmaxSeries
{
    public const int MaxClasses = 3;

    public int Dimensions { get; }
    public double Period { get; }
    public int Terms { get; }
    public double Range { get; }
    /// <summary>Frequency vectors (one of each +-w pair, w != 0).</summary>
    public int[][] Frequencies { get; }
    public double Constant { get; }
    public double[] Linear { get; }
    public double[] Cos { get; }
    public double[] Sin { get; }
    /// <summary>Ciphertexts per row the key holder returns: cos and sin of each frequency.</summary>
    public int Width => 2 * Frequencies.Length;

    static readonly Lazy<SoftmaxSeries> Three = new(() => new SoftmaxSeries(2, period: 32, terms: 6, range: 10));

    /// <summary>The series for K = 3 classes (two classes are --kind logistic).</summary>
    public static SoftmaxSeries For(int classes)
    {
        if (classes != MaxClasses)
            throw new Fed.Core.BadInputException($"multinomial softmax training supports {MaxClasses} classes, got {classes}: for 2 use --kind logistic; " +
                "beyond 3 the masked series grows as (2J+1)^(K-1)");
        return Three.Value;
    }

    SoftmaxSeries(int dimensions, double period, int terms, double range)
    {
        Dimensions = dimensions; Period = period; Terms = terms; Range = range;
        Frequencies = FrequencySet(dimensions, terms);
        var F = Frequencies.Length;
        var unknowns = 1 + dimensions + 2 * F;
        var a = new double[unknowns][];
        for (var i = 0; i < unknowns; i++) a[i] = new double[unknowns];
        var b = new double[unknowns];
        var grid = 61;
        var value = new double[unknowns];
        var grad = new double[dimensions][];
        for (var k = 0; k < dimensions; k++) grad[k] = new double[unknowns];
        var p = new double[dimensions];
        foreach (var delta in Grid(dimensions, range, grid))
        {
            Basis(delta, value, grad);
            var lse = Lse(delta, p);
            Accumulate(a, b, value, lse);
            for (var k = 0; k < dimensions; k++) Accumulate(a, b, grad[k], p[k]);
        }
        for (var i = 0; i < unknowns; i++) a[i][i] += 1e-10 * (1 + a[i][i]);
        var inv = BlockNesterov.CholeskyInverse(a);
        var c = new double[unknowns];
        for (var i = 0; i < unknowns; i++)
            for (var j = 0; j < unknowns; j++) c[i] += inv[i][j] * b[j];
        Constant = c[0];
        Linear = c[1..(1 + dimensions)];
        Cos = Enumerable.Range(0, F).Select(f => c[1 + dimensions + 2 * f]).ToArray();
        Sin = Enumerable.Range(0, F).Select(f => c[2 + dimensions + 2 * f]).ToArray();
    }

    static int[][] FrequencySet(int d, int j)
    {
        var all = new List<int[]>();
        var w = new int[d];
        void Walk(int k)
        {
            if (k == d)
            {
                var first = Array.FindIndex(w, v => v != 0);
                if (first >= 0 && w[first] > 0) all.Add(w.ToArray()); // one of each +-w, w != 0
                return;
            }
            for (var v = -j; v <= j; v++) { w[k] = v; Walk(k + 1); }
        }
        Walk(0);
        return all.ToArray();
    }

    static IEnumerable<double[]> Grid(int d, double range, int points)
    {
        var idx = new int[d];
        while (true)
        {
            yield return idx.Select(i => -range + 2 * range * i / (points - 1)).ToArray();
            var k = 0;
            while (k < d && ++idx[k] == points) idx[k++] = 0;
            if (k == d) yield break;
        }
    }

    static void Accumulate(double[][] a, double[] b, double[] row, double target)
    {
        for (var i = 0; i < row.Length; i++)
        {
            var ri = row[i];
            if (ri == 0) continue;
            b[i] += ri * target;
            var ai = a[i];
            for (var j = 0; j < row.Length; j++) ai[j] += ri * row[j];
        }
    }

    /// <summary>ln(1 + sum e^delta_k) and the probabilities p_k, k = 1..D (stable).</summary>
    public static double Lse(ReadOnlySpan<double> delta, Span<double> p)
    {
        var max = 0.0;
        foreach (var v in delta) max = Math.Max(max, v);
        var s = Math.Exp(-max);
        for (var k = 0; k < delta.Length; k++) s += p[k] = Math.Exp(delta[k] - max);
        for (var k = 0; k < delta.Length; k++) p[k] /= s;
        return max + Math.Log(s);
    }

    /// <summary>The phase 2 pi w.delta / P of frequency f.</summary>
    public double Phase(int f, ReadOnlySpan<double> delta)
    {
        var w = Frequencies[f]; var s = 0.0;
        for (var k = 0; k < w.Length; k++) s += w[k] * delta[k];
        return 2 * Math.PI * s / Period;
    }

    void Basis(double[] delta, double[] value, double[][] grad)
    {
        var d = Dimensions;
        value[0] = 1;
        for (var k = 0; k < d; k++) { value[1 + k] = delta[k]; grad[k][0] = 0; for (var j = 0; j < d; j++) grad[k][1 + j] = j == k ? 1 : 0; }
        for (var f = 0; f < Frequencies.Length; f++)
        {
            var (sin, cos) = Math.SinCos(Phase(f, delta));
            value[1 + d + 2 * f] = cos; value[2 + d + 2 * f] = sin;
            for (var k = 0; k < d; k++)
            {
                var scale = 2 * Math.PI * Frequencies[f][k] / Period;
                grad[k][1 + d + 2 * f] = -scale * sin; grad[k][2 + d + 2 * f] = scale * cos;
            }
        }
    }

    /// <summary>The fitted LSE f(delta).</summary>
    public double Value(ReadOnlySpan<double> delta)
    {
        var s = Constant;
        for (var k = 0; k < Dimensions; k++) s += Linear[k] * delta[k];
        for (var f = 0; f < Frequencies.Length; f++)
        {
            var (sin, cos) = Math.SinCos(Phase(f, delta));
            s += Cos[f] * cos + Sin[f] * sin;
        }
        return s;
    }

    /// <summary>The fitted probabilities of all K classes (p_0 = 1 - the others).</summary>
    public void Probabilities(ReadOnlySpan<double> delta, Span<double> p)
    {
        for (var k = 0; k < Dimensions; k++) p[1 + k] = Linear[k];
        for (var f = 0; f < Frequencies.Length; f++)
        {
            var (sin, cos) = Math.SinCos(Phase(f, delta));
            var g = -Cos[f] * sin + Sin[f] * cos;
            for (var k = 0; k < Dimensions; k++) p[1 + k] += 2 * Math.PI * Frequencies[f][k] / Period * g;
        }
        var rest = 1.0;
        for (var k = 1; k <= Dimensions; k++) rest -= p[k];
        p[0] = rest;
    }

    /// <summary>Max |fitted - exact| probability over a grid 4x finer than the fit's, on [-range, range]^D.</summary>
    public double ProbabilityError(double range) => MaxError(range, probabilities: true);

    /// <summary>Max |fitted - exact| LSE (so cross-entropy) on the same grid.</summary>
    public double LossError(double range) => MaxError(range, probabilities: false);

    double MaxError(double range, bool probabilities)
    {
        var worst = 0.0;
        var p = new double[Dimensions]; var q = new double[Dimensions + 1];
        foreach (var delta in Grid(Dimensions, range, 241))
        {
            var lse = Lse(delta, p);
            if (!probabilities) { worst = Math.Max(worst, Math.Abs(Value(delta) - lse)); continue; }
            Probabilities(delta, q);
            var p0 = 1.0;
            for (var k = 0; k < Dimensions; k++) { p0 -= p[k]; worst = Math.Max(worst, Math.Abs(q[1 + k] - p[k])); }
            worst = Math.Max(worst, Math.Abs(q[0] - p0));
        }
        return worst;
    }
}
