using System.Security.Cryptography;
using System.Text;
using Fed.Training.Psi;

namespace Fed.Training.Tests;

public class PsiTests
{
    /// <summary>Three parties, each holding a random ~70% of a shared universe, in random order.</summary>
    static List<string>[] Parties(int universe, int parties, int seed)
    {
        var rng = new Random(seed);
        var ids = Enumerable.Range(0, universe).Select(i => $"customer-{i:D6}-{rng.Next():X8}").ToArray();
        return Enumerable.Range(0, parties)
            .Select(_ => ids.Where(_ => rng.NextDouble() < 0.7).OrderBy(_ => rng.Next()).ToList())
            .ToArray();
    }

    static void AssertAligned(List<string>[] parties, PsiDriver.Alignment a)
    {
        var expected = parties.Skip(1).Aggregate(new HashSet<string>(parties[0]), (s, p) => { s.IntersectWith(p); return s; });
        Assert.Equal(expected.Count, a.GuestRows.Length);
        Assert.True(expected.SetEquals(a.GuestRows.Select(i => parties[0][i])));
        for (int h = 0; h < a.HostRows.Length; h++)
            Assert.Equal(a.GuestRows.Select(i => parties[0][i]), a.HostRows[h].Select(i => parties[h + 1][i]));
        // Aligned order = bytewise order of SHA-256(id), which every party can reproduce.
        var hashes = a.GuestRows.Select(i => SHA256.HashData(Encoding.UTF8.GetBytes(parties[0][i]))).ToList();
        for (int k = 1; k < hashes.Count; k++) Assert.True(hashes[k - 1].AsSpan().SequenceCompareTo(hashes[k]) < 0);
    }

    [Fact]
    public void EcdhThreePartiesOverlappingRandomSets()
    {
        var parties = Parties(3000, 3, seed: 7);
        AssertAligned(parties, PsiDriver.RunEcdh(parties[0], [parties[1], parties[2]]));
    }

    [Fact]
    public void EcdhOnBouncyCastleFallback()
    {
        var parties = Parties(500, 3, seed: 8);
        using var _ = Curve25519.ForceManaged();
        AssertAligned(parties, PsiDriver.RunEcdh(parties[0], [parties[1], parties[2]]));
    }

    [Fact]
    public void RsaThreePartiesOverlappingRandomSets()
    {
        var parties = Parties(600, 3, seed: 9);
        AssertAligned(parties, PsiDriver.RunRsa(parties[0], [parties[1], parties[2]]));
    }

    [Fact]
    public void EmptyIntersectionAndUnknownTokens()
    {
        var a = PsiDriver.RunEcdh(["a-000000001", "b-000000002"], [["c-000000003"], ["a-000000001"]]);
        Assert.Empty(a.GuestRows);
        var host = new EcdhPsiHost(["x-00000001"]);
        var guest = new EcdhPsiGuest(["x-00000001"]);
        guest.AcceptResponse("h", host.Respond(guest.CreateRequest("h")));
        Assert.Throws<FormatException>(() => host.ApplyAlignment(new PsiAlignment(new byte[32])));
        Assert.Equal([0], host.ApplyAlignment(guest.Finish().Alignments["h"]));
    }

    // ---- privacy: no message carries a raw id or SHA-256(id) ----

    static List<byte[]> EcdhMessages(List<string>[] p)
    {
        var sent = new List<byte[]>();
        var guest = new EcdhPsiGuest(p[0]);
        for (int h = 1; h < p.Length; h++)
        {
            var host = new EcdhPsiHost(p[h]);
            var request = guest.CreateRequest("h" + h);
            var response = host.Respond(request);
            sent.AddRange([request.GuestPoints, response.DoubledGuestPoints, response.HostPoints]);
            guest.AcceptResponse("h" + h, response);
        }
        sent.AddRange(guest.Finish().Alignments.Values.Select(a => a.Tokens));
        return sent;
    }

    static List<byte[]> RsaMessages(List<string>[] p)
    {
        var sent = new List<byte[]>();
        var guest = new RsaPsiGuest(p[0]);
        for (int h = 1; h < p.Length; h++)
        {
            var host = new RsaPsiHost(p[h]);
            var request = guest.CreateRequest("h" + h, host.PublicKey);
            var response = host.Respond(request);
            sent.AddRange([host.PublicKey.Modulus, host.PublicKey.Exponent, request.Blinded, response.Signatures, response.HostTokens]);
            guest.AcceptResponse("h" + h, response);
        }
        sent.AddRange(guest.Finish().Alignments.Values.Select(a => a.Tokens));
        return sent;
    }

    [Fact]
    public void EcdhMessagesContainNoIdOrPlainHash() => AssertNoLeak(Parties(400, 3, seed: 10), EcdhMessages);

    [Fact]
    public void RsaMessagesContainNoIdOrPlainHash() => AssertNoLeak(Parties(300, 3, seed: 11), RsaMessages);

    static void AssertNoLeak(List<string>[] parties, Func<List<string>[], List<byte[]>> run)
    {
        // Needles: UTF-8 of every id of every party, and its SHA-256. Scan every 8-byte window of every message.
        var needles = parties.SelectMany(p => p).Distinct()
            .SelectMany(id => new[] { Encoding.UTF8.GetBytes(id), SHA256.HashData(Encoding.UTF8.GetBytes(id)) })
            .ToList();
        var prefixes = needles.GroupBy(n => BitConverter.ToUInt64(n, 0)).ToDictionary(g => g.Key, g => g.ToList());
        var messages = run(parties);
        Assert.NotEmpty(messages);
        foreach (var m in messages)
            for (int i = 0; i + 8 <= m.Length; i++)
                if (prefixes.TryGetValue(BitConverter.ToUInt64(m, i), out var candidates))
                    foreach (var needle in candidates)
                        Assert.False(m.AsSpan(i).StartsWith(needle), "a message contains a raw id or SHA-256(id)");
        // Sanity of the scanner itself: it finds a planted hash.
        var planted = new byte[100];
        needles[1].CopyTo(planted, 37);
        Assert.Contains(Enumerable.Range(0, 93), i => prefixes.ContainsKey(BitConverter.ToUInt64(planted, i)) && planted.AsSpan(i).StartsWith(needles[1]));
    }
}
