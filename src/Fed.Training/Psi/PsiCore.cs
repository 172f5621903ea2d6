using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;

namespace Fed.Training.Psi;

/// <summary>A 32-byte value used as a hash key (tokens, points).</summary>
internal readonly record struct Token32(ulong A, ulong B, ulong C, ulong D)
{
    public static Token32 Read(ReadOnlySpan<byte> s) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(s), BinaryPrimitives.ReadUInt64LittleEndian(s[8..]),
        BinaryPrimitives.ReadUInt64LittleEndian(s[16..]), BinaryPrimitives.ReadUInt64LittleEndian(s[24..]));

    public bool IsZero => (A | B | C | D) == 0;

    public void Write(Span<byte> s)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(s, A);
        BinaryPrimitives.WriteUInt64LittleEndian(s[8..], B);
        BinaryPrimitives.WriteUInt64LittleEndian(s[16..], C);
        BinaryPrimitives.WriteUInt64LittleEndian(s[24..], D);
    }
}

internal static class PsiUtil
{
    public const int TokenBytes = 32;

    /// <summary>SHA-256(UTF-8 id) for every id, concatenated; on all cores.</summary>
    public static byte[] HashIds(IReadOnlyList<string> ids)
    {
        var output = new byte[ids.Count * 32];
        For(ids.Count, (from, to) =>
        {
            Span<byte> utf8 = stackalloc byte[256];
            for (int i = from; i < to; i++)
            {
                var id = ids[i] ?? throw new ArgumentException("null id");
                int max = Encoding.UTF8.GetMaxByteCount(id.Length);
                var buf = max <= utf8.Length ? utf8 : new byte[max];
                int n = Encoding.UTF8.GetBytes(id, buf);
                SHA256.HashData(buf[..n], output.AsSpan(i * 32, 32));
            }
        });
        return output;
    }

    /// <summary>SHA-256(tag || data), domain-separated so no value on the wire equals a plain SHA-256(id).</summary>
    public static void TaggedHash(ReadOnlySpan<byte> tag, ReadOnlySpan<byte> data, Span<byte> destination)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        h.AppendData(tag);
        h.AppendData(data);
        h.GetHashAndReset(destination);
    }

    /// <summary>Runs body over [0, count) in chunks on all cores.</summary>
    public static void For(int count, Action<int, int> body)
    {
        if (count == 0) return;
        int chunk = Math.Clamp(count / (Environment.ProcessorCount * 8), 1, 4096);
        Parallel.ForEach(Partitioner.Create(0, count, chunk), r => body(r.Item1, r.Item2));
    }

    public static int Count(byte[] block, int elementBytes, string what)
    {
        ArgumentNullException.ThrowIfNull(block);
        if (block.Length % elementBytes != 0) throw new FormatException($"{what}: length {block.Length} is not a multiple of {elementBytes}");
        return block.Length / elementBytes;
    }

    /// <summary>Sorts 32-byte elements bytewise (used to strip row order from host messages).</summary>
    public static byte[] SortedElements(byte[] block)
    {
        int n = block.Length / 32;
        var keys = new Token32[n];
        for (int i = 0; i < n; i++) keys[i] = Token32.Read(block.AsSpan(i * 32));
        Array.Sort(keys, (x, y) => CompareBytes(x, y));
        var sorted = new byte[block.Length];
        for (int i = 0; i < n; i++) keys[i].Write(sorted.AsSpan(i * 32));
        return sorted;
    }

    static int CompareBytes(Token32 x, Token32 y)
    {
        int c = BinaryPrimitives.ReverseEndianness(x.A).CompareTo(BinaryPrimitives.ReverseEndianness(y.A));
        if (c != 0) return c;
        c = BinaryPrimitives.ReverseEndianness(x.B).CompareTo(BinaryPrimitives.ReverseEndianness(y.B));
        if (c != 0) return c;
        c = BinaryPrimitives.ReverseEndianness(x.C).CompareTo(BinaryPrimitives.ReverseEndianness(y.C));
        return c != 0 ? c : BinaryPrimitives.ReverseEndianness(x.D).CompareTo(BinaryPrimitives.ReverseEndianness(y.D));
    }

    public static int CompareHashes(byte[] hashes, int i, int j) => hashes.AsSpan(i * 32, 32).SequenceCompareTo(hashes.AsSpan(j * 32, 32));
}

/// <summary>Guest result: the aligned rows of the guest and the alignment message for every host.</summary>
public sealed class PsiResult
{
    /// <summary>Indexes into the guest's id list, in aligned order (sorted by SHA-256(id)).</summary>
    public required int[] GuestIndexes { get; init; }
    /// <summary>Message to send to each host (by the host name given to the guest).</summary>
    public required IReadOnlyDictionary<string, PsiAlignment> Alignments { get; init; }
}

/// <summary>
/// Guest side shared by both protocols: collects, per host, which guest rows matched and the host's token for them,
/// then intersects across hosts. The aligned order is the bytewise order of SHA-256(id): every party could compute
/// it for its own ids, so it leaks nothing beyond the intersection itself.
/// </summary>
public abstract class PsiGuest
{
    readonly Dictionary<string, Dictionary<int, Token32>> matches = new();

    protected PsiGuest(IReadOnlyList<string> ids)
    {
        Ids = ids;
        Hashes = PsiUtil.HashIds(ids);
    }

    public IReadOnlyList<string> Ids { get; }
    /// <summary>SHA-256(id) concatenated; never leaves the guest.</summary>
    private protected byte[] Hashes { get; }

    /// <summary>Hosts whose response has been accepted.</summary>
    public IReadOnlyCollection<string> CompletedHosts => matches.Keys;

    private protected void SetMatches(string host, Dictionary<int, Token32> guestIndexToHostToken)
    {
        lock (matches) matches[host] = guestIndexToHostToken;
    }

    /// <summary>The intersection over all hosts that answered, and the alignment message for each.</summary>
    public PsiResult Finish()
    {
        if (matches.Count == 0) throw new InvalidOperationException("no host response accepted yet");
        var sets = matches.Values.OrderBy(m => m.Count).ToList();
        var common = sets[0].Keys.Where(i => sets.All(s => s.ContainsKey(i))).ToArray();
        Array.Sort(common, (i, j) => PsiUtil.CompareHashes(Hashes, i, j));
        var alignments = new Dictionary<string, PsiAlignment>();
        foreach (var (host, map) in matches)
        {
            var tokens = new byte[common.Length * 32];
            for (int k = 0; k < common.Length; k++) map[common[k]].Write(tokens.AsSpan(k * 32));
            alignments[host] = new PsiAlignment(tokens);
        }
        return new PsiResult { GuestIndexes = common, Alignments = alignments };
    }
}

/// <summary>Host side shared by both protocols: maps its own 32-byte tokens back to its rows.</summary>
public abstract class PsiHost
{
    Dictionary<Token32, int>? tokenToRow;

    protected PsiHost(IReadOnlyList<string> ids)
    {
        Ids = ids;
        Hashes = PsiUtil.HashIds(ids);
    }

    public IReadOnlyList<string> Ids { get; }
    private protected byte[] Hashes { get; }

    /// <summary>Records token i as the token of row i (tokens concatenated, 32 bytes each).</summary>
    private protected void SetTokens(byte[] tokens)
    {
        var map = new Dictionary<Token32, int>(Ids.Count);
        for (int i = 0; i < Ids.Count; i++) map[Token32.Read(tokens.AsSpan(i * 32))] = i;
        tokenToRow = map;
    }

    /// <summary>Host rows in the aligned order. Throws on a token this host never produced.</summary>
    public int[] ApplyAlignment(PsiAlignment alignment)
    {
        var map = tokenToRow ?? throw new InvalidOperationException("respond to the guest first");
        int n = PsiUtil.Count(alignment.Tokens, 32, "alignment");
        var rows = new int[n];
        for (int k = 0; k < n; k++)
            rows[k] = map.TryGetValue(Token32.Read(alignment.Tokens.AsSpan(k * 32)), out var row)
                ? row : throw new FormatException("alignment contains a token this host did not produce");
        return rows;
    }
}
