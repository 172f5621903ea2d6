using System.Numerics;
using Fed.Core;
using Fed.Training.Crypto;

namespace Fed.Training.Protocol;

/// <summary>Homomorphic building blocks of the protocol, parallel across cores.</summary>
public static class Homomorphic
{
    /// <summary>round(x * 2^bits) as a signed integer (a plaintext scalar for ciphertext-times-plaintext).</summary>
    public static BigInteger Scalar(double x, int bits) => FixedPointCodec.ScaleRound(x, bits);

    /// <summary>
    /// out[f] = prod_k cts[k]^(scalars[k][f]) = E(sum_k scalars[k][f] * m_k) for f in 0..width-1.
    /// Positive and negative exponents are accumulated separately, with one inversion per output.
    /// </summary>
    public static PaillierCiphertext[] Dot(PaillierPublicKey key, PaillierCiphertext[] cts, int offset, int count, long[][] scalars, int width)
    {
        var nsq = key.NSquared;
        var result = new PaillierCiphertext[width];
        Parallel.For(0, width, f =>
        {
            BigInteger pos = BigInteger.One, neg = BigInteger.One;
            for (var k = 0; k < count; k++)
            {
                var e = scalars[k][f];
                if (e == 0) continue;
                var c = cts[offset + k].Value;
                if (e > 0) pos = BigMath.ModMul(pos, e == 1 ? c : BigMath.ModPow(c, e, nsq), nsq);
                else neg = BigMath.ModMul(neg, e == -1 ? c : BigMath.ModPow(c, -(BigInteger)e, nsq), nsq);
            }
            result[f] = new PaillierCiphertext(neg.IsOne ? pos : BigMath.ModMul(pos, BigMath.ModInverse(neg, nsq), nsq));
        });
        return result;
    }

    /// <summary>E(sum_k s_k m_k) for big signed scalars s_k (one output).</summary>
    public static PaillierCiphertext WeightedSum(PaillierPublicKey key, PaillierCiphertext[] cts, BigInteger[] scalars)
    {
        var nsq = key.NSquared;
        var parts = new (BigInteger Pos, BigInteger Neg)[Environment.ProcessorCount];
        Parallel.For(0, parts.Length, t =>
        {
            BigInteger pos = BigInteger.One, neg = BigInteger.One;
            for (var k = t; k < cts.Length; k += parts.Length)
            {
                var e = scalars[k];
                if (e.IsZero) continue;
                if (e.Sign > 0) pos = BigMath.ModMul(pos, BigMath.ModPow(cts[k].Value, e, nsq), nsq);
                else neg = BigMath.ModMul(neg, BigMath.ModPow(cts[k].Value, -e, nsq), nsq);
            }
            parts[t] = (pos, neg);
        });
        BigInteger p = BigInteger.One, n = BigInteger.One;
        foreach (var (pp, nn) in parts) { p = BigMath.ModMul(p, pp, nsq); n = BigMath.ModMul(n, nn, nsq); }
        return new PaillierCiphertext(n.IsOne ? p : BigMath.ModMul(p, BigMath.ModInverse(n, nsq), nsq));
    }

    /// <summary>Elementwise E(a_i + b_i).</summary>
    public static PaillierCiphertext[] Add(PaillierPublicKey key, PaillierCiphertext[] a, PaillierCiphertext[] b)
    {
        var r = new PaillierCiphertext[a.Length];
        Parallel.For(0, a.Length, i => r[i] = key.Add(a[i], b[i]));
        return r;
    }

    /// <summary>Row-major matrix of fixed-point scalars round(x * 2^bits) (standardized features: small).</summary>
    public static long[][] FixedRows(double[][] rows, IReadOnlyList<int> select, int bits, bool appendOne)
    {
        var limit = Math.ScaleB(1.0, 62 - bits);
        return select.Select(i =>
        {
            var x = rows[i];
            var r = new long[x.Length + (appendOne ? 1 : 0)];
            for (var f = 0; f < x.Length; f++)
            {
                if (Math.Abs(x[f]) >= limit) throw new BadInputException($"a standardized feature value {x[f]} is too large for {bits} fixed-point bits; check the data for outliers");
                r[f] = (long)Math.Round(Math.ScaleB(x[f], bits));
            }
            if (appendOne) r[^1] = 1L << bits;
            return r;
        }).ToArray();
    }

    /// <summary>Uniform masks in Z_n.</summary>
    public static BigInteger[] Masks(PaillierPublicKey key, int count) =>
        Enumerable.Range(0, count).Select(_ => BigMath.RandomBelow(key.N)).ToArray();

    /// <summary>E(m_i + r_i mod n), re-randomized: the holder of the private key sees only m_i + r_i, uniform in Z_n,
    /// and the ciphertext cannot be linked to the ones it was computed from (a product of zero terms would be 1).</summary>
    public static PaillierCiphertext[] Mask(PaillierPublicKey key, PaillierCiphertext[] cts, BigInteger[] masks)
    {
        var r = new PaillierCiphertext[cts.Length];
        Parallel.For(0, cts.Length, i => r[i] = key.AddPlain(key.Rerandomize(cts[i]), masks[i]));
        return r;
    }

    /// <summary>Removes the masks from decrypted masked values and decodes at the given scale.</summary>
    public static double[] Unmask(FixedPointCodec codec, BigInteger[] masked, BigInteger[] masks, int scaleBits)
    {
        var r = new double[masked.Length];
        for (var i = 0; i < r.Length; i++)
        {
            if (masked[i].Sign < 0 || masked[i] >= codec.N) throw new FedFailureException("protocol error: a masked value is outside Z_n (wrong key?)");
            r[i] = codec.Decode(BigMath.Mod(masked[i] - masks[i], codec.N), scaleBits);
        }
        return r;
    }
}
