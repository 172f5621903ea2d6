using Fed.Converter;
using Fed.Core;
using Fed.Core.Model;
using Fed.Core.Scoring;

namespace Fed.Warehouse.Tests;

public class ConverterTests
{
    [Theory]
    [InlineData(ModelKind.Logistic, WeightLayout.Wide)]
    [InlineData(ModelKind.Logistic, WeightLayout.Long)]
    [InlineData(ModelKind.Softmax, WeightLayout.Wide)]
    [InlineData(ModelKind.Softmax, WeightLayout.Long)]
    public void ConvertedModelReadsBackBitIdentical(ModelKind kind, WeightLayout layout)
    {
        using var w = Fixtures.Sqlite(out _);
        foreach (var role in new[] { PartyRole.Guest, PartyRole.Host })
        {
            var file = Fixtures.Model(role == PartyRole.Guest ? "guest" : "host", role, kind: kind,
                missing: role == PartyRole.Host ? new MissingPolicy(MissingPolicyKind.Default, [1e-310, -0.0, 2, 3, 4, 5]) : null);
            var r = new ModelExporter(w).Export(file);
            Assert.Equal(ExportOutcome.Added, r.Outcome);
            var back = new ModelRegistry(w).Load(file.ModelId, file.PartyId, layout: layout);
            Assert.True(ScoringModel.From(file).BitEquals(back), $"{kind} {layout} {role} differs after the round trip");
        }
    }

    [Fact]
    public void ReExportChangesNothingAndANewVersionAddsRows()
    {
        using var w = Fixtures.Sqlite(out _);
        var v1 = Fixtures.Model(version: 1);
        new ModelExporter(w).Export(v1);
        var before = Fixtures.Snapshot(w);
        Assert.Equal(ExportOutcome.Unchanged, new ModelExporter(w).Export(v1).Outcome);
        Assert.Equal(before, Fixtures.Snapshot(w));

        var v2 = Fixtures.Model(version: 2, seed: 9);
        Assert.Equal(ExportOutcome.Added, new ModelExporter(w).Export(v2).Outcome);
        var reg = new ModelRegistry(w);
        Assert.Equal(2, reg.Resolve("credit_risk", "guest").Version);
        Assert.True(ScoringModel.From(v1).BitEquals(reg.Load("credit_risk", "guest", version: 1)));
        Assert.True(ScoringModel.From(v2).BitEquals(reg.Load("credit_risk", "guest")));
    }

    [Fact]
    public void SameVersionWithDifferentContentIsRefusedAndChangesNothing()
    {
        using var w = Fixtures.Sqlite(out _);
        new ModelExporter(w).Export(Fixtures.Model(version: 1));
        var before = Fixtures.Snapshot(w);
        var e = Assert.Throws<BadInputException>(() => new ModelExporter(w).Export(Fixtures.Model(version: 1, seed: 77)));
        Assert.Contains("versions are immutable", e.Message);
        Assert.Equal(before, Fixtures.Snapshot(w));
    }

    [Fact]
    public void AFailedExportLeavesNoTrace()
    {
        using var w = Fixtures.Sqlite(out _);
        new ModelExporter(w).Export(Fixtures.Model(version: 1));
        // A wide table of the right name but the wrong shape makes the export fail half way, after the column map
        // and long rows were inserted: the transaction must take them back.
        w.Execute("CREATE TABLE \"fed_model_wide_guest_k7\" (model_id TEXT)");
        var before = Fixtures.Snapshot(w);
        var seven = Fixtures.Model(version: 2, features: Enumerable.Range(0, 7).Select(i => $"g{i}").ToArray());
        Assert.Throws<FedFailureException>(() => new ModelExporter(w).Export(seven));
        Assert.Equal(before, Fixtures.Snapshot(w));
        Assert.Equal(1, new ModelRegistry(w).Resolve("credit_risk", "guest").Version);
    }

    [Fact]
    public void ActivateAndRollBack()
    {
        using var w = Fixtures.Sqlite(out _);
        for (var v = 1; v <= 3; v++) new ModelExporter(w).Export(Fixtures.Model(version: v, seed: v));
        var reg = new ModelRegistry(w);
        Assert.Equal(3, reg.Resolve("credit_risk", "guest").Version);
        Assert.Equal(2, reg.Rollback("credit_risk"));
        Assert.Equal(2, reg.Resolve("credit_risk", "guest").Version);
        Assert.Single(reg.List("credit_risk"), e => e.IsActive);
        reg.Activate("credit_risk", 3);
        Assert.Equal(3, reg.Resolve("credit_risk", "guest").Version);
        reg.Activate("credit_risk", 1);
        Assert.Throws<BadInputException>(() => reg.Rollback("credit_risk"));
        var unknown = Assert.Throws<UnknownModelException>(() => reg.Activate("credit_risk", 9));
        Assert.Contains("versions: 1, 2, 3", unknown.Message);
    }

    [Fact]
    public void UnknownModelVersionOrPartyIsAClearError()
    {
        using var w = Fixtures.Sqlite(out _);
        var reg = new ModelRegistry(w);
        Assert.Contains("registry is empty", Assert.Throws<UnknownModelException>(() => reg.Resolve("nope", "guest")).Message);
        new ModelExporter(w).Export(Fixtures.Model());
        Assert.Contains("known models: credit_risk", Assert.Throws<UnknownModelException>(() => reg.Resolve("nope", "guest")).Message);
        Assert.Contains("no part for party 'bank'", Assert.Throws<UnknownModelException>(() => reg.Resolve("credit_risk", "bank")).Message);
        Assert.Contains("no version 4", Assert.Throws<UnknownModelException>(() => reg.Load("credit_risk", "guest", 4)).Message);
    }

    [Fact]
    public void SqlEngineEvaluatesTheScoreExpressionToTheSameBitsAsTheScorer()
    {
        // The contract every SQL engine path relies on: intercept + w_1*x_1 + ... left to right gives PartialScorer's bits.
        using var w = Fixtures.Sqlite(out _);
        var file = Fixtures.Model(k: 12, seed: 3);
        new ModelExporter(w).Export(file);
        var m = new ModelRegistry(w).Load("credit_risk", "guest");
        var rng = new Random(11);
        var scorer = new PartialScorer(m);
        var expr = "m.intercept" + string.Concat(Enumerable.Range(1, 12).Select(i => $" + m.w_{i} * ?"));
        for (var t = 0; t < 200; t++)
        {
            var x = Enumerable.Range(0, 12).Select(_ => (rng.NextDouble() - 0.5) * Math.Pow(10, rng.Next(-5, 6))).ToArray();
            using var r = w.Query($"SELECT {expr} FROM fed_model_wide_guest_k12 m WHERE model_id = ? AND version = ?",
                x.Cast<object?>().Append("credit_risk").Append(1).ToArray());
            Assert.True(r.Read());
            var s = new double[1];
            scorer.ScoreRow(x, s);
            Assert.Equal(BitConverter.DoubleToInt64Bits(s[0]), BitConverter.DoubleToInt64Bits(r.GetDouble(0)));
        }
    }
}
