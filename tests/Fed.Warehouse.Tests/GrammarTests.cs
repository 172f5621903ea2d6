using Fed.Cli.Commands;
using Fed.Converter;
using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.TestSupport;

namespace Fed.Warehouse.Tests;

/// <summary>Every HiveQL / Spark SQL statement Fed generates parses with the real grammars.</summary>
public class GrammarTests
{
    [Fact]
    public void GeneratedDdlIsValidHiveQlAndSparkSql()
    {
        var guest = ScoringModel.From(ModelFile.Read(Path.Combine(TestEnvironment.RepoRoot, "samples", "breast_cancer", "guest.json")));
        var ddl = ConvertCommands.StandardTables(guest, "fed_features_guest").Select(SqlDialect.Hive.CreateTable);
        SqlGrammar.AssertValid(ddl, "hive", "spark");
    }

    [Theory]
    [InlineData(ModelKind.Logistic, true)]
    [InlineData(ModelKind.Softmax, false)]
    public void ModelExportScriptIsValidHiveQlAndSparkSql(ModelKind kind, bool activate)
    {
        var m = ScoringModel.From(Fixtures.Model(kind: kind, features: ["it's", "a/b", "c", "semi;colon"],
            missing: new MissingPolicy(MissingPolicyKind.Default, [1e-310, -1e300, 0.1, 2])));
        SqlGrammar.AssertValid(HiveModelScript.Generate(m, activate, DateTime.UtcNow), "hive", "spark");
    }

    [Fact]
    public void TheValidatorRejectsBrokenSql()
    {
        var r = SqlGrammar.Validate([("hive", "SELECT FROM WHERE"), ("spark", "INSERT OVERWRITE TABLE PARTITION SELECT")]);
        Assert.All(r, x => Assert.False(x.Ok));
    }
}
