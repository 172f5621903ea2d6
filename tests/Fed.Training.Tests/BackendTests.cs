using System.Numerics;
using Fed.Training.Crypto;
using Fed.Training.Psi;

namespace Fed.Training.Tests;

/// <summary>The native fast paths (GMP, libsodium) and the managed fallbacks (BigInteger, BouncyCastle) agree.</summary>
public class BackendTests
{
    [Fact]
    public void GmpIsLoadedOnTheReferenceMachine()
    {
        Assert.True(BigMath.UsesGmp, "libgmp.so.10 should load (Debian libgmp10)");
        using (BigMath.ForceManaged()) Assert.False(BigMath.UsesGmp);
        Assert.True(BigMath.UsesGmp);
    }

    [Fact]
    public void GmpAndBigIntegerAgree()
    {
        var m = Keys.Paillier1024.PublicKey.NSquared;
        for (int i = 0; i < 50; i++)
        {
            var b = BigMath.RandomBelow(m);
            var e = BigMath.RandomBelow(BigInteger.One << (i * 20 + 1));
            var gmp = (Pow: BigMath.ModPow(b, e, m), Sec: BigMath.ModPow(b, e + 1, m, secret: true), Inv: BigMath.ModInverse(b | 1, m | 1), Mul: BigMath.ModMul(b, e, m));
            using (BigMath.ForceManaged())
            {
                Assert.Equal(gmp.Pow, BigMath.ModPow(b, e, m));
                Assert.Equal(gmp.Sec, BigMath.ModPow(b, e + 1, m));
                Assert.Equal(gmp.Inv, BigMath.ModInverse(b | 1, m | 1));
                Assert.Equal(gmp.Mul, BigMath.ModMul(b, e, m));
            }
            Assert.Equal(BigInteger.ModPow(b, e, m), gmp.Pow);
        }
        // Primality: known prime / composite agree on both paths.
        var p = Keys.Paillier1024.P;
        Assert.True(BigMath.IsProbablePrime(p));
        Assert.False(BigMath.IsProbablePrime(p * Keys.Paillier1024.Q));
        using (BigMath.ForceManaged())
        {
            Assert.True(BigMath.IsProbablePrime(p));
            Assert.False(BigMath.IsProbablePrime(p * Keys.Paillier1024.Q));
        }
    }

    [Fact]
    public void PaillierWorksEntirelyOnTheBigIntegerFallback()
    {
        using var _ = BigMath.ForceManaged();
        var sk = Paillier.GenerateKeyPair(1024);
        var pk = sk.PublicKey;
        using var enc = new PaillierEncryptor(sk);
        var xs = new[] { 1.5, -2.25, 0, 1e-10 };
        var cs = enc.EncryptBatch(xs); // Parallel.For children inherit the forced backend
        Assert.Equal(xs, enc.DecryptBatch(cs).Select(v => Math.Round(v, 14)));
        Assert.Equal(BigMath.Mod(-10, pk.N), sk.Decrypt(pk.Multiply(pk.Encrypt(5), -2)));
        Assert.Equal(4, sk.Decrypt(pk.Add(sk.Encrypt(1), pk.Encrypt(3))));
    }

    [Fact]
    public void LibsodiumAndBouncyCastleX25519Agree()
    {
        // RFC 7748 section 5.2, first test vector.
        var k = Convert.FromHexString("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");
        var u = Convert.FromHexString("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c");
        var expected = Convert.FromHexString("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
        var r = new byte[32];
        Curve25519.ScalarMult(k, u, 0, r, 0);
        Assert.Equal(expected, r);
        using (Curve25519.ForceManaged())
        {
            Array.Clear(r);
            Curve25519.ScalarMult(k, u, 0, r, 0);
            Assert.Equal(expected, r);
        }
        var scalar = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
        var points = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32 * 200);
        var native = Curve25519.ScalarMultAll(scalar, points);
        using (Curve25519.ForceManaged()) Assert.Equal(native, Curve25519.ScalarMultAll(scalar, points));
    }
}
