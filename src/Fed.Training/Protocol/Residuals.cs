using System.Numerics;
using Fed.Core.Model;
using Fed.Training.Crypto;
using Fed.Training.Train;

namespace Fed.Training.Protocol;

/// <summary>
/// The encrypted logistic residual d = sigmoid(z_g + Z) - y without any party seeing Z (see <see cref="SigmoidSeries"/>):
/// <list type="number">
/// <item>the guest sends the arbiter [[Z 2^F + R]], R = r + P 2^F (2^64 + k), r uniform in [0, P 2^F), k uniform below
/// 2^128: the arbiter's plaintext is statistically independent of Z (distance &lt; 2^-100), and x = Z + r/2^F mod P is
/// exactly uniform in [0, P);</item>
/// <item>the arbiter returns [[sin w_j x]], [[cos w_j x]] (j = 1..J), fresh encryptions at <see cref="TrigBits"/>;</item>
/// <item>with u = z_g - r/2^F (the guest's), sin(w_j z) = sin(w_j x) cos(w_j u) + cos(w_j x) sin(w_j u): the guest forms
/// [[d]] = [[1/2 + z_g/P - y]] [[Z]]^(1/P) prod_j [[sin w_j x]]^(b_j cos w_j u) [[cos w_j x]]^(b_j sin w_j u) with
/// plaintext scalars only, and the periodic part of the loss the same way from the cosine series.</item>
/// </list>
/// The guest never decrypts; the arbiter sees a uniform x per row; the hosts see [[d]] only.
/// </summary>
public static class Residuals
{
    const int F = 53;
    /// <summary>Fraction bits of the arbiter's trigonometric values (free: the plaintext's size costs nothing).</summary>
    public const int TrigBits = 59;
    /// <summary>Fraction bits of the guest's scalars on them: residuals have scale 2^-(TrigBits + ScalarBits). The scalars
    /// are the exponents of the guest's per-row multi-exponentiation, so they are kept short (rounding error
    /// 2J 2^-25 &lt; 1e-6, far below the series' error); TrigBits + ScalarBits - F = 30 bits keep [[Z]]/P exact enough.</summary>
    const int ScalarBits = 24;
    public static int Width => 2 * SigmoidSeries.Terms;
    static readonly BigInteger Modulus = new BigInteger(SigmoidSeries.Period) << F;

    /// <summary>Fraction bits of the encrypted residual: F for linear, TrigBits + ScalarBits (83) for the Fourier form.</summary>
    public static int Bits(ModelKind kind) => kind == ModelKind.Linear ? F : TrigBits + ScalarBits;

    public readonly record struct Mask(BigInteger Full, double Shift);

    /// <summary>The trigonometric ciphertexts of a batch (row-major: J sines, then J cosines) and u = z_g - r/2^F per row.</summary>
    public sealed record Trig(PaillierCiphertext[] Values, double[] U);

    public static Mask[] Masks(int count) => Masks(count, Modulus);

    static Mask[] Masks(int count, BigInteger modulus)
    {
        var result = new Mask[count];
        var high = BigInteger.One << 128;
        for (var i = 0; i < count; i++)
        {
            var r = BigMath.RandomBelow(modulus);
            var k = (BigInteger.One << 64) + BigMath.RandomBelow(high);
            result[i] = new Mask(r + modulus * k, Math.ScaleB((double)r, -F));
        }
        return result;
    }

    /// <summary>The arbiter's side: sin(w_j x), cos(w_j x) for x = (s mod P 2^F) / 2^F.</summary>
    public static void TrigValues(BigInteger s, Span<double> into)
    {
        var x = Math.ScaleB((double)BigInteger.Remainder(s, Modulus), -F);
        var j = SigmoidSeries.Terms;
        for (var t = 1; t <= j; t++)
        {
            var (sin, cos) = Math.SinCos(SigmoidSeries.Omega(t) * x);
            into[t - 1] = sin; into[j + t - 1] = cos;
        }
    }

    /// <summary>The guest's plaintext part of the residual: 1/2 + z_g/P - y (encrypted at <see cref="Bits"/>).</summary>
    public static double SigmoidOffset(double zg, double y) => 0.5 + zg / SigmoidSeries.Period - y;

    /// <summary>[[d_i]] = offsets_i [[Z_i]]^(1/P) prod_j (trig terms), row by row.</summary>
    public static PaillierCiphertext[] Sigmoid(PaillierPublicKey key, Trig trig, PaillierCiphertext[] Z, PaillierCiphertext[] offsets)
    {
        var J = SigmoidSeries.Terms; var w = Width;
        var zScalar = (long)Math.Round(Math.ScaleB(1.0 / SigmoidSeries.Period, TrigBits + ScalarBits - F));
        var bases = new PaillierCiphertext[Z.Length][];
        var exps = new long[Z.Length][];
        for (var i = 0; i < Z.Length; i++)
        {
            var row = bases[i] = new PaillierCiphertext[w + 1];
            Array.Copy(trig.Values, i * w, row, 0, w);
            row[w] = Z[i];
            var e = exps[i] = new long[w + 1];
            for (var t = 1; t <= J; t++)
            {
                var (sin, cos) = Math.SinCos(SigmoidSeries.Omega(t) * trig.U[i]);
                var b = SigmoidSeries.SineCoefficients[t - 1];
                e[t - 1] = (long)Math.Round(Math.ScaleB(b * cos, ScalarBits));
                e[J + t - 1] = (long)Math.Round(Math.ScaleB(b * sin, ScalarBits));
            }
            e[w] = zScalar;
        }
        return Homomorphic.Add(key, Homomorphic.RowSums(key, bases, exps), offsets);
    }

    /// <summary>[[weight sum_i (softplus series' cosine part at z_i)]] at scale 2^-scaleBits (cos(w(x+u)) = cos wx cos wu - sin wx sin wu).</summary>
    public static PaillierCiphertext SoftplusSum(PaillierPublicKey key, Trig trig, double weight, int scaleBits)
    {
        var J = SigmoidSeries.Terms; var w = Width;
        var scalars = new BigInteger[trig.Values.Length];
        for (var i = 0; i < trig.U.Length; i++)
            for (var t = 1; t <= J; t++)
            {
                var (sin, cos) = Math.SinCos(SigmoidSeries.Omega(t) * trig.U[i]);
                var a = SigmoidSeries.CosineCoefficients[t - 1] * weight;
                scalars[i * w + t - 1] = Homomorphic.Scalar(-a * sin, scaleBits - TrigBits);
                scalars[i * w + J + t - 1] = Homomorphic.Scalar(a * cos, scaleBits - TrigBits);
            }
        return Homomorphic.WeightedSum(key, trig.Values, scalars);
    }

    // Multinomial softmax (SoftmaxSeries): the same masking on the K - 1 score differences Delta_k = Z_k - Z_0 of a
    // row (period P of the series), and the arbiter returns cos and sin of 2 pi w.x / P for every frequency w.

    static BigInteger SoftmaxModulus(SoftmaxSeries series) => new BigInteger(series.Period) << F;

    /// <summary>Masks for the D m differences (layout (k - 1) m + i), uniform modulo the series' period.</summary>
    public static Mask[] SoftmaxMasks(SoftmaxSeries series, int count) => Masks(count, SoftmaxModulus(series));

    /// <summary>[[Z_k - Z_0]], k = 1..K-1, from the class-major [[Z]] (c m + i): layout (k - 1) m + i.</summary>
    public static PaillierCiphertext[] Differences(PaillierPublicKey key, PaillierCiphertext[] Z, int classes, int m)
    {
        var minus = new PaillierCiphertext[m];
        Parallel.For(0, m, i => minus[i] = key.Multiply(Z[i], BigInteger.MinusOne));
        var result = new PaillierCiphertext[(classes - 1) * m];
        for (var k = 1; k < classes; k++)
            for (var i = 0; i < m; i++) result[(k - 1) * m + i] = key.Add(Z[k * m + i], minus[i]);
        return result;
    }

    /// <summary>The arbiter's side for row i: cos, then sin, of 2 pi w.x / P for every frequency, x_k the decrypted
    /// masked differences reduced mod P (<paramref name="masked"/> in layout (k - 1) m + i).</summary>
    public static void SoftmaxTrigValues(SoftmaxSeries series, BigInteger[] masked, int m, int i, Span<double> into)
    {
        var modulus = SoftmaxModulus(series);
        Span<double> x = stackalloc double[series.Dimensions];
        for (var k = 0; k < x.Length; k++) x[k] = Math.ScaleB((double)BigInteger.Remainder(masked[k * m + i], modulus), -F);
        var count = series.Frequencies.Length;
        for (var f = 0; f < count; f++)
        {
            var (sin, cos) = Math.SinCos(series.Phase(f, x));
            into[f] = cos; into[count + f] = sin;
        }
    }

    /// <summary>u = delta_g - r/2^F per row and difference: the guest's half of each phase (w.delta = w.x + w.u mod P).</summary>
    public static double[][] SoftmaxShifts(double[] zg, Mask[] masks, int classes, int m) =>
        Enumerable.Range(0, m).Select(i => Enumerable.Range(1, classes - 1)
            .Select(k => zg[k * m + i] - zg[i] - masks[(k - 1) * m + i].Shift).ToArray()).ToArray();

    /// <summary>[[p_c - y_c]] for every class and row (class-major c m + i) from the arbiter's trigonometric values
    /// (row-major, <see cref="SoftmaxSeries.Width"/> per row) and the guest's shifts; offsets are the guest's fresh
    /// encryptions of l_c - y_c (class 0: 1 - sum_k l_k - y_0) at <see cref="Bits"/>.</summary>
    public static PaillierCiphertext[] Softmax(PaillierPublicKey key, SoftmaxSeries series, PaillierCiphertext[] trig, double[][] u, PaillierCiphertext[] offsets)
    {
        var m = u.Length; var D = series.Dimensions; var K = D + 1; var count = series.Frequencies.Length; var w = series.Width;
        var bases = new PaillierCiphertext[K * m][];
        var exps = new long[K * m][];
        for (var i = 0; i < m; i++)
        {
            var row = new PaillierCiphertext[w];
            Array.Copy(trig, i * w, row, 0, w);
            var e = new double[K][];
            for (var c = 0; c < K; c++) e[c] = new double[w];
            for (var f = 0; f < count; f++)
            {
                var (su, cu) = Math.SinCos(series.Phase(f, u[i]));
                double A = series.Cos[f], B = series.Sin[f];
                // d f / d delta_k = sum_f 2 pi w_k / P (-A sin + B cos)(theta_x + theta_u), split over [[cos theta_x]], [[sin theta_x]]
                double onCos = -A * su + B * cu, onSin = -A * cu - B * su;
                for (var k = 1; k < K; k++)
                {
                    var scale = 2 * Math.PI * series.Frequencies[f][k - 1] / series.Period;
                    e[k][f] = scale * onCos; e[k][count + f] = scale * onSin;
                    e[0][f] -= scale * onCos; e[0][count + f] -= scale * onSin;
                }
            }
            for (var c = 0; c < K; c++)
            {
                bases[c * m + i] = row;
                exps[c * m + i] = e[c].Select(v => (long)Math.Round(Math.ScaleB(v, ScalarBits))).ToArray();
            }
        }
        return Homomorphic.Add(key, Homomorphic.RowSums(key, bases, exps), offsets);
    }

    /// <summary>The guest's plaintext offset of class c's residual.</summary>
    public static double SoftmaxOffset(SoftmaxSeries series, int c, double y) =>
        (c == 0 ? 1 - series.Linear.Sum() : series.Linear[c - 1]) - y;

    /// <summary>[[weight sum_i (the periodic part of f(delta_i) + sum_k (l_k - y_ik) Delta_i,k)]] at scale 2^-scaleBits:
    /// the encrypted part of the cross-entropy f(delta) - delta_y (the guest adds a_0 + sum_k (l_k - y_k) delta_g,k).</summary>
    public static PaillierCiphertext SoftmaxLossSum(PaillierPublicKey key, SoftmaxSeries series, PaillierCiphertext[] trig, double[][] u,
        PaillierCiphertext[] differences, double[][] targets, int[] batch, double weight, int scaleBits)
    {
        var m = u.Length; var count = series.Frequencies.Length; var w = series.Width; var D = series.Dimensions;
        var cts = new PaillierCiphertext[trig.Length + differences.Length];
        trig.CopyTo(cts, 0); differences.CopyTo(cts, trig.Length);
        var scalars = new BigInteger[cts.Length];
        for (var i = 0; i < m; i++)
            for (var f = 0; f < count; f++)
            {
                var (su, cu) = Math.SinCos(series.Phase(f, u[i]));
                double A = series.Cos[f] * weight, B = series.Sin[f] * weight;
                // A cos(theta) + B sin(theta) = cos theta_x (A cu + B su) + sin theta_x (B cu - A su)
                scalars[i * w + f] = Homomorphic.Scalar(A * cu + B * su, scaleBits - TrigBits);
                scalars[i * w + count + f] = Homomorphic.Scalar(B * cu - A * su, scaleBits - TrigBits);
            }
        for (var k = 1; k <= D; k++)
            for (var i = 0; i < m; i++)
                scalars[trig.Length + (k - 1) * m + i] = Homomorphic.Scalar((series.Linear[k - 1] - targets[k][batch[i]]) * weight, scaleBits - F);
        return Homomorphic.WeightedSum(key, cts, scalars);
    }

    /// <summary>The guest's plaintext part of a row's cross-entropy: a_0 + sum_k (l_k - y_k) delta_g,k.</summary>
    public static double SoftmaxLossConstant(SoftmaxSeries series, double[] zg, double[][] targets, int[] batch, int m, int i)
    {
        var s = series.Constant;
        for (var k = 1; k <= series.Dimensions; k++) s += (series.Linear[k - 1] - targets[k][batch[i]]) * (zg[k * m + i] - zg[i]);
        return s;
    }
}
