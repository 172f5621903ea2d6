using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Fed.Core;
using Fed.Training.Psi;

namespace Fed.Training.Horizontal;

/// <summary>
/// Values of a secure sum: fixed point with 32 fraction bits in the ring Z_{2^128}. Sums of fixed-point values are
/// exact and independent of order, and a uniformly random ring element hides a value perfectly (one-time pad).
/// </summary>
public static class Ring
{
    public const int FractionBits = 32;
    /// <summary>|value| bound: 2^(127-32-16) leaves room for 65,536 summands without wrapping.</summary>
    public static readonly double Limit = Math.ScaleB(1, 127 - FractionBits - 16);
    public const int ElementBytes = 16;

    public static UInt128 Encode(double v)
    {
        if (!double.IsFinite(v) || Math.Abs(v) >= Limit)
            throw new FedFailureException($"a value to aggregate is {v}: not finite or beyond the secure-sum range 2^{127 - FractionBits - 16} (diverging training? lower --learning-rate)");
        return (UInt128)(Int128)Math.Round(Math.ScaleB(v, FractionBits));
    }

    public static double Decode(UInt128 u) => Math.ScaleB((double)(Int128)u, -FractionBits);

    public static UInt128[] Encode(double[] v) => v.Select(Encode).ToArray();
    public static double[] Decode(UInt128[] u) => u.Select(Decode).ToArray();

    public static void AddInto(UInt128[] acc, UInt128[] v)
    {
        if (acc.Length != v.Length) throw new FedFailureException($"protocol error: a sum of {acc.Length} values got {v.Length}");
        for (var i = 0; i < acc.Length; i++) acc[i] += v[i]; // wraps mod 2^128
    }

    public static byte[] Pack(UInt128[] v)
    {
        var b = new byte[v.Length * ElementBytes];
        for (var i = 0; i < v.Length; i++) BinaryPrimitives.WriteUInt128LittleEndian(b.AsSpan(i * ElementBytes), v[i]);
        return b;
    }

    public static UInt128[] Unpack(byte[] b, int expected, string context)
    {
        if (b.Length != expected * ElementBytes)
            throw new FedFailureException($"protocol error: {context}: {b.Length} bytes, expected {expected} ring elements");
        var v = new UInt128[expected];
        for (var i = 0; i < expected; i++) v[i] = BinaryPrimitives.ReadUInt128LittleEndian(b.AsSpan(i * ElementBytes));
        return v;
    }
}

/// <summary>
/// Pairwise masking for secure aggregation (Bonawitz et al. 2017, "Practical Secure Aggregation for
/// Privacy-Preserving Machine Learning", the masking layer): every pair of members agrees on a key by X25519
/// (RFC 7748; public keys relayed by the aggregation server), and member i adds PRG(k_ij, step, attempt) for each
/// live peer j that sorts after it and subtracts it for each peer before it. The masks cancel in the sum over the
/// live members, so the server learns only that sum. The PRG is AES-256 in counter mode keyed by
/// HKDF-SHA256(X25519 secret, salt = session id, info = the two names); every (step, attempt) uses fresh masks, so a
/// re-run after a dropout never reuses one. Keys are fresh per training session.
/// </summary>
public sealed class PairwiseMasker
{
    static readonly byte[] BasePoint = [9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    readonly byte[] secret = new byte[32];
    readonly Dictionary<string, byte[]> pairKeys = new(StringComparer.Ordinal);

    public string Self { get; }
    public byte[] PublicKey { get; } = new byte[32];

    public PairwiseMasker(string self)
    {
        Self = self;
        RandomNumberGenerator.Fill(secret);
        Curve25519.ScalarMult(secret, BasePoint, 0, PublicKey, 0);
    }

    /// <summary>Derives the pair keys from the group's public keys (this member's own entry included or not).</summary>
    public void Agree(IReadOnlyDictionary<string, byte[]> publicKeys, byte[] session)
    {
        foreach (var (peer, pk) in publicKeys)
        {
            if (peer == Self) continue;
            if (pk.Length != 32) throw new FedFailureException($"protocol error: '{peer}' sent a {pk.Length}-byte X25519 key");
            var shared = new byte[32];
            Curve25519.ScalarMult(secret, pk, 0, shared, 0);
            if (shared.All(b => b == 0)) throw new FedFailureException($"'{peer}' sent a low-order X25519 key; refusing to mask with it");
            var (a, b) = string.CompareOrdinal(Self, peer) < 0 ? (Self, peer) : (peer, Self);
            pairKeys[peer] = HKDF.DeriveKey(HashAlgorithmName.SHA256, shared, 32, session, Encoding.UTF8.GetBytes($"fed-secagg-v1|{a}|{b}"));
        }
    }

    public IReadOnlyCollection<string> Peers => pairKeys.Keys;

    static readonly AsyncLocal<bool> benchmarkWithoutMasks = new();

    /// <summary>The benchmark's same-run baseline only: the same protocol with the masks left out. In-process and
    /// internal (no option, config or message can turn masking off).</summary>
    internal static IDisposable WithoutMasksForBenchmark()
    {
        benchmarkWithoutMasks.Value = true;
        return new Undo(() => benchmarkWithoutMasks.Value = false);
    }

    sealed class Undo(Action undo) : IDisposable { public void Dispose() => undo(); }

    /// <summary>values + sum over live peers j of (+/-) PRG(k_ij, step, attempt). The result is uniformly random to
    /// anyone lacking a pair key unless this member is the only live one.</summary>
    public UInt128[] Mask(UInt128[] values, string step, int attempt, IReadOnlyCollection<string> live)
    {
        var masked = (UInt128[])values.Clone();
        if (benchmarkWithoutMasks.Value) return masked;
        var stream = new UInt128[values.Length];
        foreach (var peer in live)
        {
            if (peer == Self) continue;
            if (!pairKeys.TryGetValue(peer, out var key)) throw new FedFailureException($"protocol error: no agreed key with '{peer}'");
            Prg(key, step, attempt, stream);
            var add = string.CompareOrdinal(Self, peer) < 0;
            for (var i = 0; i < masked.Length; i++) masked[i] = add ? masked[i] + stream[i] : masked[i] - stream[i];
        }
        return masked;
    }

    /// <summary>AES-256-CTR keystream: block i = AES_k(nonce || i), nonce = the first 8 bytes of SHA-256(step | attempt).</summary>
    static void Prg(byte[] key, string step, int attempt, UInt128[] into)
    {
        var nonce = SHA256.HashData(Encoding.UTF8.GetBytes($"{step}|{attempt}"));
        var counters = new byte[into.Length * 16];
        for (var i = 0; i < into.Length; i++)
        {
            nonce.AsSpan(0, 8).CopyTo(counters.AsSpan(i * 16));
            BinaryPrimitives.WriteUInt64BigEndian(counters.AsSpan(i * 16 + 8), (ulong)i);
        }
        using var aes = Aes.Create();
        aes.Key = key;
        var blocks = aes.EncryptEcb(counters, PaddingMode.None);
        for (var i = 0; i < into.Length; i++) into[i] = BinaryPrimitives.ReadUInt128LittleEndian(blocks.AsSpan(i * 16));
    }
}
