using System.Text;
using System.Text.Json;

namespace Fed.Core.Scoring;

/// <summary>
/// A final prediction as it is cached for lookups (Redis), shared by every path that writes predictions
/// (streaming, batch), so one reader finds them all:
/// key <c>fed:pred:{model_id}:v{version}:{sample_id}</c>, value one compact JSON object.
/// The value is a pure function of the request (no wall-clock time), so writing the same request again
/// writes the same bytes: writes are idempotent. Doubles are written in their shortest round-trip form,
/// so the value read back is the combiner's result bit for bit.
/// </summary>
public sealed record PredictionRecord(
    string ModelId, int Version, string SampleId, string? EventId, Prediction Prediction,
    IReadOnlyList<string> Parties, string Time)
{
    public const string PredictionPrefix = "fed:pred:";
    public const string IncompletePrefix = "fed:incomplete:";

    /// <summary>Key of a prediction: <c>fed:pred:{model_id}:v{version}:{sample_id}</c>.</summary>
    public static string Key(string modelId, int version, string sampleId) =>
        $"{PredictionPrefix}{Identifiers.ModelId(modelId)}:v{version}:{sampleId}";

    /// <summary>Key of an explicit incomplete status (a request whose parties did not all answer):
    /// <c>fed:incomplete:{model_id}:v{version}:{sample_id}</c>. Never holds a score.</summary>
    public static string IncompleteKey(string modelId, int version, string sampleId) =>
        $"{IncompletePrefix}{Identifiers.ModelId(modelId)}:v{version}:{sampleId}";

    public string RedisKey => Key(ModelId, Version, SampleId);

    /// <summary>
    /// The value: <c>{"model_id","version","sample_id","event_id","prediction","predicted_class","probabilities","parties","time"}</c>.
    /// predicted_class is -1 for linear models; probabilities only for softmax; time is the request's event time (ISO 8601).
    /// </summary>
    public string ToJson()
    {
        using var ms = new MemoryStream(256);
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString("model_id", ModelId);
            w.WriteNumber("version", Version);
            w.WriteString("sample_id", SampleId);
            if (EventId is not null) w.WriteString("event_id", EventId);
            w.WriteNumber("prediction", Prediction.Value);
            w.WriteNumber("predicted_class", Prediction.PredictedClass);
            if (Prediction.Probabilities is { } p)
            {
                w.WriteStartArray("probabilities");
                foreach (var v in p) w.WriteNumberValue(v);
                w.WriteEndArray();
            }
            w.WriteStartArray("parties");
            foreach (var party in Parties) w.WriteStringValue(party);
            w.WriteEndArray();
            w.WriteString("time", Time);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.GetBuffer(), 0, (int)ms.Length);
    }

    public static PredictionRecord Parse(string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            var r = doc.RootElement;
            double[]? probs = r.TryGetProperty("probabilities", out var pe) ? pe.EnumerateArray().Select(e => e.GetDouble()).ToArray() : null;
            return new PredictionRecord(
                r.GetProperty("model_id").GetString()!, r.GetProperty("version").GetInt32(), r.GetProperty("sample_id").GetString()!,
                r.TryGetProperty("event_id", out var ev) ? ev.GetString() : null,
                new Prediction(r.GetProperty("prediction").GetDouble(), r.GetProperty("predicted_class").GetInt32(), probs),
                r.GetProperty("parties").EnumerateArray().Select(e => e.GetString()!).ToArray(),
                r.GetProperty("time").GetString()!);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new BadInputException($"not a prediction record: {e.Message}", e);
        }
    }
}
