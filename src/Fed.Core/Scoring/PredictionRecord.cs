using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Fed.Core.Scoring;

/// <summary>
/// THE key/value format of predictions in Redis, shared by every writer (batch load-redis, streaming, online serving)
/// and every reader (lookup, serving). Change it here only.
/// <list type="bullet">
/// <item><c>fed:pred:{&lt;model_id&gt;:v&lt;version&gt;:&lt;sample_id&gt;}</c> → <see cref="PredictionRecord"/> JSON (optionally with a TTL).
/// The braces are literal: a Redis Cluster hash tag. Every key about one prediction (this record, the streaming path's
/// incomplete record <c>fed:incomplete:{...}</c> with the same tag) is in one slot, so one atomic script can read one and
/// write the other; different samples spread over all slots (and masters).</item>
/// <item><c>fed:pred:&lt;model_id&gt;:active</c> → the version number (decimal text) that lookups by model id alone use.
/// A writer sets it only after every record of that version is written, so a reader never sees a half-loaded version.
/// Deliberately not tagged with the records: one slot for a model's pointer and records would put a whole model's
/// predictions on one master. It is read first, on its own (the record key depends on it).</item>
/// </list>
/// The sample id is the last part inside the tag and may itself contain ':' (or a '}', which only shortens the tag,
/// the same way for every key of that prediction).
/// </summary>
public static class PredictionKeys
{
    public const string Prefix = "fed:pred:";

    public static string Record(string modelId, int version, string sampleId) => Prefix + Tag(modelId, version, sampleId);

    /// <summary>The hash tag of one prediction, braces included: <c>{model_id:vN:sample_id}</c>.</summary>
    public static string Tag(string modelId, int version, string sampleId) =>
        $"{{{Identifiers.ModelId(modelId)}:v{version.ToString(CultureInfo.InvariantCulture)}:{sampleId}}}";

    public static string ActiveVersion(string modelId) => $"{Prefix}{Identifiers.ModelId(modelId)}:active";
}

/// <summary>One prediction as stored in Redis (see <see cref="PredictionKeys"/>). Doubles are written round-trippable.</summary>
public sealed record PredictionRecord
{
    [JsonPropertyName("model_id")] public required string ModelId { get; init; }
    [JsonPropertyName("version")] public required int Version { get; init; }
    [JsonPropertyName("sample_id")] public required string SampleId { get; init; }
    /// <summary>P(class 1) for logistic, the value for linear, the top class's probability for softmax.</summary>
    [JsonPropertyName("predict_value")] public required double PredictValue { get; init; }
    /// <summary>Softmax only: the predicted class label.</summary>
    [JsonPropertyName("predicted_class")] public string? PredictedClass { get; init; }
    /// <summary>Softmax only: class label → probability, in the model's class order.</summary>
    [JsonPropertyName("probabilities")] public Dictionary<string, double>? Probabilities { get; init; }
    [JsonPropertyName("dt")] public string? Dt { get; init; }
    [JsonPropertyName("hour")] public string? Hour { get; init; }
    /// <summary>Which path wrote it: batch, streaming, online.</summary>
    [JsonPropertyName("source")] public string Source { get; init; } = "batch";
    /// <summary>UTC, ISO 8601. The streaming path writes the request's event time here (not the clock), so that a
    /// replayed request writes the same bytes (idempotent writes).</summary>
    [JsonPropertyName("written_at")] public required string WrittenAt { get; init; }
    /// <summary>Streaming only: the request (event) id the prediction answers; null (absent) elsewhere.</summary>
    [JsonPropertyName("event_id")] public string? EventId { get; init; }
    /// <summary>Streaming only: the parties whose partial scores were combined, in model order; null (absent) elsewhere.</summary>
    [JsonPropertyName("parties")] public string[]? Parties { get; init; }

    static readonly JsonSerializerOptions Options = new() { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    public string ToJson() => JsonSerializer.Serialize(this, Options);

    public static PredictionRecord Parse(string json, string key)
    {
        try
        {
            return JsonSerializer.Deserialize<PredictionRecord>(json, Options) ?? throw new JsonException("null");
        }
        catch (JsonException e)
        {
            throw new FedFailureException($"Redis key '{key}' does not hold a Fed prediction record: {e.Message}", e);
        }
    }
}
