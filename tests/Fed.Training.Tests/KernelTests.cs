using System.Numerics;
using Fed.Training.Crypto;
using Fed.Training.Protocol;

namespace Fed.Training.Tests;

/// <summary>The GMP kernels (native vectors, multi-exponentiation, fixed-base obfuscators) against the naive paths.</summary>
public class KernelTests
{
    static readonly PaillierPrivateKey Sk = Keys.Paillier1024;
    static readonly PaillierPublicKey Pk = Sk.PublicKey;

    [Fact]
    public unsafe void MontgomeryVectorsRoundTripAndMultiply()
    {
        Assert.True(Montgomery.Available, "GMP's mpn layer should load and pass its self-test");
        foreach (var m in new[] { Pk.NSquared, Keys.Paillier2048.PublicKey.NSquared, Pk.N, new BigInteger(1000003) })
        {
            var values = new[] { BigInteger.Zero, BigInteger.One, m - 1, m / 2, BigMath.RandomBelow(m), BigMath.RandomBelow(m) };
            using var mont = new Montgomery(m);
            using var s = new Montgomery.Scratch(mont.Limbs);
            using var v = mont.ImportAll(values, s);
            Assert.Equal(values.Length, v.Count);
            for (var i = 0; i < values.Length; i++) Assert.Equal(values[i], mont.Export(v[i], s));
            for (var i = 0; i + 1 < values.Length; i++)
            {
                mont.Mul(v[i], v[i], v[i + 1], s); // aliasing the output with an input
                Assert.Equal(values[i] * values[i + 1] % m, mont.Export(v[i], s));
            }
            mont.Mul(v[5], v[5], v[5], s);
            Assert.Equal(values[5] * values[5] % m, mont.Export(v[5], s));
            mont.Import(v[0], m + 5, s); // reduced on import
            Assert.Equal(5, mont.Export(v[0], s));
            Assert.Throws<IndexOutOfRangeException>(() => { var _ = v[values.Length]; });
        }
    }

    [Theory]
    [InlineData(1, 8)]
    [InlineData(7, 3)]
    [InlineData(300, 20)]
    [InlineData(2000, 36)]
    [InlineData(50, 63)]
    public void MultiExpEqualsTheNaiveProduct(int count, int bits)
    {
        var rng = new Random(count * 31 + bits);
        var m = Pk.NSquared;
        var bases = Enumerable.Range(0, count).Select(_ => BigMath.RandomUnit(m)).ToArray();
        var exps = new long[count];
        for (var k = 0; k < count; k++)
        {
            var e = rng.NextInt64(0, 1L << Math.Min(bits, 62)) >> rng.Next(0, bits); // mixed lengths
            exps[k] = (k % 5) switch { 0 => 0, 1 => -e, 2 => e, 3 => (k % 2 == 0 ? -1 : 1), _ => -e - 1 };
        }
        if (count > 3) { exps[^1] = long.MinValue; exps[^2] = long.MaxValue; }
        var expected = BigInteger.One;
        for (var k = 0; k < count; k++) expected = BigMath.ModMul(expected, BigMath.ModPow(bases[k], exps[k], m), m);
        using var mont = new Montgomery(m);
        using var scratch = new Montgomery.Scratch(mont.Limbs);
        using var v = mont.ImportAll(bases, scratch);
        using var kernel = new MultiExp(mont, 6);
        Assert.Equal(expected, kernel.Compute(v, 0, exps));
        Assert.Equal(expected, kernel.Compute(v, 0, exps)); // buckets are emptied between calls
        Assert.Equal(BigInteger.One, kernel.Compute(v, 0, new long[count]));
    }

    [Fact]
    public void DotAndWeightedSumEqualTheNaiveProductsAndDecrypt()
    {
        var rng = new Random(5);
        const int rows = 150, width = 7;
        var x = Enumerable.Range(0, rows).Select(_ => rng.NextDouble() * 10 - 5).ToArray();
        using var enc = new PaillierEncryptor(Pk);
        var cts = enc.EncryptBatch(x);
        var scalars = Enumerable.Range(0, rows).Select(k => Enumerable.Range(0, width).Select(f => f == 0 ? 0L : rng.NextInt64(-(1L << 22), 1L << 22)).ToArray()).ToArray();
        var fast = Homomorphic.Dot(Pk, cts, 10, rows - 10, scalars.Skip(10).ToArray(), width);
        var naive = Homomorphic.DotNaive(Pk, cts, 10, rows - 10, scalars.Skip(10).ToArray(), width);
        Assert.Equal(naive, fast);
        using (BigMath.ForceManaged()) // the BigInteger fallback takes the naive path and agrees
            Assert.Equal(fast, Homomorphic.Dot(Pk, cts, 10, rows - 10, scalars.Skip(10).ToArray(), width));
        var codec = enc.Codec;
        for (var f = 0; f < width; f++)
        {
            var expected = Enumerable.Range(10, rows - 10).Sum(k => (double)scalars[k][f] * codec.Decode(codec.Encode(x[k])));
            Assert.Equal(expected, codec.Decode(Sk.Decrypt(fast[f]), codec.FractionalBits), 6);
        }
        var big = Enumerable.Range(0, rows).Select(k => (BigInteger)scalars[k][3]).ToArray();
        Assert.Equal(Sk.Decrypt(Homomorphic.Dot(Pk, cts, 0, rows, scalars, width)[3]), Sk.Decrypt(Homomorphic.WeightedSum(Pk, cts, big)));
        big[0] = BigInteger.One << 100; // beyond 64 bits: the naive path
        var expectedBig = BigMath.Mod(Enumerable.Range(0, rows).Aggregate(BigInteger.Zero, (s, k) => s + big[k] * Sk.Decrypt(cts[k])), Pk.N);
        Assert.Equal(expectedBig, Sk.Decrypt(Homomorphic.WeightedSum(Pk, cts, big)));
    }

    [Fact]
    public void FixedBaseEncryptionDecryptsAndIsAnNthResidue()
    {
        foreach (var sk in new[] { Sk, Keys.Paillier2048 })
        {
            var pk = sk.PublicKey;
            using var enc = new PaillierEncryptor(pk);
            using var dec = new PaillierEncryptor(sk);
            Assert.True(pk.HasFastObfuscator);
            var xs = new[] { 0.0, 1.5, -2.25, 1e-10, -1e9, 123456.789 };
            Assert.Equal(xs, dec.DecryptBatch(enc.EncryptBatch(xs)).Select(v => Math.Round(v, 12)));
            for (var i = 0; i < 3; i++)
            {
                var r = pk.NewFastObfuscator();
                Assert.Equal(BigInteger.One, BigInteger.ModPow(r, sk.Lambda, pk.NSquared)); // n-th residue
                Assert.NotEqual(r, pk.NewFastObfuscator());
            }
            var m = BigMath.RandomBelow(pk.N);
            Assert.Equal(m, sk.Decrypt(pk.Rerandomize(pk.Encrypt(m))));
        }
    }

    [Fact]
    public void GeneratedKeysAreAdmissibleForTheFixedBase()
    {
        foreach (var sk in new[] { Sk, Keys.Paillier2048 })
        {
            Assert.Equal(3, (int)(sk.P % 4));
            Assert.Equal(3, (int)(sk.Q % 4));
            Assert.Equal(2, (int)BigInteger.GreatestCommonDivisor(sk.P - 1, sk.Q - 1));
        }
    }

    [Fact]
    public void TextbookPublicKeyPathStillWorks()
    {
        using var enc = new PaillierEncryptor(Pk) { Textbook = true };
        using var dec = new PaillierEncryptor(Sk);
        var xs = new[] { 3.0, -4.5, 0.0 };
        Assert.Equal(xs, dec.DecryptBatch(enc.EncryptBatch(xs)));
    }
}
