using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Fed.Core.Model;

namespace Fed.Core.Scoring;

/// <summary>
/// Partial scores as ring elements: s is sent as round(s · 2^F) in Z_2^64 (two's complement), F = <see cref="FractionBits"/>.
/// A party refuses a score whose magnitude could make the sum of the model's parties wrap (never a silent wrap), so the
/// ring sum of the parties' encodings is the exact integer sum and decodes to z with
/// |decode - Σ s| &lt;= parties · 2^-(F+1) while |z| &lt; 2^(52-F) (beyond that the long→double conversion adds its own
/// relative 2^-53). Decoding and the link are <see cref="Combiner"/>'s.
/// </summary>
public static class FixedPoint
{
    /// <summary>F: 32 fraction bits: 2.3e-10 resolution; 4 parties may each send |s| &lt; 2^29 (5.4e8, room for linear
    /// models in currency units as well as logits).</summary>
    public const int FractionBits = 32;
    const double Scale = 4294967296.0; // 2^32
    const double InverseScale = 1.0 / Scale;

    /// <summary>ceil(log2 parties): the headroom bits the sum needs.</summary>
    public static int HeadroomBits(int parties) => parties <= 1 ? 0 : 32 - System.Numerics.BitOperations.LeadingZeroCount((uint)(parties - 1));

    /// <summary>The bound on |s| a party may send for a model of <paramref name="parties"/> parties: 2^(63-F-ceil(log2 parties)).</summary>
    public static double Limit(int parties) => Math.ScaleB(1.0, 63 - FractionBits - HeadroomBits(parties));

    /// <summary>The documented error of a decoded sum against the exact sum of the parties' doubles: parties · 2^-(F+1).</summary>
    public static double ErrorBound(int parties) => parties * Math.ScaleB(1.0, -(FractionBits + 1));

    /// <summary>round(s · 2^F), half to even; refuses non-finite or out-of-range scores with a clear error.</summary>
    public static long Encode(double s, int parties, string party, string? sampleId = null)
    {
        var limit = Limit(parties);
        if (!double.IsFinite(s) || Math.Abs(s) >= limit)
            throw new BadInputException($"party '{party}': partial score {s:R}{(sampleId is null ? "" : $" for sample '{ErrorText.Cut(sampleId, 80)}'")} " +
                $"is outside the masked range |s| < {limit:R} (2^{63 - FractionBits - HeadroomBits(parties)}, {parties} parties, {FractionBits} fraction bits); " +
                "it would overflow the masked sum. Score this model unmasked or rescale it");
        return (long)Math.Round(s * Scale, MidpointRounding.ToEven);
    }

    /// <summary>Decodes a ring sum (already reduced mod 2^64) to a double.</summary>
    public static double Decode(long sum) => sum * InverseScale;
}

/// <summary>
/// Which parties mask for a model version, and what the initiator can see. Every party except the initiator masks;
/// with fewer than two maskers nothing can be hidden (one host, guest initiator: sum - own = the host's score).
/// </summary>
public sealed record MaskingPolicy(bool Enabled, string Initiator, string[] Maskers)
{
    /// <summary>The initiator is the guest (first party) unless <paramref name="initiator"/> names an external service.</summary>
    public const string External = "external";

    /// <summary>The default: masking on when the model has two or more hosts or the initiator is not the guest.</summary>
    public static MaskingPolicy Default(ModelSignature model, string? initiator = null) => For(model, initiator, null);

    /// <param name="enabled">null: the default rule; true/false: an explicit registry setting.</param>
    public static MaskingPolicy For(ModelSignature model, string? initiator, bool? enabled)
    {
        var init = initiator ?? model.Parties[0];
        if (init != External && Array.IndexOf(model.Parties, init) < 0)
            throw new BadInputException($"initiator '{ErrorText.Cut(init, 80)}' is neither a party of model '{model.ModelId}' ({string.Join(", ", model.Parties)}) nor '{External}'");
        var maskers = model.Parties.Where(p => p != init).ToArray();
        var on = enabled ?? (model.Parties.Length - 1 >= 2 || init != model.Parties[0]);
        if (on && maskers.Length < 2)
            throw new BadInputException($"model '{model.ModelId}' v{model.Version}: masking needs two or more parties besides the initiator '{init}'; " +
                $"with only '{string.Join(", ", maskers)}' the initiator learns that party's score as the sum minus its own, masked or not");
        return new MaskingPolicy(on, init, on ? maskers : []);
    }

    /// <summary>Parties whose individual partial scores the initiator can see (its own included).</summary>
    public string[] VisibleTo(ModelSignature model) =>
        Enabled ? model.Parties.Where(p => p == Initiator).ToArray() : model.Parties.ToArray();

    public string Describe(ModelSignature model)
    {
        if (!Enabled)
        {
            var hosts = model.Parties.Length - 1;
            return hosts == 1 && Initiator == model.Parties[0]
                ? $"unmasked: the initiator '{Initiator}' sees every party's partial score; with one host it would learn the host's score as final minus its own anyway (inherent)"
                : $"unmasked: the initiator '{Initiator}' sees every party's partial score ({string.Join(", ", model.Parties)})";
        }
        return $"masked by {string.Join(", ", Maskers)}: the initiator '{Initiator}' sees only " +
               (Initiator == External ? "the sum" : $"its own score and the sum of the others");
    }
}

/// <summary>
/// A party's X25519 mask key and its pinned peers. One file per party (JSON, mode 0600): the private scalar, and
/// each peer's public key as imported (its SHA-256 fingerprint is what operators compare out of band).
/// A pair secret is HKDF-SHA256(X25519 shared secret, info = "fed-mask-v1|model|version|a|b", a &lt; b), so every model
/// version has its own pair keys even though the identities are long-lived.
/// </summary>
public sealed class MaskKeys
{
    public const string Kind = "fed-mask-keys-v1";
    static readonly System.Text.Json.JsonSerializerOptions Json = new() { WriteIndented = true, AllowDuplicateProperties = false };

    public string Party { get; }
    readonly byte[] _private;
    public byte[] PublicKey { get; }
    readonly SortedDictionary<string, byte[]> _peers = new(StringComparer.Ordinal);

    MaskKeys(string party, byte[] priv)
    {
        Party = Identifiers.PartyId(party);
        if (priv.Length != 32) throw new BadInputException("a mask private key is 32 bytes");
        _private = priv;
        PublicKey = new byte[32];
        Org.BouncyCastle.Math.EC.Rfc7748.X25519.ScalarMultBase(_private, 0, PublicKey, 0);
    }

    public static MaskKeys Generate(string party)
    {
        var k = new byte[32];
        RandomNumberGenerator.Fill(k);
        return new MaskKeys(party, k);
    }

    public IReadOnlyDictionary<string, byte[]> Peers => _peers;

    /// <summary>Fresh key pairs for <paramref name="parties"/>, each pinning the others: the in-process reference
    /// (<c>fed predict local --masked</c>) and tests. Real parties keep theirs in files (<see cref="Write"/>).</summary>
    public static Dictionary<string, MaskKeys> Ephemeral(IEnumerable<string> parties)
    {
        var keys = parties.ToDictionary(p => p, Generate, StringComparer.Ordinal);
        foreach (var a in keys.Values) foreach (var b in keys.Values) if (a != b) a.Pin(b.Party, b.PublicKey);
        return keys;
    }

    /// <summary>This party's pair secrets with the other maskers of a model version (none if it does not mask).</summary>
    public Dictionary<string, byte[]> PairSecrets(ModelSignature model, MaskingPolicy policy) =>
        policy.Enabled && policy.Maskers.Contains(Party)
            ? policy.Maskers.Where(p => p != Party).ToDictionary(p => p, p => PairSecret(p, model.ModelId, model.Version), StringComparer.Ordinal)
            : new Dictionary<string, byte[]>(StringComparer.Ordinal);

    /// <summary>SHA-256 of a public key, hex, colon-free: what two operators read to each other.</summary>
    public static string Fingerprint(byte[] publicKey) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(publicKey));

    /// <summary>Pins a peer's public key. A different key for an already pinned peer is refused (re-pinning is a
    /// deliberate act: remove the peer first); the same key again is a no-op.</summary>
    public void Pin(string peer, byte[] publicKey)
    {
        Identifiers.PartyId(peer);
        if (peer == Party) throw new BadInputException($"'{peer}' is this party; pin the other parties' public keys");
        if (publicKey.Length != 32) throw new BadInputException($"peer '{peer}': an X25519 public key is 32 bytes, got {publicKey.Length}");
        if (_peers.TryGetValue(peer, out var old) && !old.AsSpan().SequenceEqual(publicKey))
            throw new BadInputException($"peer '{peer}' is already pinned to {Fingerprint(old)}; refusing to replace it with {Fingerprint(publicKey)}");
        _peers[peer] = (byte[])publicKey.Clone();
    }

    /// <summary>The pair secret with <paramref name="peer"/> for one model version.</summary>
    public byte[] PairSecret(string peer, string modelId, int version)
    {
        if (!_peers.TryGetValue(peer, out var pk))
            throw new BadInputException($"party '{Party}' has no pinned mask key for '{peer}': import it with 'fed mask trust'");
        var shared = new byte[32];
        Org.BouncyCastle.Math.EC.Rfc7748.X25519.ScalarMult(_private, 0, pk, 0, shared, 0);
        if (shared.All(b => b == 0)) throw new BadInputException($"peer '{peer}' has a low-order X25519 key; refusing to mask with it");
        var (a, b) = string.CompareOrdinal(Party, peer) < 0 ? (Party, peer) : (peer, Party);
        return HKDF.DeriveKey(HashAlgorithmName.SHA256, shared, 32, salt: [], Encoding.UTF8.GetBytes($"fed-mask-v1|{modelId}|{version}|{a}|{b}"));
    }

    public void Write(string path) => Security.SecretFiles.Write(path, System.Text.Json.JsonSerializer.Serialize(new KeyFile
    {
        Kind = Kind, Party = Party, Private = Convert.ToBase64String(_private), Public = Convert.ToBase64String(PublicKey),
        Peers = _peers.ToDictionary(kv => kv.Key, kv => Convert.ToBase64String(kv.Value)),
    }, Json));

    /// <summary>The public half as a small JSON document (what a party hands its peers).</summary>
    public string PublicJson() => System.Text.Json.JsonSerializer.Serialize(new PublicFile { Kind = Kind + "-public", Party = Party, Public = Convert.ToBase64String(PublicKey), Fingerprint = Fingerprint(PublicKey) }, Json);

    public static MaskKeys Read(string path, bool allowInsecureMode = false)
    {
        if (!File.Exists(path)) throw new BadInputException($"mask key file '{ErrorText.Cut(path)}' does not exist: create it with 'fed mask keygen'");
        Security.SecretFiles.CheckPrivate(path, "mask key file", allowInsecureMode);
        KeyFile f;
        try { f = System.Text.Json.JsonSerializer.Deserialize<KeyFile>(File.ReadAllText(path), Json) ?? throw new System.Text.Json.JsonException("empty"); }
        catch (System.Text.Json.JsonException e) { throw new BadInputException($"mask key file '{ErrorText.Cut(path)}' is not a Fed mask key file: {e.Message}"); }
        if (f.Kind != Kind || f.Party is null || f.Private is null) throw new BadInputException($"mask key file '{ErrorText.Cut(path)}': expected kind '{Kind}' with party and private key");
        var keys = new MaskKeys(f.Party, Base64(f.Private, path, "private"));
        foreach (var (peer, pk) in f.Peers ?? []) keys.Pin(peer, Base64(pk, path, $"peers.{peer}"));
        return keys;
    }

    /// <summary>Reads a public-key document (<see cref="PublicJson"/>): (party, key).</summary>
    public static (string Party, byte[] Key) ReadPublic(string path)
    {
        if (!File.Exists(path)) throw new BadInputException($"public key file '{ErrorText.Cut(path)}' does not exist");
        PublicFile f;
        try { f = System.Text.Json.JsonSerializer.Deserialize<PublicFile>(File.ReadAllText(path), Json) ?? throw new System.Text.Json.JsonException("empty"); }
        catch (System.Text.Json.JsonException e) { throw new BadInputException($"'{ErrorText.Cut(path)}' is not a Fed mask public key: {e.Message}"); }
        if (f.Kind != Kind + "-public" || f.Party is null || f.Public is null) throw new BadInputException($"'{ErrorText.Cut(path)}' is not a Fed mask public key (kind '{Kind}-public')");
        var key = Base64(f.Public, path, "public");
        if (f.Fingerprint is { } fp && fp != Fingerprint(key)) throw new BadInputException($"'{ErrorText.Cut(path)}': the fingerprint does not match the key");
        return (Identifiers.PartyId(f.Party), key);
    }

    static byte[] Base64(string s, string path, string field)
    {
        try { return Convert.FromBase64String(s); }
        catch (FormatException) { throw new BadInputException($"'{ErrorText.Cut(path)}': {field} is not base64"); }
    }

    sealed class KeyFile
    {
        [System.Text.Json.Serialization.JsonPropertyName("kind")] public string? Kind { get; set; }
        [System.Text.Json.Serialization.JsonPropertyName("party")] public string? Party { get; set; }
        [System.Text.Json.Serialization.JsonPropertyName("private")] public string? Private { get; set; }
        [System.Text.Json.Serialization.JsonPropertyName("public")] public string? Public { get; set; }
        [System.Text.Json.Serialization.JsonPropertyName("peers")] public Dictionary<string, string>? Peers { get; set; }
    }

    sealed class PublicFile
    {
        [System.Text.Json.Serialization.JsonPropertyName("kind")] public string? Kind { get; set; }
        [System.Text.Json.Serialization.JsonPropertyName("party")] public string? Party { get; set; }
        [System.Text.Json.Serialization.JsonPropertyName("public")] public string? Public { get; set; }
        [System.Text.Json.Serialization.JsonPropertyName("fingerprint")] public string? Fingerprint { get; set; }
    }
}

/// <summary>
/// The context masks are drawn for: model, version, and either a request id (online, streaming, <c>predict local</c>)
/// or a batch partition and run id. The sample id and output index complete it per value. Each part is length-prefixed,
/// so distinct contexts never encode alike.
/// </summary>
public sealed record MaskContext(string ModelId, int Version, string Scope, string Id)
{
    public static MaskContext Request(string modelId, int version, string requestId) => new(modelId, version, "request", requestId);

    /// <summary>A batch run: one partition (dt[/hour]) and a run id every party of the run was given.</summary>
    public static MaskContext Batch(string modelId, int version, string partition, string runId) => new(modelId, version, "batch", partition + "|" + runId);

    internal byte[] Encode()
    {
        var parts = new[] { "fed-mask-ctx-v1", ModelId, Version.ToString(System.Globalization.CultureInfo.InvariantCulture), Scope, Id };
        using var ms = new MemoryStream();
        Span<byte> len = stackalloc byte[4];
        foreach (var p in parts)
        {
            var b = Encoding.UTF8.GetBytes(p);
            BinaryPrimitives.WriteInt32BigEndian(len, b.Length);
            ms.Write(len);
            ms.Write(b);
        }
        return ms.ToArray();
    }
}

/// <summary>
/// One masking party's masks for one context. For every other masker j, m_ij = PRF(k_ij, context, sample, output),
/// added when this party sorts before j in the model's party order and subtracted otherwise, so Σ_i m_i = 0 mod 2^64.
/// Per sample the PRF input is a 16-byte block: the sample id itself (length byte + up to 15 UTF-8 bytes), or 0xFF +
/// the first 15 bytes of its SHA-256 when longer. Two PRFs, chosen by the context's scope (so every party uses the same):
/// <list type="bullet">
/// <item>batch (many samples, one context): AES-256 (AES-NI through System.Security.Cryptography) keyed per (pair,
/// context, output pair) by HKDF-Expand(k_ij, context), one ECB call over the whole batch; a block gives two masks.</item>
/// <item>request (online, streaming, predict local: one context per request): HMAC-SHA256(k_ij, context ‖ block index
/// ‖ sample block), 32 bytes = four masks; no key schedule per request.</item>
/// </list>
/// Both are pseudorandom functions of distinct inputs, so distinct samples and contexts get independent-looking masks.
/// </summary>
public sealed class ScoreMasker : IDisposable
{
    readonly ModelSignature _model;
    readonly string _party;
    readonly (Aes Aes, bool Add)[][] _pairs; // batch scope: [output block][peer]
    readonly (byte[] Secret, bool Add)[] _hmacPeers; // request scope
    readonly byte[] _context = [];
    readonly int _parties;

    /// <param name="pairSecrets">The model version's pair secrets with every other masker (<see cref="MaskKeys.PairSecret"/>).</param>
    public ScoreMasker(ModelSignature model, MaskingPolicy policy, string party, IReadOnlyDictionary<string, byte[]> pairSecrets, MaskContext context)
    {
        _model = model;
        _party = party;
        _parties = model.Parties.Length;
        if (context.ModelId != model.ModelId || context.Version != model.Version)
            throw new ArgumentException("mask context of another model version");
        var self = Array.IndexOf(model.Parties, party);
        if (self < 0) throw new BadInputException($"party '{party}' is not a party of model '{model.ModelId}'");
        var peers = policy.Enabled && policy.Maskers.Contains(party) ? policy.Maskers.Where(p => p != party).ToArray() : [];
        var ctx = context.Encode();
        foreach (var peer in peers)
            if (!pairSecrets.ContainsKey(peer))
                throw new BadInputException($"party '{party}' has no mask key for '{peer}' (model '{model.ModelId}' v{model.Version}): pin its public key with 'fed mask trust'");
        if (context.Scope == "request")
        {
            _context = ctx;
            _hmacPeers = peers.Select(p => (pairSecrets[p], self < Array.IndexOf(model.Parties, p))).ToArray();
            _pairs = [];
            return;
        }
        _hmacPeers = [];
        var blocks = (model.OutputCount + 1) / 2;
        _pairs = new (Aes, bool)[blocks][];
        for (var b = 0; b < blocks; b++)
        {
            _pairs[b] = new (Aes, bool)[peers.Length];
            for (var j = 0; j < peers.Length; j++)
            {
                var secret = pairSecrets[peers[j]];
                var info = new byte[ctx.Length + 4];
                ctx.CopyTo(info, 0);
                BinaryPrimitives.WriteInt32BigEndian(info.AsSpan(ctx.Length), b);
                var aes = Aes.Create();
                aes.Key = HKDF.Expand(HashAlgorithmName.SHA256, secret, 32, info);
                _pairs[b][j] = (aes, self < Array.IndexOf(model.Parties, peers[j]));
            }
        }
    }

    /// <summary>Encodes and masks one sample's partial scores (one per output).</summary>
    public long[] Mask(string sampleId, ReadOnlySpan<double> scores)
    {
        var cols = new double[scores.Length][];
        for (var c = 0; c < scores.Length; c++) cols[c] = [scores[c]];
        var outp = MaskBatch([sampleId], cols, 1);
        return outp.Select(o => o[0]).ToArray();
    }

    /// <summary>Encodes and masks a columnar batch: <c>scores[c][r]</c> → <c>result[c][r]</c>. Rows whose
    /// <paramref name="skip"/> entry is &gt;= 0 (rejected by the scorer, never sent) are left 0.</summary>
    public long[][] MaskBatch(IReadOnlyList<string> ids, double[][] scores, int rows, int[]? skip = null)
    {
        if (scores.Length != _model.OutputCount) throw new ArgumentException("one score column per output");
        var result = new long[scores.Length][];
        for (var c = 0; c < scores.Length; c++)
        {
            var r0 = result[c] = new long[rows];
            var s = scores[c];
            for (var r = 0; r < rows; r++)
                if (skip is null || skip[r] < 0) r0[r] = FixedPoint.Encode(s[r], _parties, _party, ids[r]);
        }
        if (_hmacPeers.Length > 0)
        {
            // context ‖ u32 block index ‖ sample block, one HMAC per (row, peer, 4 outputs).
            var msg = new byte[_context.Length + 20];
            _context.CopyTo(msg, 0);
            Span<byte> mac = stackalloc byte[32];
            for (var r = 0; r < rows; r++)
            {
                if (skip != null && skip[r] >= 0) continue;
                Block(ids[r], msg.AsSpan(_context.Length + 4, 16));
                for (var b = 0; 4 * b < scores.Length; b++)
                {
                    BinaryPrimitives.WriteInt32BigEndian(msg.AsSpan(_context.Length, 4), b);
                    foreach (var (secret, add) in _hmacPeers)
                    {
                        HMACSHA256.HashData(secret, msg, mac);
                        for (var q = 0; q < 4 && 4 * b + q < scores.Length; q++)
                        {
                            var m = BinaryPrimitives.ReadInt64LittleEndian(mac.Slice(8 * q, 8));
                            ref var v = ref result[4 * b + q][r];
                            v = unchecked(add ? v + m : v - m);
                        }
                    }
                }
            }
            return result;
        }
        if (_pairs.Length == 0 || _pairs[0].Length == 0) return result;
        var input = new byte[rows * 16];
        for (var r = 0; r < rows; r++) Block(ids[r], input.AsSpan(r * 16, 16));
        var stream = new byte[input.Length];
        for (var b = 0; b < _pairs.Length; b++)
            foreach (var (aes, add) in _pairs[b])
            {
                aes.EncryptEcb(input, stream, PaddingMode.None);
                for (var half = 0; half < 2 && 2 * b + half < scores.Length; half++)
                {
                    var col = result[2 * b + half];
                    for (var r = 0; r < rows; r++)
                    {
                        var m = BinaryPrimitives.ReadInt64LittleEndian(stream.AsSpan(r * 16 + half * 8, 8));
                        col[r] = unchecked(add ? col[r] + m : col[r] - m);
                    }
                }
            }
        return result;
    }

    /// <summary>The per-sample PRF input: length byte + id bytes for ids up to 15 UTF-8 bytes, else 0xFF + SHA-256(id)[..15].</summary>
    static void Block(string id, Span<byte> block)
    {
        block.Clear();
        var n = Encoding.UTF8.GetByteCount(id);
        if (n <= 15)
        {
            block[0] = (byte)n;
            Encoding.UTF8.GetBytes(id, block[1..]);
            return;
        }
        Span<byte> h = stackalloc byte[32];
        var bytes = n <= 256 ? stackalloc byte[n] : new byte[n];
        Encoding.UTF8.GetBytes(id, bytes);
        SHA256.HashData(bytes, h);
        block[0] = 0xFF;
        h[..15].CopyTo(block[1..]);
    }

    public void Dispose()
    {
        foreach (var row in _pairs) foreach (var (aes, _) in row) aes.Dispose();
    }
}
