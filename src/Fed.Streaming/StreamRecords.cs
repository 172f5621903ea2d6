using Fed.Core;
using Fed.Core.Model;
using Fed.Core.Scoring;

namespace Fed.Streaming;

/// <summary>
/// How the streaming path writes to Redis. Predictions use the shared format (<see cref="PredictionKeys"/>,
/// <see cref="PredictionRecord"/>, source "streaming"); incomplete requests get a distinct key that never holds a score.
/// </summary>
public static class StreamRecords
{
    public const string IncompletePrefix = "fed:incomplete:";

    /// <summary><c>fed:incomplete:{model_id}:v{version}:{sample_id}</c>: the explicit status of a request whose parties did not all answer.</summary>
    public static string IncompleteKey(string modelId, int version, string sampleId) =>
        $"{IncompletePrefix}{Identifiers.ModelId(modelId)}:v{version}:{sampleId}";

    /// <summary>The record of a combined request. Deterministic: written_at is the request's event time, so a replay writes the same bytes.</summary>
    public static PredictionRecord Prediction(ModelSignature sig, string sampleId, string eventId, Prediction p, string eventTime) => new()
    {
        ModelId = sig.ModelId, Version = sig.Version, SampleId = sampleId, PredictValue = p.Value,
        PredictedClass = PartialModel.HasClasses(sig.Kind) ? sig.Classes[p.PredictedClass] : null,
        Probabilities = PartialModel.HasClasses(sig.Kind) && p.Probabilities is { } probs
            ? sig.Classes.Select((c, i) => (c, i)).ToDictionary(x => x.c, x => probs[x.i]) : null,
        Source = "streaming", WrittenAt = eventTime, EventId = eventId, Parties = sig.Parties,
    };
}
