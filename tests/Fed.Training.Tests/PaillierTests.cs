using System.Numerics;
using Fed.Training.Crypto;

namespace Fed.Training.Tests;

public class PaillierTests
{
    static readonly PaillierPrivateKey Sk = Keys.Paillier1024;
    static readonly PaillierPublicKey Pk = Sk.PublicKey;
    static BigInteger N => Pk.N;

    static BigInteger[] EdgeAndRandom()
    {
        var values = new List<BigInteger> { 0, 1, 2, -1, -2, N - 1, -(N - 1), N / 2, -(N / 2), N / 3, long.MaxValue, long.MinValue };
        for (int i = 0; i < 20; i++) values.Add(BigMath.RandomBelow(N));
        for (int i = 0; i < 10; i++) values.Add(-BigMath.RandomBelow(N));
        return values.ToArray();
    }

    static BigInteger ModN(BigInteger x) => BigMath.Mod(x, N);

    [Fact]
    public void KeyHasRequestedSizeAndConsistentLambdaMu()
    {
        Assert.Equal(1024, Pk.Bits);
        Assert.Equal(N, Sk.P * Sk.Q);
        Assert.True(BigMath.IsProbablePrime(Sk.P) && BigMath.IsProbablePrime(Sk.Q));
        Assert.Equal(BigInteger.One, ModN(Sk.Lambda * Sk.Mu));
    }

    [Fact]
    public void EncryptDecryptRoundTripsEdgeAndRandomValues()
    {
        foreach (var m in EdgeAndRandom())
        {
            Assert.Equal(ModN(m), Sk.Decrypt(Pk.Encrypt(m)));
            Assert.Equal(ModN(m), Sk.Decrypt(Sk.Encrypt(m))); // CRT encryption path
        }
        Assert.Equal(-5, Sk.DecryptSigned(Pk.Encrypt(-5)));
        Assert.Throws<ArgumentOutOfRangeException>(() => Pk.Encrypt(N));
        Assert.Throws<ArgumentOutOfRangeException>(() => Pk.Encrypt(-N));
    }

    [Fact]
    public void EncryptionIsRandomized()
    {
        Assert.NotEqual(Pk.Encrypt(7).Value, Pk.Encrypt(7).Value);
        Assert.NotEqual(Sk.Encrypt(7).Value, Sk.Encrypt(7).Value);
    }

    [Fact]
    public void ObfuscatorsAreNthResidues()
    {
        // Every n-th residue w satisfies w^lambda = 1 mod n^2 (lambda(n^2) = n * lambda): both generation paths.
        for (int i = 0; i < 5; i++)
        {
            Assert.Equal(BigInteger.One, BigInteger.ModPow(Pk.NewObfuscator(), Sk.Lambda, Pk.NSquared));
            Assert.Equal(BigInteger.One, BigInteger.ModPow(Sk.NewObfuscator(), Sk.Lambda, Pk.NSquared));
            Assert.Equal(BigInteger.One, BigInteger.ModPow(Sk.NewFastObfuscator(), Sk.Lambda, Pk.NSquared));
        }
    }

    [Fact]
    public void KeyHolderFixedBaseIsThePublicTablesPowerByCrt()
    {
        using var crt = new CrtFixedBaseObfuscator(Sk);
        var rng = new Random(3);
        foreach (var bits in new[] { 1, 64, Pk.Bits, Pk.Bits + 128 })
        {
            var bytes = new byte[(bits + 7) / 8];
            rng.NextBytes(bytes);
            var alpha = new BigInteger(bytes, isUnsigned: true);
            Assert.Equal(BigInteger.ModPow(crt.Base, alpha, Pk.NSquared), crt.Pow(alpha));
        }
        var m = new BigInteger(123456789);
        using var enc = new PaillierEncryptor(Sk);
        Assert.Equal(m, Sk.Decrypt(enc.Encrypt(m)));
        Assert.NotEqual(enc.Encrypt(m), enc.Encrypt(m));
    }

    [Fact]
    public void HomomorphicAdditionOfCiphertextsAndPlaintexts()
    {
        var values = EdgeAndRandom();
        for (int i = 0; i + 1 < values.Length; i++)
        {
            BigInteger a = values[i], b = values[i + 1];
            Assert.Equal(ModN(a + b), Sk.Decrypt(Pk.Add(Pk.Encrypt(a), Pk.Encrypt(b))));
            Assert.Equal(ModN(a + b), Sk.Decrypt(Pk.AddPlain(Pk.Encrypt(a), b)));
        }
        Assert.Equal(BigInteger.Zero, Sk.Decrypt(Pk.Add(Pk.Encrypt(123), Pk.Encrypt(-123))));
    }

    [Fact]
    public void ScalarMultiplicationIncludingNegativeScalars()
    {
        var values = EdgeAndRandom();
        BigInteger[] scalars = [0, 1, -1, 2, -3, 1L << 60, -(1L << 60), N - 1, N / 2 + 1, BigMath.RandomBelow(N), -BigMath.RandomBelow(N)];
        foreach (var m in values.Take(12))
        {
            var c = Pk.Encrypt(m);
            foreach (var k in scalars)
                Assert.Equal(ModN(m * k), Sk.Decrypt(Pk.Multiply(c, k)));
        }
        // "Negative scalars via n - k": same plaintext either way.
        var c7 = Pk.Encrypt(7);
        Assert.Equal(Sk.Decrypt(Pk.Multiply(c7, N - 5)), Sk.Decrypt(Pk.Multiply(c7, -5)));
        Assert.Equal(-35, Sk.DecryptSigned(Pk.Multiply(c7, -5)));
    }

    [Fact]
    public void RerandomizeKeepsPlaintext()
    {
        var c = Pk.Encrypt(-42);
        var d = Pk.Rerandomize(c);
        Assert.NotEqual(c.Value, d.Value);
        Assert.Equal(-42, Sk.DecryptSigned(d));
    }

    [Fact]
    public void KeysAndCiphertextsSerialize()
    {
        var pk2 = PaillierPublicKey.FromBytes(Pk.ToBytes());
        Assert.Equal(Pk, pk2);
        Assert.Equal(Pk.NSquared, PaillierPublicKey.FromBase64(Pk.ToBase64()).NSquared);
        var cs = new[] { Pk.Encrypt(1), Pk.Encrypt(-1), Pk.Encrypt(N - 1) };
        var packed = Pk.Pack(cs);
        Assert.Equal(3 * Pk.CiphertextBytes, packed.Length);
        Assert.Equal(cs, pk2.Unpack(packed));
        Assert.Equal(cs[1], pk2.Unpack(Pk.ToBytes(cs[1]))[0]);
        Assert.Throws<FormatException>(() => Pk.Unpack(new byte[Pk.CiphertextBytes + 1]));
        Assert.Throws<FormatException>(() => Pk.Unpack(new byte[Pk.CiphertextBytes])); // zero is not a ciphertext
    }

    [Fact]
    public void Key2048RoundTripAndHomomorphism()
    {
        var sk = Keys.Paillier2048;
        var pk = sk.PublicKey;
        Assert.Equal(2048, pk.Bits);
        BigInteger a = BigMath.RandomBelow(pk.N), b = -987654321;
        var sum = pk.Add(sk.Encrypt(a), pk.Encrypt(b));
        Assert.Equal(BigMath.Mod(a + b, pk.N), sk.Decrypt(sum));
        Assert.Equal(BigMath.Mod(-3 * b, pk.N), sk.Decrypt(pk.Multiply(pk.Encrypt(b), -3)));
    }

    [Fact]
    public void BatchEncryptDecryptWithPoolAndWithoutPrivateKey()
    {
        var xs = Enumerable.Range(0, 64).Select(i => (i - 32) * 0.731 + 1e-9 * i).ToArray();
        using var holder = new PaillierEncryptor(Sk);
        holder.Precompute(16);
        Assert.Equal(16, holder.Pooled);
        var cs = holder.EncryptBatch(xs);
        Assert.Equal(0, holder.Pooled);
        var back = holder.DecryptBatch(cs);
        for (int i = 0; i < xs.Length; i++) Assert.Equal(xs[i], back[i], 1e-15);

        using var other = new PaillierEncryptor(Pk); // a host encrypting under the guest's key
        other.StartPrecompute(4);
        var cs2 = other.EncryptBatch(xs);
        Assert.Throws<InvalidOperationException>(() => other.DecryptBatch(cs2));
        var back2 = holder.DecryptBatch(cs2);
        for (int i = 0; i < xs.Length; i++) Assert.Equal(xs[i], back2[i], 1e-15);
    }

    [Fact]
    public void EncryptedDotProductDecodesAtDoubledScale()
    {
        // The host computes sum_i x_i * E(g_i) with its encoded plaintext features; the guest decodes at scale 2F.
        using var enc = new PaillierEncryptor(Sk);
        var codec = enc.Codec;
        double[] g = [0.25, -1.5, 3.0e-4, -7.125], x = [2.0, 0.5, -1000.0, -0.001];
        var cs = enc.EncryptBatch(g);
        var acc = Pk.Encrypt(0);
        for (int i = 0; i < g.Length; i++) acc = Pk.Add(acc, Pk.Multiply(cs[i], codec.Encode(x[i])));
        double expected = g.Zip(x, (a, b) => a * b).Sum();
        Assert.Equal(expected, enc.DecryptBatch([acc], 2 * codec.FractionalBits)[0], 1e-12);
    }
}
