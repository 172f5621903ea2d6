namespace Fed.Training.Psi;

/// <summary>
/// In-process driver: passes the protocol messages between role objects exactly as a transport would
/// (messages are the only thing that crosses). Used by tests and benchmarks.
/// </summary>
public static class PsiDriver
{
    /// <summary>Aligned rows: GuestRows[k] and HostRows[h][k] are the same id, for every position k.</summary>
    public sealed record Alignment(int[] GuestRows, int[][] HostRows);

    public static Alignment RunEcdh(IReadOnlyList<string> guestIds, IReadOnlyList<IReadOnlyList<string>> hostIds)
    {
        var guest = new EcdhPsiGuest(guestIds);
        var hosts = hostIds.Select(ids => new EcdhPsiHost(ids)).ToArray();
        for (int h = 0; h < hosts.Length; h++)
            guest.AcceptResponse(HostName(h), hosts[h].Respond(guest.CreateRequest(HostName(h))));
        return Finish(guest, hosts);
    }

    public static Alignment RunRsa(IReadOnlyList<string> guestIds, IReadOnlyList<IReadOnlyList<string>> hostIds, int keyBits = 2048)
    {
        var guest = new RsaPsiGuest(guestIds);
        var hosts = hostIds.Select(ids => new RsaPsiHost(ids, keyBits)).ToArray();
        for (int h = 0; h < hosts.Length; h++)
            guest.AcceptResponse(HostName(h), hosts[h].Respond(guest.CreateRequest(HostName(h), hosts[h].PublicKey)));
        return Finish(guest, hosts);
    }

    static Alignment Finish(PsiGuest guest, PsiHost[] hosts)
    {
        var result = guest.Finish();
        var hostRows = hosts.Select((host, h) => host.ApplyAlignment(result.Alignments[HostName(h)])).ToArray();
        return new Alignment(result.GuestIndexes, hostRows);
    }

    static string HostName(int h) => "host" + h;
}
