using System.Numerics;
using System.Security.Cryptography;

namespace Fed.Training.Crypto;

/// <summary>
/// Modular arithmetic used by Paillier and RSA-PSI: GMP when libgmp.so.10 loads (about 3-10x faster than
/// BigInteger.ModPow at 1024-4096 bits), BigInteger otherwise. Results are identical either way.
/// </summary>
public static class BigMath
{
    static readonly AsyncLocal<bool> forceManaged = new();

    /// <summary>True when operations on this logical flow go through GMP.</summary>
    public static bool UsesGmp => Gmp.Available && !forceManaged.Value;

    /// <summary>Tests and benchmarks: run the enclosed flow (including Parallel.For children) on BigInteger.</summary>
    internal static IDisposable ForceManaged()
    {
        var previous = forceManaged.Value;
        forceManaged.Value = true;
        return new Restore(() => forceManaged.Value = previous);
    }

    sealed class Restore(Action undo) : IDisposable { public void Dispose() => undo(); }

    /// <summary>value^exponent mod modulus; a negative exponent means the inverse raised to |exponent|.
    /// secret: the exponent is secret, use GMP's side-channel-silent powm_sec (odd modulus).</summary>
    internal static BigInteger ModPow(BigInteger value, BigInteger exponent, BigInteger modulus, bool secret = false)
    {
        if (exponent.Sign < 0)
            return ModPow(ModInverse(value, modulus), -exponent, modulus, secret);
        if (value.Sign < 0 || value >= modulus) value = Mod(value, modulus);
        if (exponent.IsZero) return modulus.IsOne ? BigInteger.Zero : BigInteger.One;
        return UsesGmp ? Gmp.Current.ModPow(value, exponent, modulus, secret && !modulus.IsEven)
                       : BigInteger.ModPow(value, exponent, modulus);
    }

    /// <summary>x y mod modulus; GMP for non-negative operands (about 10x BigInteger's multiply + remainder at 4096 bits).</summary>
    internal static BigInteger ModMul(BigInteger x, BigInteger y, BigInteger modulus) =>
        UsesGmp && x.Sign >= 0 && y.Sign >= 0 ? Gmp.Current.ModMul(x, y, modulus) : Mod(x * y, modulus);

    /// <summary>x^-1 mod modulus; throws if not invertible.</summary>
    internal static BigInteger ModInverse(BigInteger x, BigInteger modulus)
    {
        x = Mod(x, modulus);
        if (UsesGmp)
            return Gmp.Current.ModInverse(x, modulus) ?? throw new ArithmeticException("not invertible");
        // Extended Euclid.
        BigInteger r0 = modulus, r1 = x, t0 = 0, t1 = 1;
        while (!r1.IsZero)
        {
            var q = BigInteger.DivRem(r0, r1, out var r2);
            (r0, r1) = (r1, r2);
            (t0, t1) = (t1, t0 - q * t1);
        }
        if (!r0.IsOne) throw new ArithmeticException("not invertible");
        return Mod(t0, modulus);
    }

    /// <summary>Non-negative remainder.</summary>
    internal static BigInteger Mod(BigInteger x, BigInteger modulus)
    {
        var r = BigInteger.Remainder(x, modulus);
        return r.Sign < 0 ? r + modulus : r;
    }

    /// <summary>Uniform in [0, bound) from the OS CSPRNG (rejection sampling, no modulo bias).</summary>
    internal static BigInteger RandomBelow(BigInteger bound)
    {
        if (bound.Sign <= 0) throw new ArgumentOutOfRangeException(nameof(bound));
        int bits = (int)(bound - 1).GetBitLength();
        int len = (bits + 7) / 8;
        Span<byte> buf = len <= 1024 ? stackalloc byte[len] : new byte[len];
        while (true)
        {
            RandomNumberGenerator.Fill(buf);
            if (bits % 8 != 0) buf[^1] &= (byte)((1 << (bits % 8)) - 1); // little-endian: last byte is the top
            var v = new BigInteger(buf, isUnsigned: true, isBigEndian: false);
            if (v < bound) return v;
        }
    }

    /// <summary>Uniform in [1, bound) and coprime to bound.</summary>
    internal static BigInteger RandomUnit(BigInteger bound)
    {
        while (true)
        {
            var r = RandomBelow(bound);
            if (!r.IsZero && BigInteger.GreatestCommonDivisor(r, bound).IsOne) return r;
        }
    }

    static readonly int[] SmallPrimes = Enumerable.Range(3, 2000).Where(IsSmallPrime).ToArray();
    static bool IsSmallPrime(int k) { for (int d = 2; d * d <= k; d++) if (k % d == 0) return false; return k > 1; }

    /// <summary>Probable-prime test: GMP's BPSW + Miller-Rabin, or trial division + 40 random-base Miller-Rabin rounds
    /// (error below 2^-80 for random candidates either way).</summary>
    internal static bool IsProbablePrime(BigInteger n)
    {
        if (n < 2) return false;
        if (UsesGmp) return Gmp.Current.IsProbablePrime(n, 40);
        if (n.IsEven) return n == 2;
        foreach (var p in SmallPrimes)
        {
            if (n == p) return true;
            if ((n % p).IsZero) return false;
        }
        var d = n - 1; int s = 0;
        while (d.IsEven) { d >>= 1; s++; }
        for (int round = 0; round < 40; round++)
        {
            var a = RandomBelow(n - 3) + 2;
            var x = BigInteger.ModPow(a, d, n);
            if (x.IsOne || x == n - 1) continue;
            bool composite = true;
            for (int i = 1; i < s && composite; i++)
            {
                x = BigInteger.ModPow(x, 2, n);
                if (x == n - 1) composite = false;
            }
            if (composite) return false;
        }
        return true;
    }

    /// <summary>A random prime of exactly <paramref name="bits"/> bits with the top two bits set
    /// (so the product of two such primes has exactly 2*bits bits) and p = 3 mod 4.</summary>
    internal static BigInteger RandomPrime(int bits)
    {
        if (bits < 16 || bits % 8 != 0) throw new ArgumentOutOfRangeException(nameof(bits));
        var buf = new byte[bits / 8];
        while (true)
        {
            RandomNumberGenerator.Fill(buf);
            buf[^1] |= 0xC0; // little-endian top byte
            buf[0] |= 3; // p = 3 mod 4 (Blum), for the DJN obfuscator's admissible modulus
            var candidate = new BigInteger(buf, isUnsigned: true, isBigEndian: false);
            if (IsProbablePrime(candidate)) return candidate;
        }
    }

    /// <summary>Fixed-length big-endian unsigned bytes (the wire format for group elements).</summary>
    internal static void WriteFixed(BigInteger v, Span<byte> destination)
    {
        destination.Clear();
        int len = v.GetByteCount(isUnsigned: true);
        if (len > destination.Length) throw new ArgumentException("value does not fit");
        v.TryWriteBytes(destination[(destination.Length - len)..], out _, isUnsigned: true, isBigEndian: true);
    }

    internal static BigInteger ReadFixed(ReadOnlySpan<byte> source) => new(source, isUnsigned: true, isBigEndian: true);
}
