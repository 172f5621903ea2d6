using System.Text.Json.Nodes;

namespace Fed.Cli.Tests;

/// <summary>Issue 15 findings 5-7: exit 2 writes nothing; ambiguous input refused; empty results noticed; reports at scale.</summary>
public class NothingWrittenTests
{
    static string[] Local(Harness h, string host, string @out, params string[] extra) =>
        ["predict", "local", "--models", Harness.Samples, "--party", "guest=" + Path.Combine(Harness.Samples, "guest.csv"), "--party", "host=" + host, "--out", @out, .. extra];

    [Fact]
    public void Multi_model_convert_is_all_or_nothing()
    {
        var h = new Harness();
        var db = h.Path("w.db");
        Assert.Equal(0, h.Fed("convert", "--model", Models.Host, "--warehouse", "sqlite:" + db).Code);
        var rows = Harness.Rows(db);
        // The good guest comes first; the host file conflicts with the registered host v1 (same version, other content).
        var other = Models.WithWeight(Models.Host, h.Path("host-other.json"), 0, 0.5);
        var r = h.Fed("convert", "--model", Models.Guest, "--model", other, "--warehouse", "sqlite:" + db);
        Assert.True(r.Code == 2, r.ToString());
        Assert.Contains("versions are immutable", r.Err);
        Assert.Equal(rows, Harness.Rows(db));
        Assert.Contains("fed_model_registry=1", rows);
    }

    [Fact]
    public void An_unwritable_report_leaves_no_predictions_file()
    {
        var h = new Harness();
        File.WriteAllText(h.Path("blocker"), "a file where a directory is needed");
        var before = h.Files();
        var r = h.Fed(Local(h, Path.Combine(Harness.Samples, "host.csv"), h.Path("pred.csv"), "--report", h.Path("blocker/report.json")));
        Assert.True(r.Code is 1 or 2, r.ToString());
        Assert.Equal(before, h.Files());
        Assert.False(File.Exists(h.Path("pred.csv")));
    }

    [Fact]
    public void An_output_equal_to_an_input_is_refused_and_the_input_is_untouched()
    {
        var h = new Harness();
        var host = h.Path("host.csv");
        File.Copy(Path.Combine(Harness.Samples, "host.csv"), host);
        var before = h.Files();
        foreach (var (args, expected) in new[]
        {
            (Local(h, host, host), "is also an input"),
            (Local(h, host, h.Path("p.csv"), "--report", host), "is also an input"),
            (Local(h, host, h.Path("p.csv"), "--report", h.Path("p.csv")), "two outputs"),
        })
        {
            var r = h.Fed(args);
            Assert.True(r.Code == 2, r.ToString());
            Assert.Contains(expected, r.Err);
            Assert.Equal(before, h.Files());
        }
    }

    [Fact]
    public void A_duplicate_csv_header_column_is_refused_naming_it()
    {
        var h = new Harness();
        var lines = File.ReadAllLines(Path.Combine(Harness.Samples, "host.csv"));
        var header = lines[0].Split(',');
        header[2] = header[1]; // texture_error -> radius_error twice
        File.WriteAllLines(h.Path("host.csv"), [string.Join(',', header), .. lines[1..]]);
        var before = h.Files();
        var r = h.Fed(Local(h, h.Path("host.csv"), h.Path("p.csv")));
        Assert.True(r.Code == 2, r.ToString());
        Assert.Contains("duplicate column name 'radius_error'", r.Err);
        Assert.Equal(before, h.Files());
    }

    [Fact]
    public void A_json_key_given_twice_in_a_model_file_is_refused_naming_it()
    {
        var h = new Harness();
        var text = File.ReadAllText(Models.Guest);
        var at = text.IndexOf("\"version\"", StringComparison.Ordinal);
        File.WriteAllText(h.Path("guest.json"), text[..at] + "\"version\": 2, " + text[at..]);
        var db = h.Path("w.db");
        foreach (var args in new[] { new[] { "model", "show", "--model", h.Path("guest.json") }, ["convert", "--model", h.Path("guest.json"), "--warehouse", "sqlite:" + db] })
        {
            var r = h.Fed(args);
            Assert.True(r.Code == 2, r.ToString());
            Assert.Contains("field 'version'", r.Err);
            Assert.Contains("given twice", r.Err);
        }
        Assert.False(File.Exists(db));
    }

    [Fact]
    public void A_10_mb_header_is_not_echoed_whole()
    {
        var h = new Harness();
        File.WriteAllText(h.Path("host.csv"), new string('x', 10_000_000) + ",a\n1,2\n");
        var r = h.Fed(Local(h, h.Path("host.csv"), h.Path("p.csv")));
        Assert.True(r.Code == 2, r.ToString()[..Math.Min(2000, r.ToString().Length)]);
        Assert.True(r.Err.Length < 2000, $"stderr is {r.Err.Length} chars");
        Assert.Contains("(10,000,000 chars)", r.Err);
    }

    [Theory]
    [InlineData("header only")]
    [InlineData("no overlapping ids")]
    public void Zero_predictions_exit_3_unless_allow_empty(string how)
    {
        var h = new Harness();
        var lines = File.ReadAllLines(Path.Combine(Harness.Samples, "host.csv"));
        File.WriteAllLines(h.Path("host.csv"), how == "header only" ? [lines[0]] : [lines[0], .. lines[1..].Select(l => "other_" + l)]);
        var r = h.Fed(Local(h, h.Path("host.csv"), h.Path("p.csv"), "--json"));
        Assert.True(r.Code == 3, r.ToString());
        Assert.Equal("empty_result", r.Json["error_code"]!.GetValue<string>());
        Assert.Contains("--allow-empty", r.Err);
        // Exit 3 is not "nothing written": the empty result is written (a header-only predictions file).
        Assert.Single(File.ReadAllLines(h.Path("p.csv")));
        var ok = h.Fed(Local(h, h.Path("host.csv"), h.Path("p2.csv"), "--allow-empty", "--json"));
        Assert.True(ok.Code == 0, ok.ToString());
        Assert.Equal(0, ok.Json["predictions"]!.GetValue<int>());
    }

    [Fact]
    public void A_daily_batch_that_scores_zero_rows_exits_3_unless_allow_empty()
    {
        var h = new Harness();
        var wh = "sqlite:" + h.Path("w.db");
        Assert.Equal(0, h.Fed("convert", "--model", Models.Guest, "--model", Models.Host, "--warehouse", wh).Code);
        File.WriteAllLines(h.Path("guest.csv"), [File.ReadLines(Path.Combine(Harness.Samples, "guest.csv")).First()]);
        string[] Batch(string outDir) =>
            ["predict", "batch", "--party", "guest", "--model-id", "breast_cancer_lr", "--features", h.Path("guest.csv"), "--dt", "2026-12-01",
             "--warehouse", wh, "--out", h.Path(outDir), "--json"];
        var r = h.Fed(Batch("s1"));
        Assert.True(r.Code == 3, r.ToString());
        Assert.Equal("empty_result", r.Json["error_code"]!.GetValue<string>());
        Assert.Contains("0 rows of", r.Json["error"]!.GetValue<string>());
        var ok = h.Fed([.. Batch("s2"), "--allow-empty"]);
        Assert.True(ok.Code == 0, ok.ToString());
        Assert.Equal(0, ok.Json["rows_scored"]!.GetValue<int>());
    }

    [Fact]
    public void The_coverage_report_holds_counts_and_the_first_ids_and_every_id_goes_to_a_csv()
    {
        var h = new Harness();
        var lines = File.ReadAllLines(Path.Combine(Harness.Samples, "host.csv"));
        File.WriteAllLines(h.Path("host.csv"), lines[..101]); // 100 of the host's rows: most guest ids are missing
        var r = h.Fed(Local(h, h.Path("host.csv"), h.Path("p.csv"), "--json"));
        Assert.True(r.Code == 0, r.ToString());
        var report = JsonNode.Parse(File.ReadAllText(h.Path("p.csv.report.json")))!;
        var missing = report["missing_count"]!.GetValue<int>();
        Assert.True(missing > 400, $"{missing}");
        Assert.Equal(100, report["missing_first"]!.AsArray().Count);
        Assert.Null(report["missing"]);
        var csv = File.ReadAllLines(report["missing_ids_file"]!.GetValue<string>());
        Assert.Equal("sample_id,missing_parties", csv[0]);
        Assert.Equal(missing, csv.Length - 1);
        Assert.Equal(report["missing_first"]![0]!["sample_id"]!.GetValue<string>(), csv[1].Split(',')[0]);
    }
}
