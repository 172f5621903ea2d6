using System.Numerics;
using System.Security.Cryptography;

namespace Fed.Training.Crypto;

/// <summary>
/// Public-key obfuscators in the Damgard-Jurik-Nielsen style: h_s^alpha mod n^2 with a fixed base
/// h_s = h^n mod n^2, h = -x^2 mod n for a uniform secret x in Z*_n chosen by this encryptor, and alpha uniform
/// in [0, 2^(bits(n) + 128)). h_s^alpha = (h^alpha)^n is an n-th residue, so (1 + m n) h_s^alpha decrypts to m
/// exactly like a textbook ciphertext.
///
/// Security argument (DJN's, with a full-length exponent): Fed's key generation makes n admissible (p = q = 3 mod 4,
/// gcd(p-1, q-1) = 2), so the group J_n of Jacobi symbol 1 ({+-1} x QR_n) is cyclic of order lambda and h = -x^2
/// generates it whenever x^2 generates QR_n (probability close to 1 for random primes; otherwise &lt;h&gt; has a
/// small index in J_n). ord(h) &lt; n &lt; 2^bits(n), so alpha mod ord(h) is within 2^-128 of uniform and h_s^alpha is
/// statistically a uniform n-th residue of an element of J_n. Given a DCR sample z one can map it into that set
/// (the Jacobi symbol of z mod n is computable; multiply by u^n for a known u of symbol -1 when needed), so
/// distinguishing these ciphertexts from textbook ones reduces to DCR, as DJN argue for this variant. Assumption,
/// stated plainly: DCR, plus &lt;h&gt; = J_n (or the small-index case being equally hard). DJN's short-exponent
/// variant (alpha of bits(n)/2 bits, as in ABY or SecretFlow HEU) needs a further assumption and is not used.
/// The encryptor never sends h_s; an adversary that knew it is the case DJN's argument covers. The textbook
/// r^n path stays available (<see cref="PaillierEncryptor.Textbook"/>).
/// The table lookups depend on alpha, so like mpz_powm (and FATE's gmpy2) this is not constant time.
///
/// Speed: a window-8 fixed-base table T[i][j] = h_s^(j 256^i) in Montgomery form (built once per key: bits/8 x 255
/// products, about 9 MB at 1024-bit n, 35 MB at 2048) makes each obfuscator about bits(n)/8 + 16 multiplications
/// mod n^2 instead of a bits(n)-bit modpow (about 1.2 bits(n) multiplications). The digits of alpha are its bytes.
/// Thread-safe (the table is read-only after construction).
/// </summary>
internal sealed class FixedBaseObfuscator : IDisposable
{
    readonly FixedBasePower power;
    readonly int bytes;

    public FixedBaseObfuscator(PaillierPublicKey key)
    {
        var hs = NewBase(key);
        bytes = (key.Bits + 128 + 7) / 8;
        power = new FixedBasePower(key.NSquared, hs, bytes);
    }

    /// <summary>h_s = (-x^2)^n mod n^2 for a uniform secret x in Z*_n.</summary>
    internal static BigInteger NewBase(PaillierPublicKey key)
    {
        var n = key.N;
        var x = BigMath.RandomUnit(n);
        return BigMath.ModPow(n - BigMath.ModMul(x, x, n), n, key.NSquared);
    }

    /// <summary>A fresh h_s^alpha mod n^2.</summary>
    public BigInteger Next()
    {
        Span<byte> alpha = stackalloc byte[bytes];
        RandomNumberGenerator.Fill(alpha);
        return power.Pow(alpha);
    }

    public void Dispose() => power.Dispose();
}

/// <summary>
/// The key holder's version of <see cref="FixedBaseObfuscator"/>: the same h_s^alpha (alpha uniform below
/// 2^(bits(n) + 128)), computed by CRT as h_s^(alpha mod p-1) mod p^2 and h_s^(alpha mod q-1) mod q^2 (the n-th
/// residues mod p^2 have order dividing p - 1), each from a window-8 table over a half-size modulus with a half-size
/// exponent: about a quarter of the public table's cost, and exactly its output distribution (same security argument).
/// </summary>
internal sealed class CrtFixedBaseObfuscator : IDisposable
{
    readonly FixedBasePower atP, atQ;
    readonly BigInteger p1, q1, pSquared, qSquared, qSquaredInvPSquared;
    readonly int alphaBytes;

    public CrtFixedBaseObfuscator(PaillierPrivateKey key)
    {
        var hs = FixedBaseObfuscator.NewBase(key.PublicKey);
        pSquared = key.P * key.P; qSquared = key.Q * key.Q;
        p1 = key.P - 1; q1 = key.Q - 1;
        qSquaredInvPSquared = BigMath.ModInverse(qSquared, pSquared);
        alphaBytes = (key.PublicKey.Bits + 128 + 7) / 8;
        Base = hs;
        atP = new FixedBasePower(pSquared, hs % pSquared, (int)((p1.GetBitLength() + 7) / 8));
        atQ = new FixedBasePower(qSquared, hs % qSquared, (int)((q1.GetBitLength() + 7) / 8));
    }

    /// <summary>h_s (for tests).</summary>
    internal BigInteger Base { get; }

    public BigInteger Next()
    {
        Span<byte> bytes = stackalloc byte[alphaBytes];
        RandomNumberGenerator.Fill(bytes);
        return Pow(new BigInteger(bytes, isUnsigned: true));
    }

    /// <summary>h_s^alpha mod n^2 by CRT.</summary>
    internal BigInteger Pow(BigInteger alpha)
    {
        var xp = atP.Pow(BigInteger.Remainder(alpha, p1).ToByteArray(isUnsigned: true));
        var xq = atQ.Pow(BigInteger.Remainder(alpha, q1).ToByteArray(isUnsigned: true));
        return xq + BigMath.ModMul(xp - xq, qSquaredInvPSquared, pSquared) * qSquared;
    }

    public void Dispose() { atP.Dispose(); atQ.Dispose(); }
}

/// <summary>base^e mod m for a fixed base and exponents of at most <c>digits</c> bytes: a window-8 table
/// T[i][j] = base^(j 256^i) in Montgomery form (digits x 255 products, built once), then one multiplication per
/// nonzero byte of e. Thread-safe (the table is read-only after construction); not constant time.</summary>
internal sealed unsafe class FixedBasePower : IDisposable
{
    readonly Montgomery mont;
    readonly Montgomery.Vector table; // T[i][j] at i * 255 + j - 1, Montgomery form
    readonly int digits;

    public FixedBasePower(BigInteger modulus, BigInteger @base, int digits)
    {
        this.digits = digits;
        mont = new Montgomery(modulus);
        table = new Montgomery.Vector(digits * 255, mont.Limbs);
        using var s = new Montgomery.Scratch(mont.Limbs);
        mont.Import(table[0], @base, s);
        for (var i = 0; i < digits; i++)
        {
            if (i > 0) mont.Mul(table[i * 255], table[(i - 1) * 255 + 254], table[(i - 1) * 255], s); // base^(256^i)
            for (var j = 1; j < 255; j++) mont.Mul(table[i * 255 + j], table[i * 255 + j - 1], table[i * 255], s);
        }
    }

    /// <summary>base^e mod m, e given by its little-endian bytes (at most <c>digits</c> of them).</summary>
    public BigInteger Pow(ReadOnlySpan<byte> e)
    {
        if (e.Length > digits) throw new ArgumentOutOfRangeException(nameof(e));
        using var s = new Montgomery.Scratch(mont.Limbs);
        using var acc = new Montgomery.Vector(1, mont.Limbs);
        var have = false;
        for (var i = 0; i < e.Length; i++)
        {
            if (e[i] == 0) continue;
            var entry = table[i * 255 + e[i] - 1];
            if (have) mont.Mul(acc[0], acc[0], entry, s);
            else { new Span<ulong>(entry, mont.Limbs).CopyTo(new Span<ulong>(acc[0], mont.Limbs)); have = true; }
        }
        var r = have ? mont.Export(acc[0], s) : BigInteger.One; // e = 0: probability 2^-(8 digits) for random e
        GC.KeepAlive(table);
        return r;
    }

    public void Dispose() { table.Dispose(); mont.Dispose(); }
}
