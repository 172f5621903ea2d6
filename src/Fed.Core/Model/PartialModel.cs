namespace Fed.Core.Model;

/// <summary>Logistic and linear: one output. Softmax and one-vs-rest: one output per class (one-vs-rest: an independent
/// sigmoid per class, predicted class = the first class of highest probability, as FATE's one-vs-rest does).</summary>
public enum ModelKind { Logistic, Linear, Softmax, OneVsRest }

public enum PartyRole { Guest, Host }

/// <summary>What the weights expect of a raw feature value before the dot product.</summary>
public enum TransformKind
{
    /// <summary>Weights apply to raw feature values (standardization, if any, was folded into them).</summary>
    None,
    /// <summary>Weights apply to (x - mean) / std with the party's own statistics, recorded in the file.</summary>
    Standardize,
}

/// <summary>What to do when a feature value is absent. There is no implicit 0.</summary>
public enum MissingPolicyKind
{
    /// <summary>The row is not scored; the missing feature is named.</summary>
    Reject,
    /// <summary>An explicit per-feature raw default, recorded with the model, is used and counted in coverage.</summary>
    Default,
}

public sealed record FeatureTransform(TransformKind Kind, double[]? Mean = null, double[]? Std = null)
{
    public static readonly FeatureTransform Identity = new(TransformKind.None);
}

public sealed record MissingPolicy(MissingPolicyKind Kind, double[]? Defaults = null)
{
    public static readonly MissingPolicy RejectRow = new(MissingPolicyKind.Reject);
}

/// <summary>
/// One party's part of a vertically federated model: the weights for its own features and, on the guest
/// only, the intercepts. Immutable once built; <see cref="ModelFile"/> reads and writes it.
/// Weights are class-major: <c>Weights[c][f]</c> is the weight of feature f for output c
/// (one output for logistic and linear, one per class for softmax).
/// </summary>
public sealed class PartialModel
{
    public const int CurrentSchemaVersion = 1;

    public required string ModelId { get; init; }
    public required int Version { get; init; }
    public required ModelKind Kind { get; init; }
    /// <summary>Class labels, softmax and one-vs-rest only (in output order); empty otherwise.</summary>
    public string[] Classes { get; init; } = [];
    public required string PartyId { get; init; }
    public required PartyRole Role { get; init; }
    /// <summary>Every party of the model, guest first: the combiner refuses a score unless all of them answered.</summary>
    public required string[] Parties { get; init; }
    public required string[] Features { get; init; }
    public required double[][] Weights { get; init; }
    /// <summary>One per output on the guest; empty on a host.</summary>
    public double[] Intercepts { get; init; } = [];
    public FeatureTransform Transform { get; init; } = FeatureTransform.Identity;
    public MissingPolicy Missing { get; init; } = MissingPolicy.RejectRow;
    /// <summary>Free-form training metadata (algorithm, iterations, loss, created_at, ...).</summary>
    public SortedDictionary<string, string> Training { get; init; } = new(StringComparer.Ordinal);
    /// <summary>"sha256:&lt;hex&gt;" of the canonical content; filled in by <see cref="ModelFile"/>.</summary>
    public string? Checksum { get; init; }

    public int OutputCount => HasClasses(Kind) ? Classes.Length : 1;

    /// <summary>Softmax and one-vs-rest models carry class labels and one output per class.</summary>
    public static bool HasClasses(ModelKind kind) => kind is ModelKind.Softmax or ModelKind.OneVsRest;

    public static string KindName(ModelKind kind) => kind switch
    {
        ModelKind.Logistic => "logistic",
        ModelKind.Linear => "linear",
        ModelKind.Softmax => "softmax",
        ModelKind.OneVsRest => "one-vs-rest",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    public static bool TryParseKind(string? s, out ModelKind kind)
    {
        switch (s)
        {
            case "logistic": kind = ModelKind.Logistic; return true;
            case "linear": kind = ModelKind.Linear; return true;
            case "softmax": kind = ModelKind.Softmax; return true;
            case "one-vs-rest": kind = ModelKind.OneVsRest; return true;
            default: kind = default; return false;
        }
    }

    public static string RoleName(PartyRole role) => role == PartyRole.Guest ? "guest" : "host";
}
