using Fed.Core;

namespace Fed.Serving;

/// <summary>Where a party's answer comes from.</summary>
public enum PredictionMode
{
    /// <summary>Scored now from features sent inline or read from the party's feature table.</summary>
    Realtime,
    /// <summary>Scored now from the party's latest hourly feature snapshot.</summary>
    Hourly,
    /// <summary>The party's precomputed partial scores (newest dt).</summary>
    Offline,
}

public static class PredictionModes
{
    public static PredictionMode Parse(string? s) => s switch
    {
        "realtime" => PredictionMode.Realtime,
        "hourly" => PredictionMode.Hourly,
        "offline" => PredictionMode.Offline,
        _ => throw new BadInputException($"unknown mode '{s}'; expected realtime, hourly or offline"),
    };

    public static string Name(PredictionMode m) => m switch
    {
        PredictionMode.Realtime => "realtime",
        PredictionMode.Hourly => "hourly",
        _ => "offline",
    };
}

/// <summary>Per-sample answer of a party and of the initiator.</summary>
public static class SampleStatus
{
    public const string Ok = "ok";
    public const string NotFound = "sample_not_found";
    public const string FeaturesMissing = "features_missing";
    /// <summary>Party with an agreed population for the caller and model: the one answer for a sample outside it or
    /// missing at the party, so the caller cannot tell which.</summary>
    public const string NotScored = "not_scored";
    /// <summary>Initiator only: at least one party did not answer (timeout, error): no score.</summary>
    public const string PartialFailure = "partial_failure";
}
