namespace Fed.Training.Train;

/// <summary>
/// One party's optimizer for its own block of weights: Nesterov's accelerated gradient, preconditioned by the inverse
/// of the party's own curvature bound B_p = c X_p^T X_p / n + (lambda/n) I (c = 1/4 logistic (Boehning's bound on
/// sigmoid'), 1 linear; the guest's intercept column unpenalized), restarted when the arbiter sees the loss rise
/// (O'Donoghue and Candes' function-value restart). Only the party's own features and unmasked gradient enter, so
/// nothing new crosses a boundary; the restart bit rides on the arbiter's per-epoch decision.
/// Forward passes use the look-ahead point <see cref="V"/>; the model is <see cref="W"/>.
/// </summary>
public sealed class BlockNesterov
{
    readonly double[][] inverse; // B_p^-1 (symmetric), width x width
    readonly double alpha, step;
    readonly bool intercept;
    double t = 1;
    /// <summary>Weights per output (the guest's last column is the intercept).</summary>
    public double[][] W { get; }
    /// <summary>Look-ahead point per output, where the gradient is evaluated.</summary>
    public double[][] V { get; }

    /// <param name="rows">The party's standardized training rows (row-major).</param>
    /// <param name="intercept">Append an unpenalized intercept column (the guest).</param>
    /// <param name="alpha">lambda / n, the per-row L2 weight.</param>
    /// <param name="step">Multiplier of the preconditioned step (--learning-rate, default 1).</param>
    public BlockNesterov(double[][] rows, int outputs, bool intercept, double curvature, double alpha, double step)
    {
        this.alpha = alpha; this.step = step; this.intercept = intercept;
        var d = (rows.Length == 0 ? 0 : rows[0].Length) + (intercept ? 1 : 0);
        var n = Math.Max(1, rows.Length);
        var b = new double[d][];
        for (var i = 0; i < d; i++) b[i] = new double[d];
        var x = new double[d];
        foreach (var r in rows)
        {
            r.CopyTo(x, 0);
            if (intercept) x[d - 1] = 1;
            for (var i = 0; i < d; i++)
            {
                var xi = x[i];
                if (xi == 0) continue;
                var bi = b[i];
                for (var j = 0; j <= i; j++) bi[j] += xi * x[j];
            }
        }
        for (var i = 0; i < d; i++)
            for (var j = 0; j <= i; j++)
            {
                var v = curvature * b[i][j] / n + (i == j && !(intercept && i == d - 1) ? alpha : 0);
                b[i][j] = v; b[j][i] = v;
            }
        inverse = CholeskyInverse(b);
        W = Enumerable.Range(0, outputs).Select(_ => new double[d]).ToArray();
        V = Enumerable.Range(0, outputs).Select(_ => new double[d]).ToArray();
    }

    /// <summary>||V||^2 over the penalized weights (every output; not the intercept).</summary>
    public double PenaltyNorm()
    {
        var s = 0.0;
        foreach (var v in V)
            for (var i = 0; i < v.Length - (intercept ? 1 : 0); i++) s += v[i] * v[i];
        return s;
    }

    /// <summary>Resets the momentum (the loss rose).</summary>
    public void Restart() => t = 1;

    /// <summary>
    /// One step from the batch's mean data gradient at <see cref="V"/> (per output, without the L2 term, which is
    /// added here): W' = V - step B^-1 (g + alpha V), V' = W' + beta (W' - W).
    /// </summary>
    public void Step(double[][] meanGradient)
    {
        var tn = (1 + Math.Sqrt(1 + 4 * t * t)) / 2;
        var beta = (t - 1) / tn;
        t = tn;
        var d = inverse.Length;
        var g = new double[d];
        for (var c = 0; c < W.Length; c++)
        {
            var v = V[c]; var w = W[c];
            for (var i = 0; i < d; i++) g[i] = meanGradient[c][i] + (intercept && i == d - 1 ? 0 : alpha * v[i]);
            for (var i = 0; i < d; i++)
            {
                var row = inverse[i]; var s = 0.0;
                for (var j = 0; j < d; j++) s += row[j] * g[j];
                var next = v[i] - step * s;
                var prev = w[i];
                w[i] = next;
                v[i] = next + beta * (next - prev);
            }
        }
    }

    /// <summary>Inverse of a symmetric positive definite matrix by Cholesky (d is at most a few hundred).</summary>
    internal static double[][] CholeskyInverse(double[][] a)
    {
        var d = a.Length;
        var l = new double[d][];
        for (var i = 0; i < d; i++)
        {
            l[i] = new double[d];
            for (var j = 0; j <= i; j++)
            {
                var s = a[i][j];
                for (var k = 0; k < j; k++) s -= l[i][k] * l[j][k];
                if (i == j)
                {
                    // a constant standardized column (all 0) has only the L2 term: keep it positive
                    l[i][i] = Math.Sqrt(Math.Max(s, 1e-12));
                }
                else l[i][j] = s / l[j][j];
            }
        }
        var inv = new double[d][];
        for (var i = 0; i < d; i++) inv[i] = new double[d];
        var e = new double[d]; var y = new double[d];
        for (var col = 0; col < d; col++)
        {
            for (var i = 0; i < d; i++)
            {
                var s = i == col ? 1.0 : 0.0;
                for (var k = 0; k < i; k++) s -= l[i][k] * y[k];
                y[i] = s / l[i][i];
            }
            for (var i = d - 1; i >= 0; i--)
            {
                var s = y[i];
                for (var k = i + 1; k < d; k++) s -= l[k][i] * e[k];
                e[i] = s / l[i][i];
            }
            for (var i = 0; i < d; i++) inv[i][col] = e[i];
        }
        return inv;
    }
}
