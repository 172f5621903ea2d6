using System.Text.Json.Serialization;
using Fed.Core;
using Fed.Core.Model;

namespace Fed.Training.Horizontal;

/// <summary>Client -> aggregator -> coordinator before the plan: the feature columns (names only) a party holds.</summary>
public sealed record Hello(string[] Features, int Clients);

/// <summary>Coordinator -> aggregators -> clients: everything a party needs to follow the training (control values only).</summary>
public sealed record HorizontalPlan(
    string Kind, string[] Classes, int Rounds, int LocalEpochs, int BatchSize, double LearningRate, double L2,
    double Tolerance, int Seed, int TestBuckets, double? DpEpsilon, double DpDelta, double DpClip, int MinClientsPerGroup,
    string ModelId, int Version, string[] Features, string[] Aggregators, string Coordinator, byte[] Session, string DpLevel)
{
    public static HorizontalPlan From(HorizontalOptions o, string[] features, string[] aggregators, string coordinator, byte[] session) =>
        new(PartialModel.KindName(o.Kind), o.Classes, o.Rounds, o.LocalEpochs, o.BatchSize, o.LearningRate, o.L2, o.Tolerance,
            o.Seed, o.TestBuckets, o.DpEpsilon, o.DpDelta, o.DpClip, o.MinClientsPerGroup, o.ModelId, o.Version, features,
            aggregators, coordinator, session, HorizontalOptions.LevelName(o.DpLevel));

    public HorizontalOptions ToOptions()
    {
        // A party checks the plan it is sent as it checks its own config: an unknown kind is refused, never defaulted.
        if (!PartialModel.TryParseKind(Kind, out var kind)) throw new BadInputException($"plan: kind must be logistic, linear or softmax, got '{Kind}'");
        var o = new HorizontalOptions
        {
            Kind = kind, Classes = Classes, Rounds = Rounds, LocalEpochs = LocalEpochs, BatchSize = BatchSize, LearningRate = LearningRate,
            L2 = L2, Tolerance = Tolerance, Seed = Seed, TestBuckets = TestBuckets, DpEpsilon = DpEpsilon, DpDelta = DpDelta, DpClip = DpClip,
            MinClientsPerGroup = MinClientsPerGroup, ModelId = ModelId, Version = Version, DpLevel = HorizontalOptions.ParseLevel(DpLevel),
        };
        o.Validate();
        return o;
    }
}

/// <summary>
/// A step of the training, sent down the tree (coordinator -> aggregators -> clients). Every step but "stop" asks each
/// client for a vector that goes up only as part of a secure sum:
/// "mean": per feature (and, for linear, the target) the count of present values and their sum;
/// "var": the sum of squared deviations from <see cref="Mean"/>;
/// "round": FedAvg from <see cref="Theta"/>: n * theta_local, n and n * loss(theta); with client-level DP instead
/// clip(theta_local - theta) + the client's share of the noise, 1 and 0 (every client weighs the same);
/// "stop": the final global model, for every participant to keep.
/// </summary>
public sealed record Command(
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("step")] string Step,
    [property: JsonPropertyName("round")] int Round = 0,
    [property: JsonPropertyName("attempt")] int Attempt = 0,
    [property: JsonPropertyName("live")] string[]? Live = null,
    [property: JsonPropertyName("mean")] double[]? Mean = null,
    [property: JsonPropertyName("std")] double[]? Std = null,
    [property: JsonPropertyName("theta")] double[]? Theta = null,
    [property: JsonPropertyName("reason")] string? Reason = null);

/// <summary>Beside a masked vector: which step and attempt it answers and how many ring elements it has.</summary>
public sealed record SumHeader(string Step, int Attempt, int Length, int Clients);
