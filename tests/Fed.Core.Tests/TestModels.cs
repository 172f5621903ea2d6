using Fed.Core.Model;

namespace Fed.Core.Tests;

/// <summary>Deterministic partial models for tests.</summary>
public static class TestModels
{
    public static PartialModel Make(string party = "guest", PartyRole role = PartyRole.Guest, int k = 5, ModelKind kind = ModelKind.Logistic,
        string[]? classes = null, int seed = 1, FeatureTransform? transform = null, MissingPolicy? missing = null, int version = 1,
        string[]? parties = null)
    {
        var rng = new Random(seed);
        classes ??= PartialModel.HasClasses(kind) ? ["a", "b", "c"] : [];
        var outputs = PartialModel.HasClasses(kind) ? classes.Length : 1;
        return ModelFile.Stamp(new PartialModel
        {
            ModelId = "m1", Version = version, Kind = kind, Classes = classes, PartyId = party, Role = role,
            Parties = parties ?? (role == PartyRole.Guest ? [party, "host"] : ["guest", party]),
            Features = Enumerable.Range(0, k).Select(i => $"{party}_f{i}").ToArray(),
            Weights = Enumerable.Range(0, outputs).Select(_ => Enumerable.Range(0, k).Select(_ => rng.NextDouble() * 2 - 1).ToArray()).ToArray(),
            Intercepts = role == PartyRole.Guest ? Enumerable.Range(0, outputs).Select(_ => rng.NextDouble() - 0.5).ToArray() : [],
            Transform = transform ?? FeatureTransform.Identity,
            Missing = missing ?? MissingPolicy.RejectRow,
            Training = new SortedDictionary<string, string>(StringComparer.Ordinal) { ["algorithm"] = "test" },
        });
    }
}
