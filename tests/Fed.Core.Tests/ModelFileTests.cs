using System.Text.Json.Nodes;
using Fed.Core.Model;

namespace Fed.Core.Tests;

public class ModelFileTests
{
    static string Tmp() => Path.Combine(Path.GetTempPath(), $"fed-model-{Guid.NewGuid():N}.json");

    [Fact]
    public void WriteThenReadRoundTripsEveryBit()
    {
        var m = TestModels.Make(kind: ModelKind.Softmax, k: 7, transform: new FeatureTransform(TransformKind.Standardize,
            [0.1, 1e-300, -2.5e307, double.Epsilon, 1 / 3.0, 5, 6], [1, 2, 3, 4, 5, 6, 7]));
        var path = Tmp();
        ModelFile.Write(m, path);
        var back = ModelFile.Read(path);
        Assert.Equal(m.Checksum, back.Checksum);
        for (var c = 0; c < m.OutputCount; c++)
            Assert.Equal(m.Weights[c].Select(BitConverter.DoubleToInt64Bits), back.Weights[c].Select(BitConverter.DoubleToInt64Bits));
        Assert.Equal(m.Transform.Mean!.Select(BitConverter.DoubleToInt64Bits), back.Transform.Mean!.Select(BitConverter.DoubleToInt64Bits));
        Assert.Equal(["a", "b", "c"], back.Classes);
        Assert.Equal("test", back.Training["algorithm"]);
        File.Delete(path);
    }

    public static TheoryData<string, Action<JsonObject>, string> Malformed => new()
    {
        { "schema_version", j => j["schema_version"] = 99, "unknown schema version 99" },
        { "kind", j => j["kind"] = "tree", "unknown kind 'tree'" },
        { "weights[0][1]", j => j["weights"]![0]![1] = "NaN", "not a finite number" },
        { "weights[0][2]", j => j["weights"]![0]![2] = JsonNode.Parse("1e999"), "not a finite number" },
        { "features[1]", j => j["features"]![1] = "guest_f0", "duplicate 'guest_f0'" },
        { "weights[0]", j => j["weights"]![0]!.AsArray().RemoveAt(0), "does not match the 5 features" },
        { "checksum", j => j["weights"]![0]![0] = 0.123, "mismatch" },
        { "intercepts", j => j["intercepts"] = new JsonArray(), "one intercept per output" },
        { "party.role", j => j["party"]!["role"] = "arbiter", "unknown role" },
        { "model_id", j => j["model_id"] = "m1'; DROP TABLE x; --", "invalid model id" },
        { "parties", j => j["parties"] = new JsonArray("host", "guest"), "must be listed first" },
        { "transform.std[0]", j => { j["transform"] = JsonNode.Parse("""{"kind":"standardize","mean":[0,0,0,0,0],"std":[0,1,1,1,1]}"""); }, "must be > 0" },
        { "missing.defaults", j => j["missing"] = JsonNode.Parse("""{"policy":"default","defaults":[1]}"""), "does not match the 5 features" },
        { "version", j => j.Remove("version"), "missing" },
        { "frobnicate", j => j["frobnicate"] = 1, "unknown field" },
        { "classes", j => j["classes"] = new JsonArray("x"), "only softmax" },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public void MalformedFileIsRejectedNamingFileAndField(string field, Action<JsonObject> corrupt, string problem)
    {
        var path = Tmp();
        ModelFile.Write(TestModels.Make(), path);
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        corrupt(json);
        File.WriteAllText(path, json.ToJsonString());
        var e = Assert.Throws<ModelFormatException>(() => ModelFile.Read(path));
        Assert.Equal(path, e.File);
        Assert.Equal(field, e.Field);
        Assert.Contains(problem, e.Message);
        Assert.Equal(2, e.ExitCode);
        File.Delete(path);
    }

    [Fact]
    public void TruncatedFileIsRejectedAsInvalidJson()
    {
        var path = Tmp();
        ModelFile.Write(TestModels.Make(), path);
        var text = File.ReadAllText(path);
        File.WriteAllText(path, text[..(text.Length / 2)]);
        var e = Assert.Throws<ModelFormatException>(() => ModelFile.Read(path));
        Assert.Contains("not valid JSON", e.Message);
        Assert.Contains(path, e.Message);
        File.Delete(path);
    }

    [Fact]
    public void WritingAnInvalidModelLeavesNoFile()
    {
        var path = Tmp();
        var bad = TestModels.Make();
        var m = new PartialModel
        {
            ModelId = bad.ModelId, Version = bad.Version, Kind = bad.Kind, PartyId = bad.PartyId, Role = bad.Role, Parties = bad.Parties,
            Features = bad.Features, Weights = [[double.NaN, 0, 0, 0, 0]], Intercepts = bad.Intercepts,
        };
        Assert.ThrowsAny<BadInputException>(() => ModelFile.Write(m, path));
        Assert.False(File.Exists(path));
        Assert.Empty(Directory.GetFiles(Path.GetTempPath(), Path.GetFileName(path) + "*"));
    }

    [Fact]
    public void FeatureNamesThatCollideAsColumnsAreRejected()
    {
        var m = TestModels.Make(k: 2);
        var json = JsonNode.Parse(ModelFile.Serialize(m, false))!.AsObject();
        json["features"] = new JsonArray("a.b", "a_b");
        var e = Assert.Throws<ModelFormatException>(() => ModelFile.Parse(json.ToJsonString(), "x.json"));
        Assert.Equal("features[1]", e.Field);
    }

    [Fact]
    public void UnstampedFileFromAnotherExporterIsValidatedAndStamped()
    {
        var m = TestModels.Make();
        var json = JsonNode.Parse(ModelFile.Serialize(m, false))!.AsObject();
        json["checksum"] = "";
        var stamped = ModelFile.ParseUnstamped(json.ToJsonString(), "x.json");
        Assert.Equal(m.Checksum, stamped.Checksum);
        Assert.Throws<ModelFormatException>(() => ModelFile.Parse(json.ToJsonString(), "x.json"));
    }
}
