using System.Numerics;

namespace Fed.Training.Crypto;

/// <summary>A Paillier ciphertext: an element of Z*_{n^2}. Opaque outside this namespace; see ToBytes/Pack for the wire.</summary>
public readonly record struct PaillierCiphertext(BigInteger Value);

/// <summary>Paillier key generation (g = n + 1).</summary>
public static class Paillier
{
    /// <summary>Generates a key pair with an n of exactly <paramref name="bits"/> bits (1024 for tests, 2048 for production);
    /// p = q = 3 mod 4 and gcd(p-1, q-1) = 2 (an admissible modulus for the DJN obfuscator).</summary>
    public static PaillierPrivateKey GenerateKeyPair(int bits = 2048)
    {
        if (bits is < 512 or > 8192 || bits % 16 != 0) throw new ArgumentOutOfRangeException(nameof(bits));
        while (true)
        {
            var p = BigMath.RandomPrime(bits / 2);
            var q = BigMath.RandomPrime(bits / 2);
            // Distinct, far apart (defeats Fermat factoring), and gcd(n, phi) = 1 as Paillier requires.
            if (BigInteger.Abs(p - q).GetBitLength() < bits / 2 - 100) continue;
            var n = p * q;
            if (n.GetBitLength() != bits || !BigInteger.GreatestCommonDivisor(n, (p - 1) * (q - 1)).IsOne) continue;
            // Admissible for DJN (with p = q = 3 mod 4): the Jacobi-symbol-1 subgroup of Z*_n is cyclic, see FixedBaseObfuscator.
            if (BigInteger.GreatestCommonDivisor(p - 1, q - 1) != 2) continue;
            return new PaillierPrivateKey(p, q);
        }
    }
}

/// <summary>
/// Public key: n and n^2. Encryption is c = (1 + m n) r^n mod n^2 (g = n + 1 makes g^m a multiplication).
/// Plaintexts live in Z_n; a negative m is represented as n - |m| (see <see cref="FixedPointCodec"/> for doubles).
/// Thread-safe and immutable.
/// </summary>
public sealed class PaillierPublicKey : IEquatable<PaillierPublicKey>
{
    public BigInteger N { get; }
    public BigInteger NSquared { get; }
    /// <summary>Bit length of n.</summary>
    public int Bits { get; }
    /// <summary>Bytes of one serialized ciphertext (fixed length, big-endian).</summary>
    public int CiphertextBytes { get; }

    public PaillierPublicKey(BigInteger n)
    {
        if (n < 3 || n.IsEven) throw new ArgumentException("n must be an odd modulus", nameof(n));
        N = n;
        NSquared = n * n;
        Bits = (int)n.GetBitLength();
        CiphertextBytes = (int)((NSquared.GetBitLength() + 7) / 8);
    }

    /// <summary>Wire form: big-endian unsigned n.</summary>
    public byte[] ToBytes() => N.ToByteArray(isUnsigned: true, isBigEndian: true);
    public static PaillierPublicKey FromBytes(ReadOnlySpan<byte> bytes) => new(BigMath.ReadFixed(bytes));
    public string ToBase64() => Convert.ToBase64String(ToBytes());
    public static PaillierPublicKey FromBase64(string base64) => FromBytes(Convert.FromBase64String(base64));

    /// <summary>Encrypts an integer plaintext, -n &lt; m &lt; n (negatives become n - |m|).</summary>
    public PaillierCiphertext Encrypt(BigInteger m) => Encrypt(m, NewObfuscator());

    /// <summary>Encrypts with a given obfuscator r^n mod n^2 (from a pool or from the private key's CRT path).</summary>
    internal PaillierCiphertext Encrypt(BigInteger m, BigInteger obfuscator) =>
        new(BigMath.ModMul(1 + ToPlain(m) * N, obfuscator, NSquared));

    /// <summary>A fresh r^n mod n^2 for uniform r in Z*_n (textbook): the expensive part of encryption.</summary>
    public BigInteger NewObfuscator() => BigMath.ModPow(BigMath.RandomUnit(N), N, NSquared);

    FixedBaseObfuscator? fixedBase;

    /// <summary>True when <see cref="NewFastObfuscator"/> uses the fixed-base (DJN) table (GMP's mpn layer is in use).</summary>
    public bool HasFastObfuscator => Montgomery.Available;

    /// <summary>
    /// A fresh n-th residue h_s^alpha mod n^2 from the fixed-base table (<see cref="FixedBaseObfuscator"/>: security
    /// assumption and speed there), built on first use; the textbook <see cref="NewObfuscator"/> without GMP.
    /// </summary>
    public BigInteger NewFastObfuscator()
    {
        if (!Montgomery.Available) return NewObfuscator();
        if (fixedBase == null) Interlocked.CompareExchange(ref fixedBase, new FixedBaseObfuscator(this), null);
        return fixedBase.Next();
    }

    /// <summary>E(a) * E(b) = E(a + b mod n).</summary>
    public PaillierCiphertext Add(PaillierCiphertext a, PaillierCiphertext b) => new(BigMath.ModMul(a.Value, b.Value, NSquared));

    /// <summary>E(a) * (1 + m n) = E(a + m mod n). Deterministic: does not re-randomize.</summary>
    public PaillierCiphertext AddPlain(PaillierCiphertext a, BigInteger m) => new(BigMath.ModMul(a.Value, 1 + ToPlain(m) * N, NSquared));

    /// <summary>
    /// E(a)^k = E(k a mod n). A negative k means n - |k| (i.e. E(-|k| a)); computed as (E(a)^-1)^|k| so the
    /// exponent stays short. Deterministic: re-randomize before revealing a result derived from secret scalars.
    /// </summary>
    public PaillierCiphertext Multiply(PaillierCiphertext a, BigInteger k)
    {
        k = BigInteger.Remainder(k, N); // keep sign, |k| < n
        if (k.Sign < 0 && -k > N / 2) k += N; // choose the shorter of k and k - n
        else if (k.Sign > 0 && k > N / 2) k -= N;
        return new(BigMath.ModPow(a.Value, k, NSquared));
    }

    /// <summary>Same plaintext, fresh randomness: c * r^n.</summary>
    public PaillierCiphertext Rerandomize(PaillierCiphertext a) => new(BigMath.ModMul(a.Value, NewFastObfuscator(), NSquared));

    /// <summary>Fixed-length big-endian bytes of one ciphertext.</summary>
    public byte[] ToBytes(PaillierCiphertext c)
    {
        var bytes = new byte[CiphertextBytes];
        BigMath.WriteFixed(c.Value, bytes);
        return bytes;
    }

    /// <summary>Concatenates ciphertexts (fixed length each) for the wire.</summary>
    public byte[] Pack(ReadOnlySpan<PaillierCiphertext> ciphertexts)
    {
        var bytes = new byte[ciphertexts.Length * CiphertextBytes];
        for (int i = 0; i < ciphertexts.Length; i++)
            BigMath.WriteFixed(ciphertexts[i].Value, bytes.AsSpan(i * CiphertextBytes, CiphertextBytes));
        return bytes;
    }

    /// <summary>Inverse of <see cref="Pack"/>; rejects values outside [1, n^2).</summary>
    public PaillierCiphertext[] Unpack(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length % CiphertextBytes != 0) throw new FormatException("ciphertext block has a partial element");
        var result = new PaillierCiphertext[bytes.Length / CiphertextBytes];
        for (int i = 0; i < result.Length; i++)
        {
            var v = BigMath.ReadFixed(bytes.Slice(i * CiphertextBytes, CiphertextBytes));
            if (v.IsZero || v >= NSquared) throw new FormatException("ciphertext out of range");
            result[i] = new PaillierCiphertext(v);
        }
        return result;
    }

    internal BigInteger ToPlain(BigInteger m)
    {
        if (BigInteger.Abs(m) >= N) throw new ArgumentOutOfRangeException(nameof(m), "plaintext must satisfy |m| < n");
        return m.Sign < 0 ? m + N : m;
    }

    public bool Equals(PaillierPublicKey? other) => other is not null && N == other.N;
    public override bool Equals(object? obj) => Equals(obj as PaillierPublicKey);
    public override int GetHashCode() => N.GetHashCode();
}

/// <summary>
/// Private key: p, q, lambda = lcm(p-1, q-1), mu = lambda^-1 mod n. Decryption uses CRT (mod p^2 and q^2,
/// about 3-4x faster than the textbook L(c^lambda mod n^2) mu). The holder also encrypts through CRT,
/// see <see cref="NewObfuscator"/>.
/// </summary>
public sealed class PaillierPrivateKey
{
    public PaillierPublicKey PublicKey { get; }
    public BigInteger P { get; }
    public BigInteger Q { get; }
    public BigInteger Lambda { get; }
    public BigInteger Mu { get; }

    readonly BigInteger pSquared, qSquared, hp, hq, qInvP, qSquaredInvPSquared;

    public PaillierPrivateKey(BigInteger p, BigInteger q)
    {
        if (p == q) throw new ArgumentException("p and q must differ");
        if (p < q) (p, q) = (q, p); // canonical order
        P = p; Q = q;
        PublicKey = new PaillierPublicKey(p * q);
        var n = PublicKey.N;
        Lambda = (p - 1) * (q - 1) / BigInteger.GreatestCommonDivisor(p - 1, q - 1);
        Mu = BigMath.ModInverse(Lambda, n);
        pSquared = p * p; qSquared = q * q;
        // h_p = L_p(g^(p-1) mod p^2)^-1 mod p (Paillier's CRT decryption, section 7).
        hp = BigMath.ModInverse(L(BigMath.ModPow(n + 1, p - 1, pSquared), p), p);
        hq = BigMath.ModInverse(L(BigMath.ModPow(n + 1, q - 1, qSquared), q), q);
        qInvP = BigMath.ModInverse(q, p);
        qSquaredInvPSquared = BigMath.ModInverse(qSquared, pSquared);
    }

    /// <summary>Decrypts to the canonical plaintext in [0, n).</summary>
    public BigInteger Decrypt(PaillierCiphertext c)
    {
        var v = c.Value;
        if (v.Sign <= 0 || v >= PublicKey.NSquared) throw new ArgumentOutOfRangeException(nameof(c));
        // Exponents p-1, q-1 are secret and ciphertexts come from other parties: constant-time powm.
        var mp = BigMath.ModMul(L(BigMath.ModPow(v % pSquared, P - 1, pSquared, secret: true), P), hp, P);
        var mq = BigMath.ModMul(L(BigMath.ModPow(v % qSquared, Q - 1, qSquared, secret: true), Q), hq, Q);
        return mq + BigMath.ModMul(mp - mq, qInvP, P) * Q;
    }

    /// <summary>Decrypts to the signed representative in (-n/2, n/2].</summary>
    public BigInteger DecryptSigned(PaillierCiphertext c)
    {
        var m = Decrypt(c);
        return m > PublicKey.N / 2 ? m - PublicKey.N : m;
    }

    /// <summary>Encrypts through the CRT obfuscator (same ciphertext distribution as the public key, 3-4x faster).</summary>
    public PaillierCiphertext Encrypt(BigInteger m) => PublicKey.Encrypt(m, NewObfuscator());

    /// <summary>
    /// A uniform n-th residue mod n^2, built by CRT from y^p mod p^2 and z^q mod q^2 with y, z uniform in Z*_p, Z*_q.
    /// Why it equals the distribution of r^n: mod p^2, r^n depends only on r mod p and equals w^(q mod p-1) where
    /// w = (r mod p)^p is the Teichmueller lift; gcd(q, p-1) = 1 (from gcd(n, phi) = 1) makes that a bijection on
    /// the order-(p-1) subgroup, which is exactly the image of y -> y^p. Half-size exponent on a half-size modulus,
    /// twice: about 1/4 to 1/3 of the cost of r^n mod n^2.
    /// </summary>
    public BigInteger NewObfuscator()
    {
        var xp = BigMath.ModPow(BigMath.RandomUnit(P), P, pSquared, secret: true);
        var xq = BigMath.ModPow(BigMath.RandomUnit(Q), Q, qSquared, secret: true);
        return xq + BigMath.ModMul(xp - xq, qSquaredInvPSquared, pSquared) * qSquared;
    }

    CrtFixedBaseObfuscator? fixedBase;

    /// <summary>The public fixed-base (DJN) obfuscator's distribution through CRT tables (<see cref="CrtFixedBaseObfuscator"/>,
    /// about 4x cheaper than the public table); <see cref="NewObfuscator"/> without GMP.</summary>
    public BigInteger NewFastObfuscator()
    {
        if (!Montgomery.Available) return NewObfuscator();
        if (fixedBase == null) Interlocked.CompareExchange(ref fixedBase, new CrtFixedBaseObfuscator(this), null);
        return fixedBase.Next();
    }

    static BigInteger L(BigInteger x, BigInteger d) => (x - 1) / d;
}
