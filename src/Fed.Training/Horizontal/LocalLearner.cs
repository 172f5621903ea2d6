using System.Security.Cryptography;
using Fed.Core.Model;
using Fed.Training.Train;

namespace Fed.Training.Horizontal;

/// <summary>
/// A client's standardized training rows and the model math of FedAvg's local step.
/// Parameters are flat: theta[c * (F + 1) + f] is the weight of feature f for output c, theta[c * (F + 1) + F] its
/// intercept. Losses are exact (sigmoid log-loss, squared error / 2, multinomial cross-entropy), averaged over rows,
/// plus L2/2 * ||w||^2 without intercepts: the objective scikit-learn's LogisticRegression and Ridge minimize.
/// </summary>
public sealed class LocalLearner
{
    readonly ModelKind kind;
    readonly int outputs;
    /// <summary>Row-major standardized features, x[i * F + f]; missing values are the federated mean (0 standardized).</summary>
    readonly double[] x;
    /// <summary>Logistic/linear: the (standardized, for linear) target; softmax: the class index.</summary>
    readonly double[] y;
    readonly double[] rowNorm2;

    public int Rows { get; }
    public int Features { get; }
    public int Parameters => outputs * (Features + 1);

    public LocalLearner(ModelKind kind, int outputs, double[] x, double[] y, int features)
    {
        this.kind = kind; this.outputs = outputs; this.x = x; this.y = y;
        Features = features; Rows = y.Length;
        rowNorm2 = new double[Rows];
        for (var i = 0; i < Rows; i++)
        {
            var s = 1.0; // the intercept's input
            for (var f = 0; f < features; f++) { var v = x[i * features + f]; s += v * v; }
            rowNorm2[i] = s;
        }
    }

    /// <summary>Residuals dLoss/dz of row i at theta into r (length outputs); returns the row's data loss.</summary>
    double Residual(double[] theta, int i, Span<double> r)
    {
        var F = Features;
        var row = x.AsSpan(i * F, F);
        for (var c = 0; c < outputs; c++)
        {
            var w = theta.AsSpan(c * (F + 1), F);
            var z = theta[c * (F + 1) + F];
            for (var f = 0; f < F; f++) z += w[f] * row[f];
            r[c] = z;
        }
        switch (kind)
        {
            case ModelKind.Logistic:
            {
                var z = r[0];
                var p = 1.0 / (1.0 + Math.Exp(-z));
                r[0] = p - y[i];
                // log(1 + e^z) - y z, computed without overflow
                return (z > 0 ? z + Math.Log(1 + Math.Exp(-z)) : Math.Log(1 + Math.Exp(z))) - y[i] * z;
            }
            case ModelKind.Linear:
            {
                var d = r[0] - y[i];
                r[0] = d;
                return 0.5 * d * d;
            }
            default:
            {
                var max = double.NegativeInfinity;
                for (var c = 0; c < outputs; c++) max = Math.Max(max, r[c]);
                var sum = 0.0;
                for (var c = 0; c < outputs; c++) sum += Math.Exp(r[c] - max);
                var label = (int)y[i];
                var loss = Math.Log(sum) + max - r[label];
                for (var c = 0; c < outputs; c++) r[c] = Math.Exp(r[c] - max) / sum - (c == label ? 1 : 0);
                return loss;
            }
        }
    }

    double Penalty(double[] theta, double l2)
    {
        var s = 0.0;
        for (var c = 0; c < outputs; c++)
            for (var f = 0; f < Features; f++) { var w = theta[c * (Features + 1) + f]; s += w * w; }
        return l2 / 2 * s;
    }

    /// <summary>Mean training loss at theta (data loss + L2 penalty).</summary>
    public double Loss(double[] theta, double l2)
    {
        Span<double> r = stackalloc double[outputs];
        var loss = 0.0;
        for (var i = 0; i < Rows; i++) loss += Residual(theta, i, r);
        return loss / Rows + Penalty(theta, l2);
    }

    /// <summary>Adds scale * r_c * [x_i, 1] to g.</summary>
    void Accumulate(double[] g, int i, ReadOnlySpan<double> r, double scale)
    {
        var F = Features;
        var row = x.AsSpan(i * F, F);
        for (var c = 0; c < outputs; c++)
        {
            var a = r[c] * scale;
            if (a == 0) continue;
            var gc = g.AsSpan(c * (F + 1), F);
            for (var f = 0; f < F; f++) gc[f] += a * row[f];
            g[c * (F + 1) + F] += a;
        }
    }

    void Step(double[] theta, double[] g, double divisor, double lr, double l2)
    {
        var F = Features;
        for (var c = 0; c < outputs; c++)
        {
            for (var f = 0; f < F; f++)
            {
                var k = c * (F + 1) + f;
                theta[k] -= lr * (g[k] / divisor + l2 * theta[k]);
            }
            theta[c * (F + 1) + F] -= lr * g[c * (F + 1) + F] / divisor;
        }
    }

    /// <summary>FedAvg local update without DP: <paramref name="epochs"/> passes of mini-batch gradient descent in a
    /// seeded order (full batch when batchSize is 0 or at least the row count).</summary>
    public double[] Train(double[] global, int epochs, int batchSize, double lr, double l2, int seed, int round)
    {
        var theta = (double[])global.Clone();
        var g = new double[Parameters];
        Span<double> r = stackalloc double[outputs];
        for (var e = 0; e < epochs; e++)
        {
            foreach (var batch in BatchPlan.Batches(Rows, batchSize, seed, round * epochs + e))
            {
                Array.Clear(g);
                foreach (var i in batch) { Residual(theta, i, r); Accumulate(g, i, r, 1.0); }
                Step(theta, g, batch.Length, lr, l2);
            }
        }
        return theta;
    }

    /// <summary>
    /// DP-SGD local update (Abadi et al. 2016): each step samples rows independently with probability q (Poisson
    /// sampling, as the sampled-Gaussian accountant assumes), clips each row's gradient to L2 norm C, adds
    /// N(0, sigma^2 C^2) to every coordinate of the sum and divides by the expected batch size q n. The L2 penalty
    /// does not touch data and is added without noise. The row gradient r (x) [x, 1] has norm ||r|| sqrt(||x||^2 + 1),
    /// so clipping needs no per-row gradient vector. Returns the number of noisy steps taken.
    /// </summary>
    public (double[] Theta, int Steps) TrainDp(double[] global, int epochs, double q, double sigma, double clip, double lr, double l2, Random sampler)
    {
        var theta = (double[])global.Clone();
        var g = new double[Parameters];
        Span<double> r = stackalloc double[outputs];
        var stepsPerEpoch = DpPlan.StepsPerEpoch(q);
        var expected = q * Rows;
        var noise = new double[Parameters];
        var steps = 0;
        for (var e = 0; e < epochs; e++)
        {
            for (var s = 0; s < stepsPerEpoch; s++, steps++)
            {
                Array.Clear(g);
                foreach (var i in PoissonSample(Rows, q, sampler))
                {
                    Residual(theta, i, r);
                    var norm2 = 0.0;
                    for (var c = 0; c < outputs; c++) norm2 += r[c] * r[c];
                    var norm = Math.Sqrt(norm2 * rowNorm2[i]);
                    Accumulate(g, i, r, norm > clip ? clip / norm : 1.0);
                }
                SecureGaussian.Fill(noise, sigma * clip);
                for (var k = 0; k < g.Length; k++) g[k] += noise[k];
                Step(theta, g, expected, lr, l2);
            }
        }
        return (theta, steps);
    }

    /// <summary>Rows 0..n-1 each included with probability q, by geometric skips (about q n draws, not n).</summary>
    static IEnumerable<int> PoissonSample(int n, double q, Random rng)
    {
        if (q >= 1) { for (var i = 0; i < n; i++) yield return i; yield break; }
        var logNot = Math.Log(1 - q);
        for (var i = -1; ;)
        {
            var u = 1.0 - rng.NextDouble(); // (0, 1]
            i += 1 + (int)Math.Min(n, Math.Floor(Math.Log(u) / logNot));
            if (i >= n) yield break;
            yield return i;
        }
    }
}

/// <summary>Gaussian noise from the operating system's CSPRNG (Box-Muller on 53-bit uniforms): the noise that makes an
/// update private must not be predictable from a seed.</summary>
public static class SecureGaussian
{
    public static void Fill(double[] into, double std)
    {
        var bytes = new byte[into.Length * 16];
        RandomNumberGenerator.Fill(bytes);
        for (var k = 0; k < into.Length; k++)
        {
            var u1 = ((BitConverter.ToUInt64(bytes, k * 16) >> 11) + 1) * (1.0 / 9007199254740992.0); // (0, 1]
            var u2 = (BitConverter.ToUInt64(bytes, k * 16 + 8) >> 11) * (1.0 / 9007199254740992.0);
            into[k] = std * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
        }
    }
}

/// <summary>
/// Client-level DP (DP-FedAvg, McMahan, Ramage, Talwar and Zhang 2018, "Learning Differentially Private Recurrent
/// Language Models"): each client's whole update theta_local - theta_global is clipped to L2 norm C, every client
/// weighs the same in the sum (so adding or removing a client moves the sum by at most C), and the sum gets
/// N(0, sigma^2 C^2) per coordinate. The noise is distributed: each of the m live clients of an aggregation group adds
/// its share N(0, sigma^2 C^2 / m) before masking, so the group sum an aggregation server sees already carries the
/// whole noise and no party ever holds a clear, un-noised sum.
/// </summary>
public static class ClientDp
{
    /// <summary>delta scaled to L2 norm at most <paramref name="clip"/>.</summary>
    public static double[] Clip(double[] delta, double clip)
    {
        var norm = Math.Sqrt(delta.Sum(d => d * d));
        var scale = norm > clip ? clip / norm : 1.0;
        return delta.Select(d => d * scale).ToArray();
    }

    /// <summary>Standard deviation of one client's noise share when <paramref name="live"/> clients of its group answer
    /// this attempt: the shares add up to sigma * C over the group.</summary>
    public static double ShareStd(double sigma, double clip, int live) => sigma * clip / Math.Sqrt(live);

    /// <summary>The first <paramref name="parameters"/> values of v plus fresh noise of <see cref="ShareStd"/>; the
    /// client weight and loss slots after them stay exact.</summary>
    public static double[] WithNoiseShare(double[] v, int parameters, double sigma, double clip, int live)
    {
        var noise = new double[parameters];
        SecureGaussian.Fill(noise, ShareStd(sigma, clip, live));
        var result = (double[])v.Clone();
        for (var k = 0; k < parameters; k++) result[k] += noise[k];
        return result;
    }
}
