using Fed.Converter;
using Fed.Core;
using Fed.Core.Model;
using Fed.Warehouse.Sqlite;

namespace Fed.Warehouse.Tests;

/// <summary>SQL injection attempted through every name that reaches the warehouse.</summary>
public class InjectionTests
{
    const string Payload = "x'); DROP TABLE fed_model_registry; --";

    [Fact]
    public void HostileFeatureNamesAreStoredAsDataNotExecuted()
    {
        using var w = Fixtures.Sqlite(out _);
        var m = Fixtures.Model(features: [Payload, "a\"b", "c`d", "e;f", "特征 é"]);
        new ModelExporter(w).Export(m);
        Assert.True(w.TableExists("fed_model_registry"));
        var back = new ModelRegistry(w).Load(m.ModelId, m.PartyId);
        Assert.Equal(m.Features, back.Features);
    }

    [Fact]
    public void HostileModelIdsAndPartiesAreRefusedBeforeAnySql()
    {
        Assert.ThrowsAny<BadInputException>(() => Fixtures.Model(modelId: Payload));
        Assert.ThrowsAny<BadInputException>(() => Fixtures.Model(party: "guest\"; DROP TABLE t; --"));
        using var w = Fixtures.Sqlite(out _);
        var reg = new ModelRegistry(w);
        Assert.Throws<BadInputException>(() => reg.Resolve(Payload, "guest"));
        Assert.Throws<BadInputException>(() => reg.Activate(Payload, 1));
        Assert.Throws<BadInputException>(() => reg.Rollback(Payload));
    }

    [Theory]
    [InlineData("fed_features; DROP TABLE x")]
    [InlineData("t\"x")]
    [InlineData("Features")]
    public void HostileTableNamesAreRefused(string table)
    {
        Assert.Throws<BadInputException>(() => Schema.Features(table, ["a"], hourly: false));
        foreach (var d in new[] { SqlDialect.Sqlite, SqlDialect.Postgres, SqlDialect.Hive })
            Assert.Throws<BadInputException>(() => d.Id(table));
        using var w = Fixtures.Sqlite(out _);
        Assert.Throws<BadInputException>(() => w.TableExists(table));
    }

    [Fact]
    public void HiveScriptEscapesEveryLiteral()
    {
        var m = Fed.Core.Scoring.ScoringModel.From(Fixtures.Model(features: ["it's", "back\\slash", "semi;colon"]));
        var sql = string.Join("\n", HiveModelScript.Generate(m, true, DateTime.UnixEpoch));
        Assert.Contains(@"'it\'s'", sql);
        Assert.Contains(@"'back\\slash'", sql);
        Assert.DoesNotContain("'it's'", sql);
    }

    [Fact]
    public void ModelIdIsBoundNotConcatenatedInRegistryQueries()
    {
        // A valid model id that looks like SQL still cannot change the query's meaning.
        using var w = Fixtures.Sqlite(out _);
        new ModelExporter(w).Export(Fixtures.Model(modelId: "a--b"));
        Assert.Single(new ModelRegistry(w).List("a--b"));
        Assert.Empty(new ModelRegistry(w).List("a"));
        _ = typeof(SqliteWarehouse);
    }
}
