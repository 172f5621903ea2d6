namespace Fed.Cli.Tests;

/// <summary>Issue 15 findings 1 and 2: one rule for the warehouse (--warehouse, else FED_WAREHOUSE, else the default).</summary>
public class WarehouseRuleTests
{
    [Fact]
    public void Fed_warehouse_is_honoured_by_convert_model_list_and_activate()
    {
        var h = new Harness();
        var db = h.Path("env.db");
        h.Env["FED_WAREHOUSE"] = "sqlite:" + db;
        var convert = h.Fed("convert", "--model", Path.Combine(Harness.Samples, "guest.json"), "--model", Path.Combine(Harness.Samples, "host.json"), "--no-activate");
        Assert.True(convert.Code == 0, convert.ToString());
        Assert.False(File.Exists(h.Path(".fed/warehouse.db")), "the default warehouse must not be used when FED_WAREHOUSE is set");
        Assert.Contains("fed_model_registry=2", Harness.Rows(db));

        var list = h.Fed("model", "list", "--json");
        Assert.Equal(2, list.Json["models"]!.AsArray().Count);
        var activate = h.Fed("model", "activate", "--model-id", "breast_cancer_lr", "--version", "1", "--json");
        Assert.True(activate.Code == 0, activate.ToString());
        Assert.False(File.Exists(h.Path(".fed/warehouse.db")));

        // --warehouse wins over FED_WAREHOUSE.
        var other = h.Path("other.db");
        var otherList = h.Fed("model", "list", "--warehouse", "sqlite:" + other, "--json");
        Assert.True(otherList.Code == 0, otherList.ToString());
        Assert.Empty(otherList.Json["models"]!.AsArray());
        Assert.Contains("fed_model_registry=2", Harness.Rows(db));
    }

    [Theory]
    [InlineData("--warehouse", "foo:bar")]
    [InlineData("--warehouse", "postgres://u@h/db")]
    [InlineData("--warehouse", "warehouse.db")]
    [InlineData("FED_WAREHOUSE", "foo:bar")]
    public void A_spec_that_is_neither_sqlite_nor_odbc_is_refused_and_nothing_is_created(string where, string spec)
    {
        var h = new Harness();
        var before = h.Files();
        string[] args = ["convert", "--model", Path.Combine(Harness.Samples, "guest.json")];
        if (where == "FED_WAREHOUSE") h.Env["FED_WAREHOUSE"] = spec; else args = [.. args, "--warehouse", spec];
        foreach (var cmd in new[] { args, ["model", "list", .. args[3..]], ["model", "activate", "--model-id", "m", "--version", "1", .. args[3..]] })
        {
            var r = h.Fed(cmd);
            Assert.True(r.Code == 2, r.ToString());
            Assert.Contains($"warehouse '{spec}'", r.Err);
            Assert.Contains("sqlite:PATH", r.Err);
            Assert.Contains("odbc:dialect=", r.Err);
            Assert.Equal(before, h.Files());
            Assert.Empty(Directory.EnumerateFileSystemEntries(h.Dir));
        }
    }
}
