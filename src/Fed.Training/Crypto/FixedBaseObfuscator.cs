using System.Numerics;
using System.Security.Cryptography;

namespace Fed.Training.Crypto;

/// <summary>
/// Public-key obfuscators in the Damgard-Jurik-Nielsen style: h_s^alpha mod n^2 with a fixed base
/// h_s = h^n mod n^2, h = -x^2 mod n for a uniform secret x in Z*_n chosen by this encryptor, and alpha uniform
/// in [0, 2^(bits(n) + 128)). h_s^alpha = (h^alpha)^n is an n-th residue, so (1 + m n) h_s^alpha decrypts to m
/// exactly like a textbook ciphertext.
///
/// Security argument (stated as an assumption, not a new proof): ord(h) &lt; n &lt; 2^bits(n), so alpha mod ord(h)
/// is within 2^-128 of uniform and h_s^alpha is statistically a uniform n-th residue of the subgroup &lt;h&gt;
/// of Z*_n instead of all of Z*_n. DJN ("A generalization of Paillier's public-key system...", the variant with
/// h = -x^2 and h_s = h^(n^s)) base semantic security of this variant on DCR when &lt;h&gt; is (a large subgroup
/// of) the Jacobi-symbol-1 subgroup; with Fed's random (non-safe) primes &lt;h&gt; may have a small index there,
/// and we rely on the DJN-style assumption that n-th residues of uniform elements of &lt;h&gt; are
/// indistinguishable from n-th residues of uniform elements of Z*_n. We do not use DJN's short-exponent variant
/// (alpha of bits(n)/2 bits), which needs a further assumption. h_s is never sent: it stays with the encryptor,
/// which cannot help an adversary (one that knew h_s is the case DJN cover).
/// The table lookups depend on alpha, so like mpz_powm (and FATE's gmpy2) this is not constant time.
///
/// Speed: a window-8 fixed-base table T[i][j] = h_s^(j 256^i) (built once per key: bits/8 x 255 products, about
/// 9 MB at 1024-bit n, 35 MB at 2048) makes each obfuscator about bits(n)/8 + 16 multiplications mod n^2 instead of
/// a bits(n)-bit modpow (about 1.2 bits(n) multiplications). The digits of alpha are its random bytes.
/// Thread-safe (the table is read-only after construction).
/// </summary>
internal sealed unsafe class FixedBaseObfuscator : IDisposable
{
    readonly Gmp.Vector table, modulus;
    readonly int digits;
    readonly long workBits;

    public FixedBaseObfuscator(PaillierPublicKey key)
    {
        var n = key.N; var nsq = key.NSquared;
        var x = BigMath.RandomUnit(n);
        var h = n - BigMath.ModMul(x, x, n);
        var hs = BigMath.ModPow(h, n, nsq);
        digits = (key.Bits + 128 + 7) / 8;
        var bits = nsq.GetBitLength() + 64;
        workBits = 2 * bits;
        modulus = Gmp.Vector.From([nsq], bits);
        table = new Gmp.Vector(digits * 255, bits);
        using var tmp = new Gmp.Vector(1, 2 * bits);
        void* m = modulus[0], t = tmp[0];
        table.Set(0, hs);
        for (var i = 0; i < digits; i++)
        {
            if (i > 0) Gmp.MulMod(table[i * 255], table[(i - 1) * 255 + 254], table[(i - 1) * 255], m, t); // h_s^(256^i)
            for (var j = 1; j < 255; j++) Gmp.MulMod(table[i * 255 + j], table[i * 255 + j - 1], table[i * 255], m, t);
        }
        GC.KeepAlive(tmp);
    }

    /// <summary>A fresh h_s^alpha mod n^2.</summary>
    public BigInteger Next()
    {
        Span<byte> alpha = stackalloc byte[digits];
        RandomNumberGenerator.Fill(alpha);
        using var work = new Gmp.Vector(2, workBits);
        void* acc = work[0], tmp = work[1], m = modulus[0];
        var have = false;
        for (var i = 0; i < digits; i++)
        {
            if (alpha[i] == 0) continue;
            var entry = table[i * 255 + alpha[i] - 1];
            if (have) Gmp.MulMod(acc, acc, entry, m, tmp);
            else { Gmp.Copy(acc, entry); have = true; }
        }
        var r = have ? work.Get(0) : BigInteger.One; // alpha = 0 has probability 2^-(8 digits)
        GC.KeepAlive(table); GC.KeepAlive(modulus);
        return r;
    }

    public void Dispose() { table.Dispose(); modulus.Dispose(); }
}
