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
    /// <summary>Fraction bits of the arbiter's trigonometric values.</summary>
    public const int TrigBits = 40;
    /// <summary>Fraction bits of the guest's scalars on them: residuals have scale 2^-(TrigBits + ScalarBits).</summary>
    const int ScalarBits = 53;
    public static int Width => 2 * SigmoidSeries.Terms;
    static readonly BigInteger Modulus = new BigInteger(SigmoidSeries.Period) << F;

    /// <summary>Fraction bits of the encrypted residual: F for linear, 93 for the Fourier form.</summary>
    public static int Bits(ModelKind kind) => kind == ModelKind.Linear ? F : TrigBits + ScalarBits;

    public readonly record struct Mask(BigInteger Full, double Shift);

    /// <summary>The trigonometric ciphertexts of a batch (row-major: J sines, then J cosines) and u = z_g - r/2^F per row.</summary>
    public sealed record Trig(PaillierCiphertext[] Values, double[] U);

    public static Mask[] Masks(int count)
    {
        var result = new Mask[count];
        var high = BigInteger.One << 128;
        for (var i = 0; i < count; i++)
        {
            var r = BigMath.RandomBelow(Modulus);
            var k = (BigInteger.One << 64) + BigMath.RandomBelow(high);
            result[i] = new Mask(r + Modulus * k, Math.ScaleB((double)r, -F));
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
}
