using System.Globalization;
using System.Text.Json.Nodes;

namespace Fed.EndToEnd.Tests;

/// <summary>
/// What every prediction path must hold to, on one model and one feature set (<see cref="AllPaths"/> runs them once):
/// the same bits as `fed predict local`, no value for a sample some party lacks, and nothing crossing a party
/// boundary but partial scores and their bookkeeping.
/// </summary>
public abstract class CrossPathChecks<T>(T run) : IClassFixture<T> where T : AllPaths
{
    [Fact]
    public void Daily_hourly_streaming_and_online_predictions_equal_predict_local_bit_for_bit()
    {
        var reference = run.Reference;
        Assert.True(reference.Count > 400, $"only {reference.Count} samples combine");
        // with several parties, each lacks some of the others' ids: those must never get a score; one party lacks none
        Assert.Equal(run.Parties.Length > 1, run.OneSided.Count > 0);
        Assert.Equal(["daily batch", "hourly batch", "streaming", "online"], run.Paths.Keys);
        foreach (var (path, got) in run.Paths)
        {
            Assert.True(reference.Keys.Order().SequenceEqual(got.Keys.Order()),
                $"{path}: {got.Count} predictions for {reference.Count} complete samples; extra {string.Join(",", got.Keys.Except(reference.Keys).Take(5))}, missing {string.Join(",", reference.Keys.Except(got.Keys).Take(5))}");
            foreach (var (id, want) in reference)
                Assert.True(BitConverter.DoubleToInt64Bits(want) == BitConverter.DoubleToInt64Bits(got[id]),
                    $"{path}, sample {id}: {got[id]:R} but fed predict local says {want:R}");
        }
    }

    /// <summary>
    /// Everything a party sent out in the run (partial-score files and manifests, Kafka partial-score messages,
    /// its online answers) has only the fields of the documented formats, and no number in it is one of that
    /// party's feature values. Feature names may cross (coverage names a missing feature); values and weights never.
    /// </summary>
    [Fact]
    public void Only_partial_scores_and_their_bookkeeping_cross_a_party_boundary()
    {
        foreach (var party in run.Parties)
        {
            var sent = run.Sent[party];
            Assert.True(sent.Count >= 4, $"{party}: captured {sent.Count} outgoing payloads"); // file, manifest, >=1 message, answer
            var features = run.FeatureValues[party];
            Assert.True(features.Count > 1000, $"{party}: {features.Count} distinct feature values to look for");
            foreach (var (what, text) in sent)
            {
                IEnumerable<double> numbers;
                if (what.EndsWith(".csv"))
                {
                    var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
                    Assert.Equal("sample_id,partial_score", lines[0]);
                    Assert.All(lines, l => Assert.Equal(2, l.Split(',').Length));
                    numbers = lines.Skip(1).Select(l => double.Parse(l[(l.IndexOf(',') + 1)..], CultureInfo.InvariantCulture));
                }
                else
                {
                    var node = JsonNode.Parse(text)!;
                    AssertOnlyKeys(what, node);
                    numbers = Numbers(node);
                }
                foreach (var v in numbers)
                    Assert.False(v != Math.Floor(v) && features.Contains(v), $"{party} sent its feature value {v:R} in {what}");
            }
        }
    }

    static IEnumerable<double> Numbers(JsonNode node) => node switch
    {
        JsonObject o => o.Select(kv => kv.Value).Where(v => v != null).SelectMany(v => Numbers(v!)),
        JsonArray a => a.Where(v => v != null).SelectMany(v => Numbers(v!)),
        JsonValue v when v.GetValueKind() == System.Text.Json.JsonValueKind.Number => [v.GetValue<double>()],
        _ => [],
    };

    static readonly HashSet<string> Allowed =
    [
        // partial-score manifest
        "model_id", "version", "party", "dt", "hour", "outputs", "row_count", "sha256", "data_file", "model_checksum", "coverage", "rejected", "written_at",
        "rows_seen", "rows_scored", "rows_rejected", "completeness", "missing_by_feature", "defaulted_by_feature", "sample_id", "feature",
        // Kafka partial score (mac: its party's HMAC, docs/streaming.md)
        "request_id", "scores", "event_time", "checksum", "mac",
        // online answer
        "mode", "results", "status", "missing_features",
    ];

    static void AssertOnlyKeys(string what, JsonNode node, bool namesAreFeatures = false)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var (k, v) in o)
                {
                    // Coverage maps are keyed by feature name and hold counts.
                    var featureMap = k is "missing_by_feature" or "defaulted_by_feature";
                    Assert.True(namesAreFeatures || Allowed.Contains(k), $"{what}: field '{k}' is not in the documented format");
                    if (v != null) AssertOnlyKeys(what, v, featureMap);
                }
                break;
            case JsonArray a:
                foreach (var v in a) if (v != null) AssertOnlyKeys(what, v);
                break;
        }
    }
}

/// <summary>The two-party (vertical) sample model on every path.</summary>
public sealed class CrossPathTests(TwoPartyPaths run) : CrossPathChecks<TwoPartyPaths>(run);

/// <summary>The one-party model of horizontal training (party "global") on every path: the same bits as
/// `fed predict local --models DIR --party global=CSV`.</summary>
public sealed class OnePartyCrossPathTests(OnePartyPaths run) : CrossPathChecks<OnePartyPaths>(run);
