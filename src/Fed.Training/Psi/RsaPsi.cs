using System.Numerics;
using System.Security.Cryptography;
using System.Text;
using Fed.Training.Crypto;

namespace Fed.Training.Psi;

/// <summary>
/// RSA blind-signature PSI (semi-honest; the scheme FATE's "RSA intersection" uses). The host signs
/// FDH(id) with its RSA key; the guest obtains signatures on its own ids blindly (FDH(id) * r^e, so the host
/// sees uniform values) and compares SHA-256(tag || signature) with the host's tokens for its own ids.
/// The guest cannot compute tokens without the host's key, and learns only which of its ids the host also has.
/// </summary>
public static class RsaPsi
{
    static readonly byte[] FdhTag = Encoding.ASCII.GetBytes("fed.psi.rsa.fdh.v1");
    static readonly byte[] TokenTag = Encoding.ASCII.GetBytes("fed.psi.rsa.token.v1");

    /// <summary>Full-domain hash of SHA-256(id) into Z_n: MGF1-SHA-256 to |n| + 128 bits, reduced mod n (bias &lt; 2^-128).</summary>
    internal static BigInteger Fdh(ReadOnlySpan<byte> idHash, BigInteger n, int modulusBytes)
    {
        int len = modulusBytes + 16;
        Span<byte> output = stackalloc byte[(len + 31) / 32 * 32];
        Span<byte> seed = stackalloc byte[FdhTag.Length + 32 + 4];
        FdhTag.CopyTo(seed);
        idHash.CopyTo(seed[FdhTag.Length..]);
        for (int counter = 0; counter * 32 < len; counter++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(seed[^4..], counter);
            SHA256.HashData(seed, output.Slice(counter * 32, 32));
        }
        return new BigInteger(output[..len], isUnsigned: true, isBigEndian: true) % n;
    }

    internal static void Token(BigInteger signature, int modulusBytes, Span<byte> destination)
    {
        Span<byte> bytes = stackalloc byte[modulusBytes];
        BigMath.WriteFixed(signature, bytes);
        PsiUtil.TaggedHash(TokenTag, bytes, destination);
    }
}

/// <summary>RSA PSI, host role (signer; one object can serve several guests).</summary>
public sealed class RsaPsiHost : PsiHost
{
    readonly BigInteger n, d, p, q, dp, dq, qInv;
    readonly int k;
    byte[]? sortedTokens;

    /// <param name="keyBits">RSA modulus size; 2048 by default (keys from the platform's OpenSSL).</param>
    public RsaPsiHost(IReadOnlyList<string> ids, int keyBits = 2048) : base(ids)
    {
        using var rsa = RSA.Create(keyBits);
        var prm = rsa.ExportParameters(includePrivateParameters: true);
        static BigInteger B(byte[]? x) => new(x, isUnsigned: true, isBigEndian: true);
        n = B(prm.Modulus); d = B(prm.D); p = B(prm.P); q = B(prm.Q); dp = B(prm.DP); dq = B(prm.DQ); qInv = B(prm.InverseQ);
        k = prm.Modulus!.Length;
        PublicKey = new RsaPsiPublicKey(prm.Modulus, prm.Exponent!);
    }

    /// <summary>Step 1 (host -> guest).</summary>
    public RsaPsiPublicKey PublicKey { get; }

    /// <summary>Step 3 (host -> guest): signs the blinded values and sends the host's tokens, sorted.</summary>
    public RsaPsiResponse Respond(RsaPsiRequest request)
    {
        int count = PsiUtil.Count(request.Blinded, k, "blinded values");
        if (sortedTokens == null)
        {
            var tokens = new byte[Ids.Count * 32];
            PsiUtil.For(Ids.Count, (from, to) =>
            {
                for (int i = from; i < to; i++)
                    RsaPsi.Token(Sign(RsaPsi.Fdh(Hashes.AsSpan(i * 32, 32), n, k)), k, tokens.AsSpan(i * 32, 32));
            });
            SetTokens(tokens);
            sortedTokens = PsiUtil.SortedElements(tokens);
        }
        var signatures = new byte[request.Blinded.Length];
        PsiUtil.For(count, (from, to) =>
        {
            for (int i = from; i < to; i++)
            {
                var x = BigMath.ReadFixed(request.Blinded.AsSpan(i * k, k));
                if (x >= n) throw new FormatException("blinded value out of range");
                BigMath.WriteFixed(Sign(x), signatures.AsSpan(i * k, k));
            }
        });
        return new RsaPsiResponse(signatures, sortedTokens);
    }

    /// <summary>x^d mod n by CRT (Garner), constant-time powm on the secret exponents.</summary>
    BigInteger Sign(BigInteger x)
    {
        var sp = BigMath.ModPow(x % p, dp, p, secret: true);
        var sq = BigMath.ModPow(x % q, dq, q, secret: true);
        return sq + BigMath.ModMul(sp - sq, qInv, p) * q;
    }
}

/// <summary>RSA PSI, guest role: one CreateRequest/AcceptResponse pair per host, then Finish.</summary>
public sealed class RsaPsiGuest(IReadOnlyList<string> ids) : PsiGuest(ids)
{
    sealed record Session(BigInteger N, int K, BigInteger[] Unblinders);
    readonly Dictionary<string, Session> sessions = new();

    /// <summary>Step 2 (guest -> host): FDH(id) * r^e mod n with fresh r per id and host.</summary>
    public RsaPsiRequest CreateRequest(string host, RsaPsiPublicKey key)
    {
        var n = new BigInteger(key.Modulus, isUnsigned: true, isBigEndian: true);
        var e = new BigInteger(key.Exponent, isUnsigned: true, isBigEndian: true);
        if (n.GetBitLength() < 2048 || n.IsEven) throw new ArgumentException("host RSA modulus must be odd and >= 2048 bits");
        if (e < 3 || e.IsEven) throw new ArgumentException("bad RSA exponent");
        int k = key.Modulus.Length;
        var unblinders = new BigInteger[Ids.Count];
        var blinded = new byte[Ids.Count * k];
        PsiUtil.For(Ids.Count, (from, to) =>
        {
            for (int i = from; i < to; i++)
            {
                var r = BigMath.RandomUnit(n);
                unblinders[i] = BigMath.ModInverse(r, n);
                var x = BigMath.ModMul(RsaPsi.Fdh(Hashes.AsSpan(i * 32, 32), n, k), BigMath.ModPow(r, e, n), n);
                BigMath.WriteFixed(x, blinded.AsSpan(i * k, k));
            }
        });
        lock (sessions) sessions[host] = new Session(n, k, unblinders);
        return new RsaPsiRequest(blinded);
    }

    /// <summary>Step 4 (host -> guest): unblinds, hashes, and matches against the host's tokens.</summary>
    public void AcceptResponse(string host, RsaPsiResponse response)
    {
        Session s;
        lock (sessions) s = sessions.TryGetValue(host, out var x) ? x : throw new InvalidOperationException($"no request for host {host}");
        if (PsiUtil.Count(response.Signatures, s.K, "signatures") != Ids.Count) throw new FormatException("response does not answer every request");
        int hostCount = PsiUtil.Count(response.HostTokens, 32, "host tokens");
        var hostTokens = new HashSet<Token32>(hostCount);
        for (int j = 0; j < hostCount; j++) hostTokens.Add(Token32.Read(response.HostTokens.AsSpan(j * 32)));
        var mine = new byte[Ids.Count * 32];
        PsiUtil.For(Ids.Count, (from, to) =>
        {
            for (int i = from; i < to; i++)
            {
                var signature = BigMath.ModMul(BigMath.ReadFixed(response.Signatures.AsSpan(i * s.K, s.K)), s.Unblinders[i], s.N);
                RsaPsi.Token(signature, s.K, mine.AsSpan(i * 32, 32));
            }
        });
        var matched = new Dictionary<int, Token32>();
        for (int i = 0; i < Ids.Count; i++)
        {
            var t = Token32.Read(mine.AsSpan(i * 32));
            if (hostTokens.Contains(t)) matched[i] = t;
        }
        lock (sessions) sessions.Remove(host);
        SetMatches(host, matched);
    }
}
