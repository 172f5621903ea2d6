using System.Text.Json.Nodes;
using Fed.Cli;
using Fed.Cli.Commands;
using Fed.Core.Model;
using Fed.Warehouse.Sqlite;

namespace Fed.Warehouse.Tests;

public class CliTests
{
    static readonly IReadOnlyList<CliCommand> Commands = [.. ModelCommands.All, .. ConvertCommands.All];

    public static (int Code, string Out, string Err) Fed(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        var code = CliApp.Run(args, Commands, o, e);
        return (code, o.ToString(), e.ToString());
    }

    public static TheoryData<string, string, string> Corruptions => new()
    {
        // name, field expected in the message, JSON edit as "path=json" or a raw replacement
        { "unknown schema version", "schema_version", "schema_version=2" },
        { "NaN weight", "weights[0][0]", "weights/0/0=\"NaN\"" },
        { "infinite weight", "weights[0][1]", "weights/0/1=1e400" },
        { "duplicate feature", "features[1]", "features/1=\"guest_f0\"" },
        { "length mismatch", "weights[0]", "weights/0=[1,2]" },
        { "checksum mismatch", "checksum", "intercepts/0=0.5" },
        { "unknown kind", "kind", "kind=\"gbdt\"" },
        { "missing field", "features", "features=DELETE" },
        { "not JSON", "(json", "RAW={\"schema_version\": 1," },
        { "guest turned host", "parties", "party/role=\"host\"" },
        { "host with intercept", "intercepts", "RAW_HOST_INTERCEPT=" },
    };

    [Theory]
    [MemberData(nameof(Corruptions))]
    public void MalformedModelFileExitsTwoNamingFileAndFieldAndLeavesTheWarehouseUntouched(string name, string field, string edit)
    {
        var dir = Fixtures.TempDir();
        var db = Path.Combine(dir, "w.db");
        var good = Path.Combine(dir, "good.json");
        ModelFile.Write(Fixtures.Model(version: 1), good);
        Assert.Equal(0, Fed("convert", "--model", good, "--warehouse", "sqlite:" + db).Code);
        string before;
        using (var w = new SqliteWarehouse(db)) before = Fixtures.Snapshot(w);

        var bad = Path.Combine(dir, "bad.json");
        var v2 = ModelFile.Write(Fixtures.Model(version: 2, seed: 8), Path.Combine(dir, "v2.json"));
        var text = File.ReadAllText(Path.Combine(dir, "v2.json"));
        File.WriteAllText(bad, Edit(text, edit));

        // The bad file comes second: the good v2 before it must not be written either.
        var (code, _, err) = Fed("convert", "--model", Path.Combine(dir, "v2.json"), "--model", bad, "--warehouse", "sqlite:" + db);
        Assert.True(code == 2, $"{name}: exit {code}: {err}");
        Assert.Contains(bad, err);
        Assert.Contains(field, err);
        using (var w = new SqliteWarehouse(db)) Assert.Equal(before, Fixtures.Snapshot(w));
        _ = v2;
    }

    static string Edit(string json, string edit)
    {
        var eq = edit.IndexOf('=');
        var path = edit[..eq];
        var value = edit[(eq + 1)..];
        if (path == "RAW") return value;
        if (edit == "RAW_HOST_INTERCEPT=")
        {
            var host = JsonNode.Parse(ModelFile.Serialize(Fixtures.Model("host", PartyRole.Host, version: 2), false))!;
            host["intercepts"] = new JsonArray(0.5);
            return host.ToJsonString();
        }
        var root = JsonNode.Parse(json)!;
        var parts = path.Split('/');
        var parent = root;
        foreach (var p in parts[..^1]) parent = int.TryParse(p, out var i) ? parent![i] : parent![p];
        var last = parts[^1];
        if (value == "DELETE") { parent!.AsObject().Remove(last); return root.ToJsonString(); }
        // Numbers beyond double range are written raw.
        var node = JsonNode.Parse(value.StartsWith("1e4") ? "0" : value);
        if (int.TryParse(last, out var idx)) parent![idx] = node; else parent![last] = node;
        var s = root.ToJsonString();
        return value.StartsWith("1e4") ? ReplaceNth(s, parent!, idx: int.Parse(last), value) : s;
    }

    static string ReplaceNth(string s, JsonNode parent, int idx, string raw)
    {
        parent[idx] = JsonValue.Create(123456.789e-300);
        var withMarker = parent.Root.ToJsonString();
        return withMarker.Replace("1.23456789E-295", raw);
    }

    [Fact]
    public void HelpOnEveryCommandAndExitCodes()
    {
        foreach (var c in Commands)
        {
            var (code, output, _) = Fed([.. c.Path.Split(' '), "--help"]);
            Assert.Equal(0, code);
            Assert.Contains("usage: fed " + c.Path, output);
        }
        Assert.Equal(0, Fed("--help").Code);
        Assert.Equal(2, Fed("frobnicate").Code);
        Assert.Equal(2, Fed("convert").Code);
        Assert.Equal(2, Fed("convert", "--model", "x.json", "--bogus").Code);
        Assert.Equal(2, Fed("convert", "--model", "/nonexistent/model.json").Code);
        var show = Fed("model", "show", "--model", "/nonexistent.json", "--json");
        Assert.Equal(2, show.Code);
        Assert.False(JsonNode.Parse(show.Out)!["ok"]!.GetValue<bool>());
    }

    [Fact]
    public void ConvertReportsJsonAndIsIdempotent()
    {
        var dir = Fixtures.TempDir();
        var db = "sqlite:" + Path.Combine(dir, "w.db");
        var g = Path.Combine(Fixtures.RepoRoot, "samples", "breast_cancer", "guest.json");
        var h = Path.Combine(Fixtures.RepoRoot, "samples", "breast_cancer", "host.json");
        var first = JsonNode.Parse(Fed("convert", "--model", g, "--model", h, "--warehouse", db, "--json").Out)!;
        Assert.Equal("added", first["exports"]![0]!["outcome"]!.GetValue<string>());
        var again = JsonNode.Parse(Fed("convert", "--model", g, "--model", h, "--warehouse", db, "--json").Out)!;
        Assert.Equal("unchanged", again["exports"]![1]!["outcome"]!.GetValue<string>());
        var list = JsonNode.Parse(Fed("model", "list", "--warehouse", db, "--json").Out)!;
        Assert.Equal(2, list["models"]!.AsArray().Count);
    }

    [Fact]
    public void SqlFolderMatchesTheGenerator()
    {
        var sql = Path.Combine(Fixtures.RepoRoot, "sql");
        Assert.Equal(File.ReadAllText(Path.Combine(sql, "fed_tables.hql")), Fed("ddl", "--dialect", "hive").Out);
        Assert.Equal(File.ReadAllText(Path.Combine(sql, "sample_guest_tables.hql")),
            Fed("ddl", "--dialect", "hive", "--model", Path.Combine(Fixtures.RepoRoot, "samples", "breast_cancer", "guest.json"), "--feature-table", "fed_features_guest").Out);
    }
}
