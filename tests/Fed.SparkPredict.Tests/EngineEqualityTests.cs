using Fed.Core.Model;
using Fed.Warehouse;
using Fed.Warehouse.Sqlite;

namespace Fed.SparkPredict.Tests;

/// <summary>Every path gives the predictions of 'fed predict local', bit for bit, on real data.</summary>
public class EngineEqualityTests
{
    const string Dt = "2024-03-01";

    public static Scenario Make(string dataset) => dataset switch
    {
        // Host rows with blanked cells are rejected (policy reject) and must be listed, never scored.
        "breast_cancer" => new Scenario("breast_cancer", ModelKind.Logistic, [], blanks: new() { ["host"] = 5 }),
        "wine" => new Scenario("wine", ModelKind.Softmax, ["0", "1", "2"], seed: 7),
        // FATE's one-vs-rest (an imported model): a sigmoid per class through every path.
        "wine_ovr" => new Scenario("wine", ModelKind.OneVsRest, ["0", "1", "2"], seed: 5, modelId: "wine-ovr"),
        // host2 uses recorded defaults for its blanked cells.
        "german_credit" => new Scenario("german_credit", ModelKind.Logistic, [], seed: 3,
            policy: new() { ["host2"] = MissingPolicyKind.Default }, blanks: new() { ["host2"] = 6, ["host1"] = 2 }),
        _ => throw new ArgumentException(dataset),
    };

    [Theory]
    [InlineData("breast_cancer")]
    [InlineData("wine")]
    [InlineData("wine_ovr")]
    [InlineData("german_credit")]
    public void Sqlite_local_engine_and_sql_engine_match_predict_local_bit_for_bit(string dataset)
    {
        using var s = Make(dataset);
        using var w = new SqliteWarehouse(Path.Combine(s.Dir, "wh.db"));
        s.Setup(w, Dt);
        RunAllPaths(s, w);
    }

    [Theory]
    [InlineData("breast_cancer")]
    [InlineData("wine")]
    [InlineData("wine_ovr")]
    [InlineData("german_credit")]
    public void Postgres_sql_engine_matches_predict_local_bit_for_bit(string dataset)
    {
        var odbc = Env.Require("FED_TEST_PG_ODBC");
        using var s = Make(dataset);
        using var w = WarehouseFactory.Open("odbc:dialect=postgres;" + odbc);
        s.Setup(w, Dt);
        RunAllPaths(s, w);
    }

    /// <summary>The CLI's odbc engine: each party's plan runs as SQL through the real PostgreSQL ODBC driver.</summary>
    [Fact]
    public void Odbc_engine_through_the_cli_matches_predict_local_bit_for_bit()
    {
        var spec = "odbc:dialect=postgres;" + Env.Require("FED_TEST_PG_ODBC");
        using var s = Make("wine");
        using (var w = WarehouseFactory.Open(spec)) s.Setup(w, Dt);
        foreach (var p in s.Parties)
        {
            var r = Env.Cli("predict", "batch", "--party", p, "--model-id", s.ModelId, "--features", s.Table(p), "--dt", Dt, "--warehouse", spec, "--engine", "odbc");
            Assert.True(r.Code == 0, r.Err);
        }
        var c = Env.Cli("predict", "combine", "--model-id", s.ModelId, "--dt", Dt, "--input", "warehouse", "--warehouse", spec, "--report", Path.Combine(s.Dir, "cov.json"));
        Assert.True(c.Code == 0, c.Err);
        var reference = LocalPredictor.Run(s.ModelsDir, s.Parties.Select(p => (p, s.Csv[p])).ToList(), Path.Combine(s.Dir, "ref.csv"));
        using var check = WarehouseFactory.Open(spec);
        AssertSame(reference.Predictions, Env.ReadPredictions(check, s.ModelId, Dt), "odbc engine via the CLI");

        // An embedded SQLite file is not an ODBC source: refused up front, nothing written.
        var file = "sqlite:" + Path.Combine(s.Dir, "plain.db");
        var bad = Env.Cli("predict", "batch", "--party", "guest", "--model-id", s.ModelId, "--features", s.Table("guest"), "--dt", Dt, "--warehouse", file, "--engine", "odbc");
        Assert.Equal(2, bad.Code);
        Assert.Contains("--engine odbc", bad.Err);
    }

    static void RunAllPaths(Scenario s, IWarehouse w)
    {
        var part = Partition.Parse(Dt, null);
        var reference = LocalPredictor.Run(s.ModelsDir, s.Parties.Select(p => (p, s.Csv[p])).ToList(), Path.Combine(s.Dir, "ref.csv"));
        var refPred = reference.Predictions;
        Assert.True(refPred.Count > 0.8 * refPred.RowsByParty.Values.Min(), "most samples combine");
        Assert.NotEmpty(refPred.Missing); // each party holds ~95% of the ids

        // 1. Local engine over the warehouse feature tables, partial scores as files, combined from files.
        var files = Path.Combine(s.Dir, "scores");
        var localStats = new Dictionary<string, ScoringRunResult>();
        foreach (var p in s.Parties)
            localStats[p] = LocalEngine.Execute(ScoringPlan.Build(w, s.ModelId, null, p, s.Table(p), part), w, files);
        CombineJob.Run(w, s.ModelId, null, part, files, Path.Combine(s.Dir, "cov-files.json"));
        AssertSame(refPred, Env.ReadPredictions(w, s.ModelId, Dt), "local engine + file combine");

        // 2. Local engine over the CSVs (files) gives the same files' content.
        // 3. SQL engine on the warehouse, wide and long weight tables, combined from the warehouse table.
        foreach (var layout in new[] { WeightLayout.Wide, WeightLayout.Long })
        {
            var sqlStats = new Dictionary<string, ScoringRunResult>();
            foreach (var p in s.Parties)
                sqlStats[p] = SqlEngine.Execute(ScoringPlan.Build(w, s.ModelId, null, p, s.Table(p), part, layout), w);
            foreach (var p in s.Parties)
            {
                Assert.Equal(localStats[p].RowsScored, sqlStats[p].RowsScored);
                Assert.Equal(localStats[p].RowsRejected, sqlStats[p].RowsRejected);
                Assert.Equal(localStats[p].Rejected.OrderBy(r => r.SampleId), sqlStats[p].Rejected.OrderBy(r => r.SampleId));
                Assert.Equal(localStats[p].Coverage!.Missing, sqlStats[p].Coverage!.Missing);
                Assert.Equal(reference.Runs[p].RowsRejected, sqlStats[p].RowsRejected);
            }
            var sqlPartials = Env.ReadPartials(w, s.ModelId, Dt);
            CombineJob.Run(w, s.ModelId, null, part, "warehouse", Path.Combine(s.Dir, "cov-wh.json"));
            AssertSame(refPred, Env.ReadPredictions(w, s.ModelId, Dt), $"sql engine ({w.Dialect.Name}, {layout})");

            // The local engine writing the same table gives the same partial scores, bit for bit.
            if (layout == WeightLayout.Wide)
            {
                foreach (var p in s.Parties) LocalEngine.Execute(ScoringPlan.Build(w, s.ModelId, null, p, s.Table(p), part), w, null);
                var localPartials = Env.ReadPartials(w, s.ModelId, Dt);
                Assert.Equal(sqlPartials.Count, localPartials.Count);
                foreach (var (k, v) in sqlPartials) Assert.Equal(Env.Bits(v), Env.Bits(localPartials[k]));
            }
        }

        // Rejected rows are reported with the feature, and never reach the predictions.
        var rejectedIds = reference.Runs.Values.SelectMany(r => r.Rejected).Select(r => r.SampleId).ToHashSet();
        Assert.All(reference.Runs.Values.SelectMany(r => r.Rejected), r => Assert.False(string.IsNullOrEmpty(r.Feature)));
        Assert.DoesNotContain(refPred.Ids, rejectedIds.Contains);
        var defaulted = reference.Runs.Values.Sum(r => r.Coverage!.Defaulted.Sum());
        if (s.Models.Values.Any(m => m.Missing.Kind == MissingPolicyKind.Default)) Assert.True(defaulted > 0, "defaults were used and counted");
    }

    internal static void AssertSame(CombinedPredictions reference, Dictionary<string, (double Value, string? Class, string? Probs)> got, string path)
    {
        Assert.True(reference.Count == got.Count, $"{path}: {got.Count} predictions, reference {reference.Count}");
        for (var r = 0; r < reference.Count; r++)
        {
            Assert.True(got.TryGetValue(reference.Ids[r], out var g), $"{path}: no prediction for {reference.Ids[r]}");
            Assert.True(Env.Bits(reference.Values[r]) == Env.Bits(g.Value), $"{path}: {reference.Ids[r]}: {g.Value:R} != reference {reference.Values[r]:R}");
            Assert.Equal(reference.ClassLabel(r), g.Class);
            if (reference.Probabilities != null) Assert.Equal(reference.ProbabilitiesJson(r), g.Probs);
        }
    }
}
