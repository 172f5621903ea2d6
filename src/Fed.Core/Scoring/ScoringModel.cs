using Fed.Core.Model;

namespace Fed.Core.Scoring;

/// <summary>What the combiner needs to know about a model: kind, classes and the full, ordered set of parties.</summary>
public sealed record ModelSignature(string ModelId, int Version, ModelKind Kind, string[] Classes, string[] Parties)
{
    public int OutputCount => PartialModel.HasClasses(Kind) ? Classes.Length : 1;
}

/// <summary>
/// One party's model in the form every scoring path uses: weights in raw-feature space
/// (a standardization is folded in once, here) and one constant per output
/// (the intercept on the guest; on a host, the offset the folding produced, else 0).
/// The warehouse tables hold exactly these numbers, so a model read back from any warehouse is this object, bit for bit.
/// </summary>
public sealed class ScoringModel
{
    public required string ModelId { get; init; }
    public required int Version { get; init; }
    public required ModelKind Kind { get; init; }
    public required string[] Classes { get; init; }
    public required string PartyId { get; init; }
    public required PartyRole Role { get; init; }
    public required string[] Parties { get; init; }
    public required string[] Features { get; init; }
    /// <summary>Class-major raw-space weights: Weights[c][f].</summary>
    public required double[][] Weights { get; init; }
    /// <summary>Constant term per output, added first.</summary>
    public required double[] Constants { get; init; }
    public required MissingPolicy Missing { get; init; }
    /// <summary>Checksum of the model file this came from.</summary>
    public required string Checksum { get; init; }

    public int FeatureCount => Features.Length;
    public int OutputCount => Constants.Length;
    public ModelSignature Signature => new(ModelId, Version, Kind, Classes, Parties);

    /// <summary>Warehouse column of each feature (<see cref="Identifiers.ColumnFor"/>), in feature order.</summary>
    public string[] Columns => Features.Select(Identifiers.ColumnFor).ToArray();

    /// <summary>Folds the model into raw feature space. A weight or constant that would not be finite there (a huge weight
    /// divided by a tiny std, an overflowing w·mean) is refused, naming the feature: every read of a model file does this.</summary>
    public static ScoringModel From(PartialModel m, string? source = null)
    {
        var outputs = m.OutputCount;
        var k = m.Features.Length;
        var weights = new double[outputs][];
        var constants = new double[outputs];
        for (var c = 0; c < outputs; c++)
        {
            weights[c] = (double[])m.Weights[c].Clone();
            constants[c] = m.Role == PartyRole.Guest ? m.Intercepts[c] : 0.0;
            if (m.Transform.Kind == TransformKind.Standardize)
            {
                // w·(x-mean)/std = (w/std)·x - Σ (w/std)·mean: fold once so that SQL engines need no transform.
                for (var f = 0; f < k; f++)
                {
                    weights[c][f] = m.Weights[c][f] / m.Transform.Std![f];
                    constants[c] -= weights[c][f] * m.Transform.Mean![f];
                    if (!double.IsFinite(weights[c][f]) || !double.IsFinite(constants[c]))
                        throw new ModelFormatException(source ?? $"<model {m.ModelId}>", $"weights[{c}][{f}]",
                            $"feature '{ErrorText.Cut(m.Features[f], 80)}': in raw feature space (weight / std = {weights[c][f]:R}, constant {constants[c]:R}) " +
                            "the model is not finite; scores would be infinite or NaN. Retrain or rescale this feature");
                }
            }
        }
        // -0.0 becomes +0.0: some engines (SQLite) do not keep the sign of zero, and it never changes a score's value.
        foreach (var row in weights) Canonical(row);
        Canonical(constants);
        var missing = m.Missing.Defaults is { } d ? m.Missing with { Defaults = Canonical((double[])d.Clone()) } : m.Missing;
        return new ScoringModel
        {
            ModelId = m.ModelId, Version = m.Version, Kind = m.Kind, Classes = m.Classes, PartyId = m.PartyId, Role = m.Role,
            Parties = m.Parties, Features = m.Features, Weights = weights, Constants = constants, Missing = missing,
            Checksum = m.Checksum ?? ModelFile.ComputeChecksum(m),
        };
    }

    static double[] Canonical(double[] values)
    {
        for (var i = 0; i < values.Length; i++) values[i] += 0.0;
        return values;
    }

    /// <summary>Bit-for-bit equality of everything that affects a score (used to prove warehouse round trips).</summary>
    public bool BitEquals(ScoringModel o)
    {
        static bool Same(double[] a, double[] b) =>
            a.Length == b.Length && a.Zip(b).All(p => BitConverter.DoubleToInt64Bits(p.First) == BitConverter.DoubleToInt64Bits(p.Second));
        return ModelId == o.ModelId && Version == o.Version && Kind == o.Kind && PartyId == o.PartyId && Role == o.Role
            && Classes.SequenceEqual(o.Classes) && Parties.SequenceEqual(o.Parties) && Features.SequenceEqual(o.Features)
            && Weights.Length == o.Weights.Length && Weights.Zip(o.Weights).All(p => Same(p.First, p.Second))
            && Same(Constants, o.Constants) && Missing.Kind == o.Missing.Kind
            && Same(Missing.Defaults ?? [], o.Missing.Defaults ?? []) && Checksum == o.Checksum;
    }
}
