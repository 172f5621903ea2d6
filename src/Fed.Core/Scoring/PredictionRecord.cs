using System.Text.Json;
using Fed.Core.Model;

namespace Fed.Core.Scoring;

/// <summary>
/// A combined prediction as it is cached in Redis, shared by the online service and the batch path that loads
/// precomputed predictions: key <c>fed:pred:{model_id}:v{version}:{sample_id}</c>, value the compact JSON of this record.
/// The version is in the key, so activating or rolling back a version never serves another version's prediction.
/// </summary>
public sealed record PredictionRecord(
    string ModelId, int Version, string SampleId, double Value, string? PredictedClass, double[]? Probabilities,
    string Source, string ComputedAt)
{
    public const string KeyPrefix = "fed:pred:";

    /// <summary>The Redis key; model id checked by <see cref="Identifiers.ModelId"/>, sample id must be 1-256 chars without control characters.</summary>
    public static string Key(string modelId, int version, string sampleId) =>
        $"{KeyPrefix}{Identifiers.ModelId(modelId)}:v{version}:{CheckSampleId(sampleId)}";

    public string Key() => Key(ModelId, Version, SampleId);

    /// <summary>Sample ids are data, but they end up in keys and logs: bounded length, no control characters.</summary>
    public static string CheckSampleId(string sampleId)
    {
        if (string.IsNullOrEmpty(sampleId) || sampleId.Length > 256 || sampleId.Any(char.IsControl))
            throw new BadInputException($"invalid sample id '{(sampleId is null ? "(null)" : sampleId.Length > 60 ? sampleId[..60] + "..." : sampleId)}': use 1-256 characters without control characters");
        return sampleId;
    }

    /// <summary>Builds the record of a prediction from <see cref="Combiner"/> (predicted class as a label for softmax, else null).</summary>
    public static PredictionRecord From(ModelSignature model, string sampleId, Prediction p, string source, DateTime? at = null) =>
        new(model.ModelId, model.Version, sampleId, p.Value,
            model.Kind == ModelKind.Softmax ? model.Classes[p.PredictedClass] : null,
            p.Probabilities, source, (at ?? DateTime.UtcNow).ToString("yyyy-MM-ddTHH:mm:ss.fffZ"));

    /// <summary>Compact JSON: {"model_id","version","sample_id","value","predicted_class","probabilities","source","computed_at"}.
    /// Doubles are written in shortest round-trip form, so the value survives the cache bit for bit.</summary>
    public string ToJson()
    {
        using var ms = new MemoryStream(256);
        using (var w = new Utf8JsonWriter(ms)) Write(w);
        return System.Text.Encoding.UTF8.GetString(ms.GetBuffer(), 0, (int)ms.Length);
    }

    public void Write(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteString("model_id", ModelId);
        w.WriteNumber("version", Version);
        w.WriteString("sample_id", SampleId);
        w.WriteNumber("value", Value);
        if (PredictedClass is null) w.WriteNull("predicted_class"); else w.WriteString("predicted_class", PredictedClass);
        if (Probabilities is null) w.WriteNull("probabilities");
        else
        {
            w.WriteStartArray("probabilities");
            foreach (var p in Probabilities) w.WriteNumberValue(p);
            w.WriteEndArray();
        }
        w.WriteString("source", Source);
        w.WriteString("computed_at", ComputedAt);
        w.WriteEndObject();
    }

    public static PredictionRecord Parse(string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            var r = doc.RootElement;
            double[]? probs = null;
            if (r.TryGetProperty("probabilities", out var pe) && pe.ValueKind == JsonValueKind.Array)
                probs = pe.EnumerateArray().Select(x => x.GetDouble()).ToArray();
            return new PredictionRecord(
                r.GetProperty("model_id").GetString()!, r.GetProperty("version").GetInt32(), r.GetProperty("sample_id").GetString()!,
                r.GetProperty("value").GetDouble(),
                r.TryGetProperty("predicted_class", out var pc) && pc.ValueKind == JsonValueKind.String ? pc.GetString() : null,
                probs,
                r.TryGetProperty("source", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString()! : "unknown",
                r.TryGetProperty("computed_at", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString()! : "");
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new BadInputException($"cached prediction is not a valid PredictionRecord: {e.Message}", e);
        }
    }
}
