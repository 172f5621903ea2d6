using System.Text.Json.Nodes;
using Fed.Core.Model;

namespace Fed.Cli.Tests;

/// <summary>Sample model files with one deliberate defect, correctly checksummed (so only the defect is refused).</summary>
public static class Models
{
    public static string Guest => Path.Combine(Harness.Samples, "guest.json");
    public static string Host => Path.Combine(Harness.Samples, "host.json");

    /// <summary>The sample guest with weights[0][feature] set to <paramref name="weight"/>, re-checksummed.</summary>
    public static string GuestWithWeight(string path, int feature, double weight) => WithWeight(Guest, path, feature, weight);

    /// <summary>A copy of a model file with weights[0][feature] changed, re-checksummed: same id and version, other content.</summary>
    public static string WithWeight(string source, string path, int feature, double weight)
    {
        var text = File.ReadAllText(source);
        var m = ModelFile.Parse(text, source);
        m.Weights[0][feature] = weight;
        var node = JsonNode.Parse(text)!;
        node["weights"]![0]![feature] = weight;
        node["checksum"] = ModelFile.ComputeChecksum(m);
        File.WriteAllText(path, node.ToJsonString());
        return path;
    }
}
