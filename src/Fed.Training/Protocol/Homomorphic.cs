using System.Numerics;
using Fed.Core;
using Fed.Training.Crypto;
using Fed.Training.Train;

namespace Fed.Training.Protocol;

/// <summary>Homomorphic building blocks of the protocol, parallel across cores.</summary>
public static class Homomorphic
{
    // Bounded: the CPU-bound kernels must leave thread-pool threads for the party's HTTP endpoint (health checks).
    static readonly ParallelOptions Cores = new() { MaxDegreeOfParallelism = Environment.ProcessorCount };

    /// <summary>round(x * 2^bits) as a signed integer (a plaintext scalar for ciphertext-times-plaintext).</summary>
    public static BigInteger Scalar(double x, int bits) => FixedPointCodec.ScaleRound(x, bits);

    /// <summary>
    /// out[f] = prod_k cts[offset + k]^(scalars[k][f]) = E(sum_k scalars[k][f] * m_k) for f in 0..width-1.
    /// With GMP: the ciphertexts are imported into native Montgomery form once and each output is one Pippenger
    /// multi-exponentiation over them (<see cref="MultiExp"/>), outputs spread over all cores.
    /// </summary>
    public static PaillierCiphertext[] Dot(PaillierPublicKey key, PaillierCiphertext[] cts, int offset, int count, long[][] scalars, int width)
    {
        if (!Montgomery.Available) return DotNaive(key, cts, offset, count, scalars, width);
        var result = new PaillierCiphertext[width];
        using var mont = new Montgomery(key.NSquared);
        using var bases = Bases(mont, cts, offset, count);
        Parallel.For(0, width, Cores, () => (Kernel: new MultiExp(mont, MultiExp.Window(count, 24)), Column: new long[count]),
            (f, _, local) =>
            {
                for (var k = 0; k < count; k++) local.Column[k] = scalars[k][f];
                result[f] = new PaillierCiphertext(local.Kernel.Compute(bases, 0, local.Column));
                return local;
            },
            local => local.Kernel.Dispose());
        return result;
    }

    /// <summary>The reference for <see cref="Dot"/>: one modpow per (row, output); also the BigInteger fallback.</summary>
    internal static PaillierCiphertext[] DotNaive(PaillierPublicKey key, PaillierCiphertext[] cts, int offset, int count, long[][] scalars, int width)
    {
        var result = new PaillierCiphertext[width];
        Parallel.For(0, width, Cores, f =>
        {
            var s = new BigInteger[count];
            for (var k = 0; k < count; k++) s[k] = scalars[k][f];
            result[f] = WeightedSumNaive(key, cts.AsSpan(offset, count), s);
        });
        return result;
    }

    /// <summary>E(sum_k s_k m_k) for signed scalars s_k (one output): chunks of rows per core, one multi-exponentiation
    /// each when every scalar fits in 64 bits (always, for the protocol's fixed-point scalars).</summary>
    public static PaillierCiphertext WeightedSum(PaillierPublicKey key, PaillierCiphertext[] cts, BigInteger[] scalars)
    {
        var nsq = key.NSquared;
        var chunks = Math.Max(1, Math.Min(Environment.ProcessorCount, cts.Length / 64));
        var parts = new BigInteger[chunks];
        var small = Montgomery.Available && scalars.All(e => e >= long.MinValue && e <= long.MaxValue);
        Parallel.For(0, chunks, Cores, t =>
        {
            int from = (int)((long)cts.Length * t / chunks), to = (int)((long)cts.Length * (t + 1) / chunks);
            if (!small) { parts[t] = WeightedSumNaive(key, cts.AsSpan(from, to - from), scalars.AsSpan(from, to - from)).Value; return; }
            var e = new long[to - from];
            for (var k = 0; k < e.Length; k++) e[k] = (long)scalars[from + k];
            using var mont = new Montgomery(nsq);
            using var bases = Bases(mont, cts, from, to - from);
            using var kernel = new MultiExp(mont, MultiExp.Window(e.Length, 48));
            parts[t] = kernel.Compute(bases, 0, e);
        });
        var r = BigInteger.One;
        foreach (var p in parts) r = BigMath.ModMul(r, p, nsq);
        return new PaillierCiphertext(r);
    }

    /// <summary>prod_k cts[k]^s_k with one modpow per term, positive and negative scalars accumulated separately.</summary>
    static PaillierCiphertext WeightedSumNaive(PaillierPublicKey key, ReadOnlySpan<PaillierCiphertext> cts, ReadOnlySpan<BigInteger> scalars)
    {
        var nsq = key.NSquared;
        BigInteger pos = BigInteger.One, neg = BigInteger.One;
        for (var k = 0; k < cts.Length; k++)
        {
            var e = scalars[k];
            if (e.IsZero) continue;
            var c = cts[k].Value;
            if (e.Sign > 0) pos = BigMath.ModMul(pos, e.IsOne ? c : BigMath.ModPow(c, e, nsq), nsq);
            else neg = BigMath.ModMul(neg, e == BigInteger.MinusOne ? c : BigMath.ModPow(c, -e, nsq), nsq);
        }
        return new PaillierCiphertext(neg.IsOne ? pos : BigMath.ModMul(pos, BigMath.ModInverse(neg, nsq), nsq));
    }

    static Montgomery.Vector Bases(Montgomery mont, PaillierCiphertext[] cts, int offset, int count)
    {
        using var scratch = new Montgomery.Scratch(mont.Limbs);
        return mont.ImportAll(cts.AsSpan(offset, count).ToArray().Select(c => c.Value).ToArray(), scratch);
    }

    /// <summary>out[i] = prod_k bases[i][k]^exps[i][k] = E(sum_k exps[i][k] m_ik): one short multi-exponentiation per row,
    /// rows spread over the cores.</summary>
    public static PaillierCiphertext[] RowSums(PaillierPublicKey key, PaillierCiphertext[][] bases, long[][] exps)
    {
        var result = new PaillierCiphertext[bases.Length];
        if (!Montgomery.Available)
        {
            Parallel.For(0, bases.Length, Cores, i => result[i] = WeightedSumNaive(key, bases[i], exps[i].Select(e => (BigInteger)e).ToArray()));
            return result;
        }
        using var mont = new Montgomery(key.NSquared);
        var width = bases.Length == 0 ? 0 : bases[0].Length;
        Parallel.For(0, bases.Length, Cores, () => (Kernel: new MultiExp(mont, MultiExp.Window(width, 56)), Scratch: new Montgomery.Scratch(mont.Limbs)),
            (i, _, local) =>
            {
                using var v = mont.ImportAll(bases[i].Select(c => c.Value).ToArray(), local.Scratch);
                result[i] = new PaillierCiphertext(local.Kernel.Compute(v, 0, exps[i]));
                return local;
            },
            local => { local.Kernel.Dispose(); local.Scratch.Dispose(); });
        return result;
    }

    /// <summary>Elementwise E(a_i + b_i).</summary>
    public static PaillierCiphertext[] Add(PaillierPublicKey key, PaillierCiphertext[] a, PaillierCiphertext[] b)
    {
        var r = new PaillierCiphertext[a.Length];
        Parallel.For(0, a.Length, Cores, i => r[i] = key.Add(a[i], b[i]));
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
                r[f] = Objective.FeatureScalar(x[f], bits);
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
        Parallel.For(0, cts.Length, Cores, i => r[i] = key.AddPlain(key.Rerandomize(cts[i]), masks[i]));
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
