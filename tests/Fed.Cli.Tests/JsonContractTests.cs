using System.Text.RegularExpressions;
using System.Text.Json.Nodes;
using Fed.TestSupport;

namespace Fed.Cli.Tests;

/// <summary>Issue 15 finding 8: with --json stdout is one single-line JSON document (docs/cli.md), for every command.</summary>
public class JsonContractTests
{
    static readonly string[] ErrorCodes =
        ["usage", "bad_input", "bad_model_file", "unknown_model", "incomplete_parties", "missing_feature", "checksum_mismatch", "empty_result", "failure", "io_error", "internal_error"];

    /// <summary>Parses stdout as exactly one line holding one JSON object with snake_case keys.</summary>
    static JsonObject One(Harness.Result r, string what)
    {
        var lines = r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"{what}: {lines.Length} lines on stdout\n{r}");
        var doc = JsonNode.Parse(lines[0])!.AsObject();
        Assert.Equal("ok", doc.First().Key);
        foreach (var (key, value) in doc)
        {
            Assert.Matches("^[a-z][a-z0-9_]*$", key);
            if (value is JsonArray arr && key is "models" or "exports")
                foreach (var item in arr) foreach (var (k, _) in item!.AsObject()) Assert.Matches("^[a-z][a-z0-9_]*$", k);
        }
        if (!doc["ok"]!.GetValue<bool>())
        {
            Assert.Equal(["ok", "command", "exit_code", "error_code", "error"], doc.Select(kv => kv.Key));
            Assert.Contains(doc["error_code"]!.GetValue<string>(), ErrorCodes);
            Assert.Equal(r.Code, doc["exit_code"]!.GetValue<int>());
            Assert.DoesNotMatch("[A-Z][a-z]+Exception", doc["error"]!.GetValue<string>());
        }
        return doc;
    }

    [Fact]
    public void Every_command_answers_help_and_a_bare_call_with_one_json_line()
    {
        var h = new Harness();
        foreach (var c in FedCommands.All)
        {
            var words = c.Path.Split(' ');
            var help = One(h.Fed([.. words, "--help", "--json"]), c.Path + " --help");
            Assert.True(help["ok"]!.GetValue<bool>());
            Assert.Contains("usage: fed " + c.Path, help["help"]!.GetValue<string>());
            var bare = h.Fed([.. words, "--json"]);
            var doc = One(bare, c.Path);
            if (c.Options.Any(o => o.Required)) Assert.Equal("usage", doc["error_code"]!.GetValue<string>());
        }
        Assert.Equal("usage", One(h.Fed("frobnicate", "--json"), "typo")["error_code"]!.GetValue<string>());
        Assert.Equal("usage", One(h.Fed("predict", "--json"), "group")["error_code"]!.GetValue<string>());
        Assert.Matches(@"^\d+\.\d+", One(h.Fed("--version", "--json"), "version")["version"]!.GetValue<string>());
    }

    [Fact]
    public void Every_command_writes_its_documented_keys()
    {
        var redis = TestEnvironment.Require("FED_TEST_REDIS");
        var h = new Harness();
        var s = Harness.Samples;
        var wh = "sqlite:" + h.Path("w.db");
        var raw = JsonNode.Parse(File.ReadAllText(Models.Guest))!;
        raw["checksum"] = "";
        File.WriteAllText(h.Path("raw.json"), raw.ToJsonString());
        const string dt = "2026-12-01";
        var cases = new (string[] Args, string Keys)[]
        {
            (["model", "show", "--model", Models.Guest], "model_id version kind classes party role parties features constants checksum"),
            (["convert", "--model", Models.Guest, "--model", Models.Host, "--warehouse", wh], "warehouse exports"),
            (["convert", "--model", Models.Guest, "--emit-sql", h.Path("x.hql")], "emit_sql statements"),
            (["model", "list", "--warehouse", wh], "models"),
            (["model", "activate", "--model-id", "breast_cancer_lr", "--version", "1", "--warehouse", wh], "model_id active_version"),
            (["model", "stamp", "--in", h.Path("raw.json"), "--out", h.Path("stamped.json")], "path checksum"),
            (["ddl", "--dialect", "sqlite"], "dialect statements"),
            (["features", "load", "--party", "guest", "--csv", Path.Combine(s, "guest.csv"), "--table", "feat_guest", "--dt", dt, "--warehouse", wh], "rows table"),
            (["predict", "batch", "--party", "guest", "--model-id", "breast_cancer_lr", "--features", Path.Combine(s, "guest.csv"), "--dt", dt, "--warehouse", wh, "--out", h.Path("scores")],
                "model_id version party dt hour engine rows_scored rows_rejected rows_unchanged coverage output seconds emitted_sql"),
            (["predict", "batch", "--party", "host", "--model-id", "breast_cancer_lr", "--features", Path.Combine(s, "host.csv"), "--dt", dt, "--warehouse", wh, "--out", h.Path("scores")], "rows_scored"),
            (["predict", "combine", "--model-id", "breast_cancer_lr", "--dt", dt, "--input", h.Path("scores"), "--warehouse", wh],
                "model_id version dt hour input rows_by_party predictions table missing_count missing_first missing_ids_file report"),
            (["predict", "local", "--models", s, "--party", "guest=" + Path.Combine(s, "guest.csv"), "--party", "host=" + Path.Combine(s, "host.csv"), "--out", h.Path("p.csv")],
                "predictions missing out_path report rejected"),
            (["predict", "load-redis", "--redis", redis, "--model-id", "breast_cancer_lr", "--dt", dt, "--warehouse", wh], "written version active_pointer_set seconds"),
            (["predict", "lookup", "--redis", redis, "--model-id", "breast_cancer_lr", "--sample-id", "br000357"],
                "model_id version sample_id predict_value predicted_class probabilities dt hour source written_at"),
            (["model", "rollback", "--model-id", "breast_cancer_lr", "--warehouse", wh], "ERROR bad_input"),
            (["train", "cert", "--party", "guest", "--out", h.Path("guest.p12")], "name certificate cert_sha256 encrypted"),
            (["train", "local", "--kind", "logistic", "--party", "guest=" + Path.Combine(s, "guest.csv"), "--party", "host=" + Path.Combine(s, "host.csv"),
              "--out", h.Path("trained"), "--key-bits", "1024", "--insecure-test-key-bits", "--max-iter", "2"],
                "kind model_id version intersection filled_with_mean epochs stop_reason final_loss loss_per_epoch seconds models"),
            (["train", "party", "--config", h.Path("none.json")], "ERROR bad_input"),
            (["serve", "party", "--config", h.Path("none.json")], "ERROR bad_input"),
            (["serve", "initiator", "--config", h.Path("none.json")], "ERROR bad_input"),
            (["stream", "party", "--config", h.Path("none.json")], "ERROR bad_input"),
            (["stream", "initiator", "--config", h.Path("none.json")], "ERROR bad_input"),
            (["stream", "replay", "--csv", Path.Combine(s, "guest.csv"), "--brokers", "127.0.0.1:1", "--model-id", "m", "--party", "guest", "--rate", "-1"], "ERROR bad_input"),
        };
        var covered = new HashSet<string>();
        foreach (var (args, keys) in cases)
        {
            var r = h.Fed([.. args, "--json"]);
            var doc = One(r, string.Join(' ', args));
            covered.Add(FedCommands.All.Where(c => string.Join(' ', args).StartsWith(c.Path + " ")).MaxBy(c => c.Path.Length)!.Path);
            if (keys.StartsWith("ERROR "))
            {
                Assert.False(doc["ok"]!.GetValue<bool>(), r.ToString());
                Assert.Equal(keys[6..], doc["error_code"]!.GetValue<string>());
                continue;
            }
            Assert.True(r.Code == 0 && doc["ok"]!.GetValue<bool>(), r.ToString());
            foreach (var k in keys.Split(' ')) Assert.True(doc.ContainsKey(k), $"{string.Join(' ', args)}: no '{k}' in {r.Out}");
            // Without --json the same command prints no JSON document on stdout.
            if (args[0] is not ("ddl" or "train"))
                Assert.DoesNotMatch(@"^\s*[\{\[]", h.Fed(args.Select(a => a.Replace("p.csv", "p2.csv").Replace("stamped.json", "stamped2.json")).ToArray()).Out);
        }
        // Every command in docs/cli.md's table is exercised (commands added later are held by the generic test above).
        string[] documented = ["model show", "model list", "model activate", "model rollback", "model stamp", "convert", "ddl", "features load",
            "predict batch", "predict combine", "predict local", "predict load-redis", "predict lookup", "train local", "train party", "train cert",
            "serve party", "serve initiator", "stream party", "stream initiator", "stream replay"];
        Assert.Empty(documented.Except(FedCommands.All.Select(c => c.Path)));
        Assert.Empty(documented.Except(covered));
    }

    [Fact]
    public void Train_local_prints_no_json_without_json()
    {
        var h = new Harness();
        var s = Harness.Samples;
        var r = h.Fed("train", "local", "--kind", "logistic", "--party", "guest=" + Path.Combine(s, "guest.csv"), "--party", "host=" + Path.Combine(s, "host.csv"),
            "--out", h.Path("trained"), "--key-bits", "1024", "--insecure-test-key-bits", "--max-iter", "1");
        Assert.True(r.Code == 0, r.ToString());
        Assert.DoesNotContain("{", r.Out);
        Assert.Contains("trained logistic model", r.Out);
    }
}
