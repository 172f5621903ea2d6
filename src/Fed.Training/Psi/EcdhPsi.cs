using System.Security.Cryptography;
using System.Text;

namespace Fed.Training.Psi;

/// <summary>
/// Diffie-Hellman PSI over X25519 (semi-honest). With u = H2U(id) a 32-byte hash used as a Montgomery
/// u-coordinate, the guest sends a*u, the host returns b*(a*u) and b*u', the guest computes a*(b*u') and
/// compares. Equal ids give equal a*b*u (x-only scalar multiplication commutes).
///
/// Security assumption (documented choice): H2U is SHA-256(tag || SHA-256(id)) with the top bit cleared, so u is
/// a random-oracle output that lands on Curve25519 or on its quadratic twist (both have a large prime-order
/// subgroup, ~2^252 and ~2^253; X25519's clamping clears the cofactor). Security rests on the (one-more) DDH
/// assumption in those groups with H2U modelled as a random oracle, as in the common "hash to u" practice; it is
/// not the RFC 9380 hash-to-curve map. Fresh random scalars are drawn per host session and never leave the party.
/// </summary>
public static class EcdhPsi
{
    static readonly byte[] H2UTag = Encoding.ASCII.GetBytes("fed.psi.x25519.h2u.v1");

    /// <summary>Hash-to-u of every SHA-256(id) (32 bytes each).</summary>
    internal static byte[] HashToU(byte[] idHashes)
    {
        var output = new byte[idHashes.Length];
        PsiUtil.For(idHashes.Length / 32, (from, to) =>
        {
            for (int i = from; i < to; i++)
            {
                var dst = output.AsSpan(i * 32, 32);
                PsiUtil.TaggedHash(H2UTag, idHashes.AsSpan(i * 32, 32), dst);
                dst[31] &= 0x7F; // RFC 7748 decodeU ignores the top bit; clear it so the encoding is canonical
            }
        });
        return output;
    }

    internal static byte[] NewScalar() => RandomNumberGenerator.GetBytes(32);
}

/// <summary>ECDH PSI, guest role: one <see cref="CreateRequest"/>/<see cref="AcceptResponse"/> pair per host, then Finish.</summary>
public sealed class EcdhPsiGuest(IReadOnlyList<string> ids) : PsiGuest(ids)
{
    readonly Dictionary<string, byte[]> scalars = new();
    byte[]? points;

    /// <summary>Step 1 (guest -> host): the guest's points under a fresh scalar for this host.</summary>
    public EcdhPsiRequest CreateRequest(string host)
    {
        var a = EcdhPsi.NewScalar();
        lock (scalars) scalars[host] = a;
        points ??= EcdhPsi.HashToU(Hashes);
        return new EcdhPsiRequest(Curve25519.ScalarMultAll(a, points));
    }

    /// <summary>Step 3 (host -> guest): computes the matches with this host.</summary>
    public void AcceptResponse(string host, EcdhPsiResponse response)
    {
        byte[] a;
        lock (scalars) a = scalars.TryGetValue(host, out var s) ? s : throw new InvalidOperationException($"no request for host {host}");
        if (PsiUtil.Count(response.DoubledGuestPoints, 32, "doubled guest points") != Ids.Count)
            throw new FormatException("response does not answer every guest point");
        int hostCount = PsiUtil.Count(response.HostPoints, 32, "host points");
        var hostDoubled = Curve25519.ScalarMultAll(a, response.HostPoints);
        var doubledToHostPoint = new Dictionary<Token32, Token32>(hostCount);
        for (int j = 0; j < hostCount; j++)
        {
            var key = Token32.Read(hostDoubled.AsSpan(j * 32));
            if (!key.IsZero) doubledToHostPoint[key] = Token32.Read(response.HostPoints.AsSpan(j * 32));
        }
        var matched = new Dictionary<int, Token32>();
        for (int i = 0; i < Ids.Count; i++)
            if (doubledToHostPoint.TryGetValue(Token32.Read(response.DoubledGuestPoints.AsSpan(i * 32)), out var hostPoint))
                matched[i] = hostPoint;
        SetMatches(host, matched);
    }
}

/// <summary>ECDH PSI, host role (one object per guest session).</summary>
public sealed class EcdhPsiHost(IReadOnlyList<string> ids) : PsiHost(ids)
{
    readonly byte[] b = EcdhPsi.NewScalar();
    byte[]? hostPoints;

    /// <summary>Step 2 (host -> guest): re-raises the guest's points and sends the host's own, sorted.</summary>
    public EcdhPsiResponse Respond(EcdhPsiRequest request)
    {
        PsiUtil.Count(request.GuestPoints, 32, "guest points");
        if (hostPoints == null)
        {
            hostPoints = Curve25519.ScalarMultAll(b, EcdhPsi.HashToU(Hashes));
            SetTokens(hostPoints); // the host point is the token the guest names rows by in the alignment
        }
        return new EcdhPsiResponse(Curve25519.ScalarMultAll(b, request.GuestPoints), PsiUtil.SortedElements(hostPoints));
    }
}
