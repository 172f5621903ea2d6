using Fed.Converter;
using Fed.Core;
using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.Warehouse.Odbc;

namespace Fed.Warehouse.Tests.Odbc;

/// <summary>The converter and registry through the ODBC backend, against the real SQLite3 and PostgreSQL drivers.</summary>
public class OdbcConverterTests
{
    public static IEnumerable<object[]> Backends() => [["sqlite"], ["postgres"]];

    static IWarehouse Open(string backend) => backend == "postgres"
        ? WarehouseFactory.Open("odbc:dialect=postgres;" + OdbcTestSupport.PostgresConnectionString())
        : WarehouseFactory.Open($"odbc:dialect=sqlite;Driver=SQLite3;Database={Path.Combine(Fixtures.TempDir(), "w.db")};");

    static string UniqueId() => "m_" + Guid.NewGuid().ToString("N")[..10];

    [Theory]
    [MemberData(nameof(Backends))]
    public void ConvertedModelReadsBackBitIdentical(string backend)
    {
        using var w = Open(backend);
        Assert.IsType<OdbcWarehouse>(w);
        var id = UniqueId();
        foreach (var (party, role, kind) in new[] { ("guest", PartyRole.Guest, ModelKind.Softmax), ("host", PartyRole.Host, ModelKind.Softmax) })
        {
            var file = Fixtures.Model(party, role, kind: kind, modelId: id, features: [$"{party}.a", "b'); DROP TABLE x; --", "特征", "d", "e"],
                missing: role == PartyRole.Host ? new MissingPolicy(MissingPolicyKind.Default, [1e-310, 0.1, 1 / 3.0, double.MaxValue, -5]) : null);
            Assert.Equal(ExportOutcome.Added, new ModelExporter(w).Export(file).Outcome);
            foreach (var layout in new[] { WeightLayout.Wide, WeightLayout.Long })
                Assert.True(ScoringModel.From(file).BitEquals(new ModelRegistry(w).Load(id, party, layout: layout)), $"{backend} {party} {layout}");
        }
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void ReExportIsUnchangedAndAFailedExportLeavesNoTrace(string backend)
    {
        using var w = Open(backend);
        var id = UniqueId();
        new ModelExporter(w).Export(Fixtures.Model(modelId: id, version: 1));
        Assert.Equal(ExportOutcome.Unchanged, new ModelExporter(w).Export(Fixtures.Model(modelId: id, version: 1)).Outcome);
        string Rows() => string.Join(";", new[] { "fed_model_registry", "fed_model_columns", "fed_model_long" }.Select(t =>
        {
            using var r = w.Query($"SELECT COUNT(*) FROM {w.Dialect.Id(t)} WHERE model_id = ?", id);
            r.Read();
            return $"{t}={r.GetInt64(0)}";
        }));
        var before = Rows();
        // A value the wide table refuses (a string where an integer class index belongs is impossible through the
        // exporter), so break the table instead: a wide table of the right name without the weight columns.
        var k = 9 + Math.Abs(id.GetHashCode() % 50);
        w.Execute($"CREATE TABLE {w.Dialect.Id($"fed_model_wide_guest_k{k}")} (model_id TEXT)");
        var broken = Fixtures.Model(modelId: id, version: 2, features: Enumerable.Range(0, k).Select(i => $"g{i}").ToArray());
        Assert.Throws<FedFailureException>(() => new ModelExporter(w).Export(broken));
        Assert.Equal(before, Rows());
        Assert.Equal(1, new ModelRegistry(w).Resolve(id, "guest").Version);
        w.Execute($"DROP TABLE {w.Dialect.Id($"fed_model_wide_guest_k{k}")}");
    }

    [Theory]
    [MemberData(nameof(Backends))]
    public void ActivateAndRollBackThroughOdbc(string backend)
    {
        using var w = Open(backend);
        var id = UniqueId();
        for (var v = 1; v <= 2; v++) new ModelExporter(w).Export(Fixtures.Model(modelId: id, version: v, seed: v));
        var reg = new ModelRegistry(w);
        Assert.Equal(2, reg.Resolve(id, "guest").Version);
        Assert.Equal(1, reg.Rollback(id));
        Assert.Equal(1, reg.Resolve(id, "guest").Version);
    }
}
