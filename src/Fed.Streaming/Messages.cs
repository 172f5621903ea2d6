using System.Globalization;
using System.Text;
using System.Text.Json;
using Fed.Core;
using Fed.Core.Scoring;

namespace Fed.Streaming;

/// <summary>A message that cannot be processed; it goes to the dead-letter topic with <see cref="Reason"/>.</summary>
public sealed class MalformedMessageException(string reason, string message) : BadInputException(message)
{
    /// <summary>Short machine reason: malformed, unknown_model, missing_feature, bad_partial, conflicting_partial.</summary>
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
        JsonDocument doc;
        try { doc = JsonDocument.Parse(utf8.ToArray(), new JsonDocumentOptions { MaxDepth = 8 }); }
        catch (JsonException e) { throw new MalformedMessageException("malformed", $"not valid JSON: {e.Message}"); }
        using (doc)
        {
            var r = doc.RootElement;
            if (r.ValueKind != JsonValueKind.Object) throw new MalformedMessageException("malformed", "expected a JSON object");
            var eventId = Id(r, "event_id");
            var sampleId = Id(r, "sample_id");
            if (!r.TryGetProperty("model_ids", out var mi) || mi.ValueKind != JsonValueKind.Array || mi.GetArrayLength() == 0)
                throw new MalformedMessageException("malformed", "model_ids: expected a non-empty array of model ids");
            var models = new string[mi.GetArrayLength()];
            var i = 0;
            foreach (var m in mi.EnumerateArray())
            {
                if (m.ValueKind != JsonValueKind.String) throw new MalformedMessageException("malformed", $"model_ids[{i}]: expected a string");
                try { models[i++] = Identifiers.ModelId(m.GetString()!); }
                catch (BadInputException e) { throw new MalformedMessageException("malformed", $"model_ids[{i - 1}]: {e.Message}"); }
            }
            if (!r.TryGetProperty("features", out var fe) || fe.ValueKind != JsonValueKind.Object)
                throw new MalformedMessageException("malformed", "features: expected an object of name: number|null");
            var features = new Dictionary<string, double>(StringComparer.Ordinal);
            foreach (var p in fe.EnumerateObject())
            {
                double v;
                if (p.Value.ValueKind == JsonValueKind.Null) v = double.NaN;
                else if (p.Value.ValueKind == JsonValueKind.Number && p.Value.TryGetDouble(out v) && double.IsFinite(v)) { }
                else throw new MalformedMessageException("malformed", $"features.{Short(p.Name)}: expected a finite number or null, got {p.Value.ValueKind}");
                if (!features.TryAdd(p.Name, v)) throw new MalformedMessageException("malformed", $"features.{Short(p.Name)}: given twice");
            }
            if (!r.TryGetProperty("event_time", out var et) || et.ValueKind != JsonValueKind.String
                || !DateTimeOffset.TryParse(et.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out _))
                throw new MalformedMessageException("malformed", "event_time: expected an ISO 8601 time string");
            return new FeatureEvent { EventId = eventId, SampleId = sampleId, ModelIds = models, Features = features, EventTime = et.GetString()! };
        }
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

    internal static string Id(JsonElement r, string name)
    {
        if (!r.TryGetProperty(name, out var e) || e.ValueKind != JsonValueKind.String)
            throw new MalformedMessageException("malformed", $"{name}: expected a string");
        var s = e.GetString()!;
        if (s.Length == 0 || s.Length > MaxIdLength || s.Any(char.IsControl))
            throw new MalformedMessageException("malformed", $"{name}: must be 1-{MaxIdLength} printable characters");
        return s;
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
        var buf = new ArrayBufferWriterLite();
        using (var w = new Utf8JsonWriter(buf))
        {
            w.WriteStartObject();
            w.WriteString("request_id", RequestId);
            w.WriteString("model_id", ModelId);
            w.WriteNumber("version", Version);
            w.WriteString("party", Party);
            w.WriteString("sample_id", SampleId);
            w.WriteStartArray("scores");
            foreach (var s in Scores) w.WriteNumberValue(s);
            w.WriteEndArray();
            w.WriteString("event_time", EventTime);
            if (Checksum is not null) w.WriteString("checksum", Checksum);
            w.WriteEndObject();
        }
        return buf.ToArray();
    }

    public static PartialScoreMessage Parse(ReadOnlySpan<byte> utf8)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(utf8.ToArray(), new JsonDocumentOptions { MaxDepth = 4 }); }
        catch (JsonException e) { throw new MalformedMessageException("malformed", $"not valid JSON: {e.Message}"); }
        using (doc)
        {
            var r = doc.RootElement;
            if (r.ValueKind != JsonValueKind.Object) throw new MalformedMessageException("malformed", "expected a JSON object");
            var requestId = FeatureEvent.Id(r, "request_id");
            var modelId = FeatureEvent.Id(r, "model_id");
            var party = FeatureEvent.Id(r, "party");
            var sampleId = FeatureEvent.Id(r, "sample_id");
            if (!r.TryGetProperty("version", out var ve) || ve.ValueKind != JsonValueKind.Number || !ve.TryGetInt32(out var version) || version < 1)
                throw new MalformedMessageException("malformed", "version: expected an integer >= 1");
            if (!r.TryGetProperty("scores", out var se) || se.ValueKind != JsonValueKind.Array || se.GetArrayLength() == 0)
                throw new MalformedMessageException("malformed", "scores: expected a non-empty array of numbers");
            var scores = new double[se.GetArrayLength()];
            var i = 0;
            foreach (var s in se.EnumerateArray())
            {
                if (s.ValueKind != JsonValueKind.Number || !s.TryGetDouble(out var v) || !double.IsFinite(v))
                    throw new MalformedMessageException("bad_partial", $"scores[{i}]: expected a finite number");
                scores[i++] = v;
            }
            var eventTime = r.TryGetProperty("event_time", out var et) && et.ValueKind == JsonValueKind.String ? et.GetString()! : "";
            var checksum = r.TryGetProperty("checksum", out var ce) && ce.ValueKind == JsonValueKind.String ? ce.GetString() : null;
            return new PartialScoreMessage
            {
                RequestId = requestId, ModelId = modelId, Version = version, Party = party, SampleId = sampleId,
                Scores = scores, EventTime = eventTime, Checksum = checksum,
            };
        }
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

    /// <summary>Dead letter: <c>{"source","reason","error","topic","partition","offset","key","payload"}</c>;
    /// payload is the original message as text (or base64 in payload_base64 when it is not UTF-8).</summary>
    public static byte[] DeadLetter(string source, string reason, string error, string topic, int partition, long offset, string? key, byte[]? payload)
    {
        using var ms = new MemoryStream(256 + (payload?.Length ?? 0));
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
            if (payload is null) w.WriteNull("payload");
            else
            {
                string? text = null;
                try { text = new UTF8Encoding(false, true).GetString(payload); } catch (DecoderFallbackException) { }
                if (text is not null) w.WriteString("payload", text); else w.WriteBase64String("payload_base64", payload);
            }
            w.WriteEndObject();
        }
        return ms.ToArray();
    }
}

/// <summary>Minimal growable buffer for Utf8JsonWriter (avoids MemoryStream's extra copy).</summary>
sealed class ArrayBufferWriterLite : System.Buffers.IBufferWriter<byte>
{
    byte[] _buf = new byte[256];
    int _len;
    public void Advance(int count) => _len += count;
    public Memory<byte> GetMemory(int sizeHint = 0) { Grow(sizeHint); return _buf.AsMemory(_len); }
    public Span<byte> GetSpan(int sizeHint = 0) { Grow(sizeHint); return _buf.AsSpan(_len); }
    void Grow(int hint)
    {
        if (hint < 1) hint = 1;
        if (_len + hint > _buf.Length) Array.Resize(ref _buf, Math.Max(_buf.Length * 2, _len + hint));
    }
    public byte[] ToArray() => _buf.AsSpan(0, _len).ToArray();
}
