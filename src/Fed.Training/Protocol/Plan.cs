using Fed.Core;
using Fed.Core.Model;
using Fed.Training.Train;

namespace Fed.Training.Protocol;

/// <summary>Host -> guest, answer to <see cref="Hello"/>: the host's feature count (the plan carries every party's,
/// so each party checks the minimum-batch rule and the arbiter knows how many values each may have decrypted).</summary>
public sealed record HostInfo(int Features);

/// <summary>Guest -> hosts, first message: which PSI and which model kind (a host refuses a kind it was not configured for).</summary>
public sealed record Hello(string Psi, string Kind, string Guest, string[] Hosts, string Arbiter);

/// <summary>Guest -> hosts and arbiter after alignment: everything a party needs to follow the training (control values only).</summary>
public sealed record Plan(
    string Kind, string[] Classes, int Outputs, int Aligned, int TrainRows, int TestBuckets,
    int MaxIter, double LearningRate, double L2, int BatchSize, double Tolerance, double? LossThreshold,
    int Seed, int KeyBits, int FeatureBits, string ModelId, int Version, string[] Parties, int[] Features)
{
    public static Plan From(TrainOptions o, string[] classes, int outputs, int aligned, int train, string[] parties, int[] features) =>
        new(PartialModel.KindName(o.Kind), classes, outputs, aligned, train, o.TestBuckets, o.MaxIter, o.LearningRate, o.L2,
            o.BatchSize, o.Tolerance, o.LossThreshold, o.Seed, o.KeyBits, o.FeatureBits, o.ModelId, o.Version, parties, features);

    /// <summary>The minimum-batch rule on the plan's feature counts (guest first), as each party checks it.</summary>
    public void CheckBatch(string who)
    {
        if (Features is null || Features.Length != Parties.Length) throw new FedFailureException($"protocol error: {who}: the plan lacks the parties' feature counts");
        BatchPlan.CheckBatch(TrainRows, BatchSize, Features[0], Features[1..], who);
    }

    /// <summary>How many gradient ciphertexts party p (index in <see cref="Parties"/>) has decrypted per batch:
    /// one per output and feature, plus the guest's intercepts.</summary>
    public int GradientCount(int p) => Outputs * (Features[p] + (p == 0 ? 1 : 0));

    public TrainOptions ToOptions()
    {
        PartialModel.TryParseKind(Kind, out var kind);
        return new TrainOptions
        {
            Kind = kind, MaxIter = MaxIter, LearningRate = LearningRate, L2 = L2, BatchSize = BatchSize, Tolerance = Tolerance,
            LossThreshold = LossThreshold, Seed = Seed, KeyBits = KeyBits, FeatureBits = FeatureBits, TestBuckets = TestBuckets,
            ModelId = ModelId, Version = Version,
        };
    }
}

/// <summary>Arbiter -> parties after each epoch. The aggregate loss goes to the guest only (for its report).</summary>
/// Restart: the loss rose, every party resets its optimizer's momentum.
public sealed record Decision(int Epoch, bool Stop, string? Reason, double? Loss, bool Restart = false);

/// <summary>What one party ends with.</summary>
public sealed class PartyOutcome
{
    public required string Party { get; init; }
    public PartialModel? Model { get; init; }
    public List<double> Losses { get; init; } = [];
    public int Intersection { get; init; }
    public int TrainRows { get; init; }
    public int TestRows { get; init; }
    public string StopReason { get; init; } = "";
    /// <summary>Data parties: per feature, the blank values of the training rows filled with the training mean.</summary>
    public Dictionary<string, long> FilledWithMean { get; init; } = new();
    public Dictionary<string, double> Seconds { get; init; } = new();
    /// <summary>Standardized weights (what the protocol trained), for comparisons with the plain trainer.</summary>
    public Train.PartyWeights? Weights { get; init; }
    /// <summary>The guest's held-out evaluation (null when no row was held out).</summary>
    public Train.Holdout? Holdout { get; init; }
    /// <summary>Transfer learning only: the party's part on customers only the other party holds (over the common features).</summary>
    public PartialModel? Completion { get; init; }
}
