using Fed.Converter;
using Fed.Core.Data;
using Fed.Core.Model;
using Fed.Warehouse;
using Fed.Warehouse.Sqlite;

namespace Fed.SparkPredict.Tests;

/// <summary>
/// One shared warehouse, two models, two parties, one day: each job's output is exactly its own rows (on SQLite and
/// on PostgreSQL through the ODBC driver), and exporting a new version of model B leaves model A's rows as they were.
/// </summary>
public class SharedWarehouseTests
{
    // A day and model ids of this test alone: the PostgreSQL test database is shared by the test classes.
    const string Dt = "2024-05-07";

    static PartialModel Renamed(PartialModel m, string modelId, int version = 1, double scale = 1) => ModelFile.Stamp(new PartialModel
    {
        ModelId = modelId, Version = version, Kind = m.Kind, Classes = m.Classes, PartyId = m.PartyId, Role = m.Role, Parties = m.Parties,
        Features = m.Features, Weights = m.Weights.Select(r => r.Select(x => x * scale).ToArray()).ToArray(),
        Intercepts = m.Intercepts.Select(x => x * scale).ToArray(), Transform = m.Transform, Missing = m.Missing,
    });

    [Fact]
    public void Sqlite_two_models_two_parties_one_day_each_job_owns_exactly_its_rows()
    {
        using var a = EngineEqualityTests.Make("breast_cancer");
        using var b = EngineEqualityTests.Make("wine");
        using var w = new SqliteWarehouse(Path.Combine(a.Dir, "shared.db"));
        Run(w, a, b, "sa");
    }

    [Fact]
    public void Postgres_odbc_two_models_two_parties_one_day_each_job_owns_exactly_its_rows()
    {
        var odbc = Env.Require("FED_TEST_PG_ODBC");
        using var a = EngineEqualityTests.Make("breast_cancer");
        using var b = EngineEqualityTests.Make("wine");
        using var w = WarehouseFactory.Open("odbc:dialect=postgres;" + odbc);
        Run(w, a, b, "pg-" + Guid.NewGuid().ToString("N")[..8]);
    }

    static void Run(IWarehouse w, Scenario sa, Scenario sb, string tag)
    {
        var idA = $"shared-{tag}-a";
        var idB = $"shared-{tag}-b";
        var part = Partition.Parse(Dt, null);
        foreach (var (s, id) in new[] { (sa, idA), (sb, idB) })
        {
            foreach (var m in s.Models.Values) new ModelExporter(w).Export(Renamed(m, id));
            foreach (var p in s.Parties) FeatureLoader.Load(w, s.Csv[p], s.Table(p), part);
        }

        // The expected rows of each job: its party's CSV scored by the one scorer.
        Dictionary<(string, long), long> Expected(Scenario s, string id, string party, PartialModel m)
        {
            var model = new ModelRegistry(w).Load(id, party);
            var stats = new ScoringRunResult { Engine = "reference" };
            using var src = new CsvFeatureSource(s.Csv[party], model.Features);
            var set = LocalEngine.ScoreToMemory(model, src, stats);
            var d = new Dictionary<(string, long), long>();
            for (var i = 0; i < set.Count; i++)
                for (var c = 0; c < set.Outputs; c++) d[(set.Ids[i], c)] = Env.Bits(set.Scores[c][i]);
            return d;
        }
        Dictionary<(string, long), long> Rows(string id, string party)
        {
            var d = new Dictionary<(string, long), long>();
            using var r = w.Query($"SELECT sample_id, class_index, {w.Dialect.ReadDouble("partial_score")} FROM fed_partial_scores WHERE model_id = ? AND version = ? AND party = ? AND dt = ?", id, 1, party, Dt);
            while (r.Read()) d.Add((r.GetString(0), r.GetInt64(1)), Env.Bits(r.GetDouble(2)));
            return d;
        }

        // Model A with the SQL engine, model B with the local engine, interleaved by party, all into the same table and day.
        foreach (var p in new[] { "guest", "host" })
        {
            SqlEngine.Execute(ScoringPlan.Build(w, idA, null, p, sa.Table(p), part), w);
            LocalEngine.Execute(ScoringPlan.Build(w, idB, null, p, sb.Table(p), part), w, null);
        }
        var jobs = new[] { (sa, idA, "guest"), (sa, idA, "host"), (sb, idB, "guest"), (sb, idB, "host") };
        foreach (var (s, id, p) in jobs)
        {
            var expected = Expected(s, id, p, s.Models[p]);
            Assert.True(expected.Count > 100, $"{id} {p}");
            Assert.Equal(expected, Rows(id, p));
        }

        // Re-running one job (A's host, now with the local engine) replaces exactly its rows; the other three are untouched.
        var before = jobs.ToDictionary(j => (j.Item2, j.Item3), j => Rows(j.Item2, j.Item3));
        LocalEngine.Execute(ScoringPlan.Build(w, idA, null, "host", sa.Table("host"), part), w, null);
        foreach (var (_, id, p) in jobs) Assert.Equal(before[(id, p)], Rows(id, p));

        // Exporting model B v2 (both parties) leaves model A's rows in every model table exactly as they were.
        var tables = new[] { Schema.Registry.Name, Schema.Columns.Name, Schema.Long.Name, Schema.WideName("guest", sa.Models["guest"].Features.Length), Schema.WideName("host", sa.Models["host"].Features.Length) };
        string Dump(string id) => string.Join("\n", tables.Select(t =>
        {
            var cols = w.Dialect.ColumnsOf(w, t);
            var read = cols.Select(c => c is "intercept" or "weight" or "missing_default" || c.StartsWith("w_") ? w.Dialect.ReadDouble(w.Dialect.Id(c)) : w.Dialect.Id(c));
            using var r = w.Query($"SELECT {string.Join(", ", read)} FROM {w.Dialect.Id(t)} WHERE model_id = ?", id);
            var lines = new List<string>();
            while (r.Read()) lines.Add(string.Join("|", Enumerable.Range(0, r.FieldCount).Select(i => r.IsNull(i) ? "NULL" : r.GetString(i))));
            lines.Sort(StringComparer.Ordinal);
            return $"{t}: {lines.Count}\n{string.Join("\n", lines)}";
        }));
        var aBefore = Dump(idA);
        Assert.Contains($"{Schema.Long.Name}: {2 + sa.Models["guest"].Features.Length + sa.Models["host"].Features.Length}", aBefore);
        foreach (var m in sb.Models.Values) new ModelExporter(w).Export(Renamed(m, idB, version: 2, scale: 0.5));
        Assert.Equal(aBefore, Dump(idA));
        Assert.Equal([2, 2], new ModelRegistry(w).List(idB).Where(e => e.IsActive).Select(e => e.Version));
        foreach (var (_, id, p) in jobs) Assert.Equal(before[(id, p)], Rows(id, p));
    }
}
