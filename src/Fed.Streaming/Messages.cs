using System.Globalization;
using System.Text;
using System.Text.Json;
using Fed.Core;
using Fed.Core.Scoring;

namespace Fed.Streaming;

/// <summary>A message that cannot be processed; it goes to the dead-letter topic with <see cref="Reason"/>.</summary>
public sealed class MalformedMessageException(string reason, string message) : BadInputException(message)
{
    /// <summary>Short machine reason: malformed, unknown_model, missing_feature, bad_partial, conflicting_partial,
    /// unsigned, unknown_party, bad_signature.</summary>
    public string Reason { get; } = reason;
}

/// <summary>
/// A feature event (the input of a party), one JSON object:
/// <c>{"event_id": "...", "sample_id": "...", "model_ids": ["m1", ...], "features": {"name": number|null, ...}, "event_time": "ISO 8601"}</c>.
/// event_id is the request id the parties' partial scores are joined on, so every party must see the same event_id
/// for the same request. null (or an absent model feature) is a missing value: the model's missing policy decides.
/// </summary>
public sealed class FeatureEvent
{
    public required string EventId { get; init; }
    public required string SampleId { get; init; }
    public required string[] ModelIds { get; init; }
    public required Dictionary<string, double> Features { get; init; }
    public required string EventTime { get; init; }

    public const int MaxIdLength = 256;

    public static FeatureEvent Parse(ReadOnlySpan<byte> utf8)
    {
        var r = new FeatureEventReader();
        r.Read(utf8);
        var features = new Dictionary<string, double>(r.FeatureCount, StringComparer.Ordinal);
        for (var i = 0; i < r.FeatureCount; i++) features[r.FeatureName(i).ToString()] = r.FeatureValue(i);
        return new FeatureEvent { EventId = r.EventId, SampleId = r.SampleId, ModelIds = (string[])r.ModelIds.Clone(), Features = features, EventTime = r.EventTime };
    }

    public byte[] ToJson()
    {
        using var ms = new MemoryStream(512);
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString("event_id", EventId);
            w.WriteString("sample_id", SampleId);
            w.WriteStartArray("model_ids");
            foreach (var m in ModelIds) w.WriteStringValue(m);
            w.WriteEndArray();
            w.WriteStartObject("features");
            foreach (var (k, v) in Features)
                if (double.IsNaN(v)) w.WriteNull(k); else w.WriteNumber(k, v);
            w.WriteEndObject();
            w.WriteString("event_time", EventTime);
            w.WriteEndObject();
        }
        return ms.ToArray();
    }

    internal static string Short(string s) => s.Length > 60 ? s[..60] + "..." : s;

    /// <summary>Event time for now, with sub-millisecond precision (used for end-to-end latency).</summary>
    public static string Now() => DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.ffffffZ", CultureInfo.InvariantCulture);
}

/// <summary>
/// A party's partial scores for one request and model, sent to the initiator keyed by request id:
/// <c>{"request_id","model_id","version","party","sample_id","scores":[...],"event_time","checksum"}</c>.
/// scores has one value per model output (the exact doubles from <see cref="PartialScorer"/>).
/// </summary>
public sealed class PartialScoreMessage
{
    public required string RequestId { get; init; }
    public required string ModelId { get; init; }
    public required int Version { get; init; }
    public required string Party { get; init; }
    public required string SampleId { get; init; }
    public required double[] Scores { get; init; }
    public required string EventTime { get; init; }
    public string? Checksum { get; init; }

    public byte[] ToJson()
    {
        var buf = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buf)) Write(w, RequestId, ModelId, Version, Party, SampleId, Scores, EventTime, Checksum);
        return buf.WrittenSpan.ToArray();
    }

    /// <summary>The one writer of the format (doubles in shortest round-trip form); flushes <paramref name="w"/>.</summary>
    public static void Write(Utf8JsonWriter w, string requestId, string modelId, int version, string party, string sampleId,
        ReadOnlySpan<double> scores, string eventTime, string? checksum)
    {
        w.WriteStartObject();
        w.WriteString("request_id", requestId);
        w.WriteString("model_id", modelId);
        w.WriteNumber("version", version);
        w.WriteString("party", party);
        w.WriteString("sample_id", sampleId);
        w.WriteStartArray("scores");
        foreach (var s in scores) w.WriteNumberValue(s);
        w.WriteEndArray();
        w.WriteString("event_time", eventTime);
        if (checksum is not null) w.WriteString("checksum", checksum);
        w.WriteEndObject();
        w.Flush();
    }

    public static PartialScoreMessage Parse(ReadOnlySpan<byte> utf8) => new PartialScoreReader().Read(utf8);

    /// <summary>The message as its party sends it: signed with the party's key (<see cref="PartSignature"/>).</summary>
    public byte[] ToSignedJson(byte[] key) => PartSignature.Sign(ToJson(), key);
}

/// <summary>
/// Authentication of a partial-score message by its party: HMAC-SHA256 with the party's key over the message's JSON
/// up to (not including) its closing brace, appended as the last member: <c>...,"mac":"&lt;base64 of 32 bytes&gt;"}</c>.
/// The MAC is at a fixed place and length, so the bytes it covers are found without parsing, and every member the
/// initiator reads (party, request, model, version, sample, scores) is under it. Kafka 0.9 has no headers, hence in-band.
/// </summary>
public static class PartSignature
{
    const int MacBytes = 32, MacBase64 = 44;
    static ReadOnlySpan<byte> Open => ",\"mac\":\""u8;
    static readonly int SuffixLength = Open.Length + MacBase64 + 2; // ,"mac":"...."}

    /// <summary>Signs a complete JSON object (as <see cref="PartialScoreMessage.Write"/> writes it).</summary>
    public static byte[] Sign(ReadOnlySpan<byte> json, byte[] key)
    {
        if (json.Length < 2 || json[^1] != (byte)'}') throw new ArgumentException("expected a JSON object", nameof(json));
        var covered = json[..^1];
        var message = new byte[covered.Length + SuffixLength];
        covered.CopyTo(message);
        var o = covered.Length;
        Open.CopyTo(message.AsSpan(o));
        o += Open.Length;
        Span<byte> mac = stackalloc byte[MacBytes];
        System.Security.Cryptography.HMACSHA256.HashData(key, covered, mac);
        System.Buffers.Text.Base64.EncodeToUtf8(mac, message.AsSpan(o), out _, out var written);
        o += written;
        message[o++] = (byte)'"';
        message[o] = (byte)'}';
        return message;
    }

    /// <summary>True if the message ends with a MAC member of the right form.</summary>
    public static bool IsSigned(ReadOnlySpan<byte> message) =>
        message.Length > SuffixLength && message[^1] == (byte)'}' && message[^2] == (byte)'"' && message[^SuffixLength..].StartsWith(Open);

    /// <summary>Checks the MAC under <paramref name="key"/> in constant time; false if unsigned or wrong.</summary>
    public static bool Verify(ReadOnlySpan<byte> message, byte[] key)
    {
        if (!IsSigned(message)) return false;
        var covered = message[..^SuffixLength];
        Span<byte> given = stackalloc byte[MacBytes + 2];
        var b64 = message.Slice(message.Length - 2 - MacBase64, MacBase64);
        if (System.Buffers.Text.Base64.DecodeFromUtf8(b64, given, out _, out var n) != System.Buffers.OperationStatus.Done || n != MacBytes) return false;
        Span<byte> want = stackalloc byte[MacBytes];
        System.Security.Cryptography.HMACSHA256.HashData(key, covered, want);
        return System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(want, given[..MacBytes]);
    }
}

/// <summary>Writers for the initiator's outputs and the dead-letter topic.</summary>
public static class OutputMessages
{
    /// <summary>Final-score event: the prediction record's JSON (as written to Redis) plus <c>"status":"scored"</c>.</summary>
    public static byte[] Scored(string recordJson) =>
        Encoding.UTF8.GetBytes("{\"status\":\"scored\"," + recordJson[1..]);

    /// <summary>Incomplete status (Redis value under <see cref="StreamRecords.IncompleteKey"/> and status-topic event).
    /// Deterministic for the same request and set of arrived parties.</summary>
    public static string Incomplete(string requestId, string modelId, int version, string sampleId,
        IEnumerable<string> arrived, IEnumerable<string> missing, int windowMs, string eventTime)
    {
        using var ms = new MemoryStream(256);
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString("status", "incomplete");
            w.WriteString("model_id", modelId);
            w.WriteNumber("version", version);
            w.WriteString("sample_id", sampleId);
            w.WriteString("event_id", requestId);
            w.WriteStartArray("arrived"); foreach (var p in arrived) w.WriteStringValue(p); w.WriteEndArray();
            w.WriteStartArray("missing"); foreach (var p in missing) w.WriteStringValue(p); w.WriteEndArray();
            w.WriteString("reason", $"no partial score from {string.Join(", ", missing.Select(m => $"'{m}'"))} within {windowMs} ms");
            w.WriteString("time", eventTime);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    /// <summary>Dead letter: <c>{"source","reason","error","topic","partition","offset","key"}</c>. It never carries the
    /// message itself (feature values, partial scores): the source topic, partition and offset point at it for those
    /// allowed to read that topic; error messages name fields, never their values.</summary>
    public static byte[] DeadLetter(string source, string reason, string error, string topic, int partition, long offset, string? key)
    {
        using var ms = new MemoryStream(256);
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString("source", source);
            w.WriteString("reason", reason);
            w.WriteString("error", error);
            w.WriteString("topic", topic);
            w.WriteNumber("partition", partition);
            w.WriteNumber("offset", offset);
            if (key is null) w.WriteNull("key"); else w.WriteString("key", key);
            w.WriteEndObject();
        }
        return ms.ToArray();
    }
}
