namespace Fed.Cli.Tests;

/// <summary>Issue 15 finding 4: combine refuses partial scores made with another model file than the registry's.</summary>
public class ProvenanceTests
{
    const string Dt = "2026-12-01";

    [Fact]
    public void Combine_refuses_partial_scores_from_a_different_host_model_with_the_same_id_and_version()
    {
        var h = new Harness();
        var wh = "sqlite:" + h.Path("w.db");
        var scores = h.Path("scores");
        Assert.Equal(0, h.Fed("convert", "--model", Models.Guest, "--model", Models.Host, "--warehouse", wh).Code);
        foreach (var p in new[] { "guest", "host" })
        {
            var b = h.Fed("predict", "batch", "--party", p, "--model-id", "breast_cancer_lr", "--features", Path.Combine(Harness.Samples, p + ".csv"),
                "--dt", Dt, "--warehouse", wh, "--out", scores);
            Assert.True(b.Code == 0, b.ToString());
        }
        var ok = h.Fed("predict", "combine", "--model-id", "breast_cancer_lr", "--dt", Dt, "--input", scores, "--warehouse", wh, "--json");
        Assert.True(ok.Code == 0, ok.ToString());

        // The host re-scores with another model file carrying the same id and version, from its own warehouse.
        var other = Models.WithWeight(Models.Host, h.Path("host-other.json"), 0, 0.123);
        var hostWh = "sqlite:" + h.Path("host.db");
        Assert.Equal(0, h.Fed("convert", "--model", other, "--warehouse", hostWh).Code);
        var rescored = h.Fed("predict", "batch", "--party", "host", "--model-id", "breast_cancer_lr", "--features", Path.Combine(Harness.Samples, "host.csv"),
            "--dt", Dt, "--warehouse", hostWh, "--out", scores);
        Assert.True(rescored.Code == 0, rescored.ToString());

        var rows = Harness.Rows(h.Path("w.db"));
        var files = h.Files();
        var r = h.Fed("predict", "combine", "--model-id", "breast_cancer_lr", "--dt", Dt, "--input", scores, "--warehouse", wh);
        Assert.True(r.Code == 2, r.ToString());
        Assert.Contains("party 'host'", r.Err);
        Assert.Contains("checksum", r.Err);
        Assert.Equal(rows, Harness.Rows(h.Path("w.db")));
        Assert.Equal(files, h.Files());
        var j = h.Fed("predict", "combine", "--model-id", "breast_cancer_lr", "--dt", Dt, "--input", scores, "--warehouse", wh, "--json").Json;
        Assert.Equal("checksum_mismatch", j["error_code"]!.GetValue<string>());
    }
}
