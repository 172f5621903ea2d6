namespace Fed.Cli.Tests;

/// <summary>Issue 15 finding 3: a weight whose folded raw-space value overflows is refused everywhere; no trace reaches a user.</summary>
public class ValidationTests
{
    [Fact]
    public void A_model_not_finite_in_scoring_space_is_refused_by_show_convert_and_predict_local()
    {
        var h = new Harness();
        var models = Directory.CreateDirectory(h.Path("models")).FullName;
        // 1e308 / std 4.25 is finite, but the folded constant 1e308/std*mean overflows to -inf.
        Models.GuestWithWeight(Path.Combine(models, "guest.json"), 1, 1e308);
        File.Copy(Models.Host, Path.Combine(models, "host.json"));
        var db = h.Path("w.db");
        Assert.Equal(0, h.Fed("convert", "--model", Models.Host, "--warehouse", "sqlite:" + db).Code);
        var rows = Harness.Rows(db);
        var files = h.Files();

        foreach (var args in new[]
        {
            new[] { "model", "show", "--model", Path.Combine(models, "guest.json") },
            ["convert", "--model", Path.Combine(models, "guest.json"), "--warehouse", "sqlite:" + db],
            ["convert", "--model", Path.Combine(models, "guest.json"), "--emit-sql", h.Path("export.hql")],
            ["predict", "local", "--models", models, "--party", "guest=" + Path.Combine(Harness.Samples, "guest.csv"),
             "--party", "host=" + Path.Combine(Harness.Samples, "host.csv"), "--out", h.Path("pred.csv")],
        })
        {
            var r = h.Fed(args);
            Assert.True(r.Code == 2, string.Join(' ', args) + "\n" + r);
            Assert.Contains("mean_texture", r.Err);
            Assert.Contains("not finite", r.Err);
            Assert.DoesNotContain("   at ", r.Err);
            Assert.Equal(files, h.Files());
            Assert.Equal(rows, Harness.Rows(db));
            var j = h.Fed([.. args, "--json"]).Json;
            Assert.Equal("bad_model_file", j["error_code"]!.GetValue<string>());
        }
    }

    [Fact]
    public void An_unexpected_exception_is_one_line_exit_1_with_a_verbose_hint_and_the_trace_only_with_verbose()
    {
        CliCommand boom = new("boom", "throws", [], (_, _) => throw new InvalidOperationException("the index was off by one"));
        (int, string, string) Run(params string[] args)
        {
            var o = new StringWriter();
            var e = new StringWriter();
            return (CliApp.Run(args, [boom], o, e), o.ToString(), e.ToString());
        }
        var (code, stdout, stderr) = Run("boom");
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        var lines = stderr.Trim().Split('\n');
        Assert.Equal(2, lines.Length);
        Assert.Contains("fed boom: error: internal error", lines[0]);
        Assert.Contains("the index was off by one", lines[0]);
        Assert.Contains("--verbose", lines[1]);
        Assert.DoesNotContain(" at ", stderr);

        (code, _, stderr) = Run("boom", "--verbose");
        Assert.Equal(1, code);
        Assert.Contains("   at ", stderr);

        (code, stdout, _) = Run("boom", "--json");
        Assert.Equal(1, code);
        var j = System.Text.Json.Nodes.JsonNode.Parse(stdout)!;
        Assert.Equal("internal_error", j["error_code"]!.GetValue<string>());
        Assert.DoesNotContain("Exception", stdout);
    }

    [Fact]
    public void A_model_file_without_checksum_points_to_fed_model_stamp()
    {
        var h = new Harness();
        var node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Models.Guest))!.AsObject();
        node.Remove("checksum");
        File.WriteAllText(h.Path("raw.json"), node.ToJsonString());
        var r = Harness.InProcess("model", "show", "--model", h.Path("raw.json"));
        Assert.Equal(2, r.Code);
        Assert.Contains("field 'checksum'", r.Err);
        Assert.Contains("fed model stamp --in", r.Err);
        Assert.Equal(0, Harness.InProcess("model", "stamp", "--in", h.Path("raw.json"), "--out", h.Path("stamped.json")).Code);
        Assert.Equal(0, Harness.InProcess("model", "show", "--model", h.Path("stamped.json")).Code);
    }
}
