using Fed.Core;
using Fed.Core.Model;

namespace Fed.Training.Horizontal;

/// <summary>Whom DP protects. Record: a customer or patient (DP-SGD inside each client). Client: a whole organisation
/// (DP-FedAvg: each client's update clipped, Gaussian noise on the sum).</summary>
public enum DpLevel { Record, Client }

/// <summary>Hyper-parameters of a horizontal (FedAvg) training. The coordinator sends them to every client in the plan.</summary>
public sealed record HorizontalOptions
{
    public ModelKind Kind { get; init; } = ModelKind.Logistic;
    /// <summary>Softmax class labels (as written in the label column); the coordinator fixes them for every client.</summary>
    public string[] Classes { get; init; } = [];
    /// <summary>FedAvg rounds at most (the coordinator may stop earlier on convergence).</summary>
    public int Rounds { get; init; } = 100;
    /// <summary>Local passes over a client's training rows per round.</summary>
    public int LocalEpochs { get; init; } = 1;
    /// <summary>Rows per local mini-batch (expected rows per step with DP's Poisson sampling); 0 = the client's whole training set.</summary>
    public int BatchSize { get; init; } = 0;
    public double LearningRate { get; init; } = 0.5;
    /// <summary>L2 penalty alpha on the mean loss: loss += alpha/2 ||w||^2 (intercepts excluded). 1/n_train matches
    /// scikit-learn's LogisticRegression(C=1) and Ridge(alpha=1).</summary>
    public double L2 { get; init; } = 0.001;
    /// <summary>Stop when the weighted mean training loss changes less than this between rounds (not with DP).</summary>
    public double Tolerance { get; init; } = 1e-7;
    public int Seed { get; init; } = 42;
    /// <summary>Rows with crc32(id) % 10 &lt; TestBuckets are held out at every client.</summary>
    public int TestBuckets { get; init; } = 3;
    /// <summary>DP target epsilon for the whole training (null: no DP), per record or per client (<see cref="DpLevel"/>).</summary>
    public double? DpEpsilon { get; init; }
    public DpLevel DpLevel { get; init; } = DpLevel.Record;
    public double DpDelta { get; init; } = 1e-5;
    /// <summary>Clipping norm C: of each row's gradient (record level, DP-SGD) or of each client's whole update
    /// theta_local - theta_global (client level).</summary>
    public double DpClip { get; init; } = 1.0;
    /// <summary>Fewest clients whose sum an aggregation server may see: with one, the "sum" would be that client's update.</summary>
    public int MinClientsPerGroup { get; init; } = 2;
    public string ModelId { get; init; } = "fed-model";
    public int Version { get; init; } = 1;

    public bool Dp => DpEpsilon is not null;
    public bool RecordDp => Dp && DpLevel == DpLevel.Record;
    public bool ClientDp => Dp && DpLevel == DpLevel.Client;

    public static string LevelName(DpLevel l) => l == DpLevel.Client ? "client" : "record";

    public static DpLevel ParseLevel(string s) => s switch
    {
        "record" => DpLevel.Record,
        "client" => DpLevel.Client,
        _ => throw new BadInputException($"--dp-level must be record or client, got '{ErrorText.Cut(s)}'"),
    };
    public int Outputs => Kind == ModelKind.Softmax ? Classes.Length : 1;

    public void Validate()
    {
        if (Rounds < 1) throw new BadInputException($"--rounds must be >= 1, got {Rounds}");
        if (LocalEpochs < 1) throw new BadInputException($"--local-epochs must be >= 1, got {LocalEpochs}");
        if (BatchSize < 0) throw new BadInputException($"--batch-size must be >= 0 (0 = full batch), got {BatchSize}");
        if (!(LearningRate > 0) || !double.IsFinite(LearningRate)) throw new BadInputException($"--learning-rate must be > 0, got {LearningRate}");
        if (!(L2 >= 0)) throw new BadInputException($"--l2 must be >= 0, got {L2}");
        if (!(Tolerance >= 0)) throw new BadInputException($"--tolerance must be >= 0, got {Tolerance}");
        if (TestBuckets is < 0 or > 9) throw new BadInputException($"--test-buckets must be in [0, 9], got {TestBuckets}");
        if (MinClientsPerGroup < 2) throw new BadInputException($"min clients per aggregation group must be >= 2 (one client's sum is its update), got {MinClientsPerGroup}");
        if (Kind == ModelKind.Softmax && Classes.Length < 2) throw new BadInputException("softmax needs at least 2 classes");
        if (Kind != ModelKind.Softmax && Classes.Length != 0) throw new BadInputException("classes apply to softmax only");
        if (DpEpsilon is { } e && !(e > 0 && double.IsFinite(e))) throw new BadInputException($"--dp-epsilon must be > 0, got {e}");
        if (DpLevel == DpLevel.Client && DpEpsilon is null) throw new BadInputException("--dp-level client needs --dp-epsilon");
        if (!(DpDelta > 0 && DpDelta < 1)) throw new BadInputException($"--dp-delta must be in (0, 1), got {DpDelta}");
        if (!(DpClip > 0 && double.IsFinite(DpClip))) throw new BadInputException($"--dp-clip must be > 0, got {DpClip}");
        Identifiers.ModelId(ModelId);
        if (Version < 1) throw new BadInputException($"--model-version must be >= 1, got {Version}");
    }
}
