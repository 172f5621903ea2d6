using System.Diagnostics;
using System.Text.Json;
using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.Warehouse;
using Fed.Warehouse.Sqlite;

namespace Fed.SparkPredict.Tests;

/// <summary>The CLI end to end: daily and hourly runs into the predictions table and Redis; every bad input stops with exit 2 and writes nothing.</summary>
public class JobTests
{
    const string Dt = "2024-03-01";

    static (Scenario S, string Wh, string Scores) Daily(string dataset = "breast_cancer")
    {
        var s = EngineEqualityTests.Make(dataset);
        var wh = "sqlite:" + Path.Combine(s.Dir, "wh.db");
        using (var w = WarehouseFactory.Open(wh)) foreach (var m in s.Models.Values) new Fed.Converter.ModelExporter(w).Export(m);
        foreach (var p in s.Parties)
            Assert.Equal(0, Env.Cli("features", "load", "--party", p, "--csv", s.Csv[p], "--table", s.Table(p), "--dt", Dt, "--warehouse", wh).Code);
        var scores = Path.Combine(s.Dir, "scores");
        foreach (var p in s.Parties)
        {
            var r = Env.Cli("predict", "batch", "--party", p, "--model-id", s.ModelId, "--features", s.Table(p), "--dt", Dt, "--warehouse", wh, "--out", scores, "--json");
            Assert.True(r.Code == 0, r.Err);
        }
        return (s, wh, scores);
    }

    [Fact]
    public void Daily_run_writes_predictions_and_redis_entries_equal_to_predict_local()
    {
        var redis = Env.Require("FED_TEST_REDIS");
        var (s, wh, scores) = Daily("wine");
        using var _ = s;
        var c = Env.Cli("predict", "combine", "--model-id", s.ModelId, "--dt", Dt, "--input", scores, "--warehouse", wh, "--json");
        Assert.True(c.Code == 0, c.Err);
        var refOut = Path.Combine(s.Dir, "ref.csv");
        var l = Env.Cli("predict", "local", "--models", s.ModelsDir, "--party", $"guest={s.Csv["guest"]}", "--party", $"host={s.Csv["host"]}", "--out", refOut);
        Assert.True(l.Code == 0, l.Err);
        var refLines = File.ReadAllLines(refOut);
        Assert.StartsWith("id,predicted_class,p_0,p_1,p_2", refLines[0]);
        using var w = WarehouseFactory.Open(wh);
        var table = Env.ReadPredictions(w, s.ModelId, Dt);
        Assert.Equal(refLines.Length - 1, table.Count);
        foreach (var line in refLines.Skip(1))
        {
            var cells = line.Split(',');
            var (value, cls, probs) = table[cells[0]];
            Assert.Equal(cells[1], cls);
            Assert.Equal("[" + string.Join(",", cells.Skip(2)) + "]", probs);
            Assert.Equal(Env.Bits(cells.Skip(2).Select(double.Parse).Max()), Env.Bits(value));
        }
        var report = JsonDocument.Parse(File.ReadAllText(Path.Combine(scores, $"fed_coverage_{s.ModelId}_v1_{Dt}.json"))).RootElement;
        Assert.True(report.GetProperty("missing_count").GetInt32() > 0);

        var load = Env.Cli("predict", "load-redis", "--redis", redis, "--model-id", s.ModelId, "--dt", Dt, "--ttl", "3600", "--warehouse", wh, "--json");
        Assert.True(load.Code == 0, load.Err);
        Assert.Equal(table.Count, JsonDocument.Parse(load.Out).RootElement.GetProperty("written").GetInt64());
        foreach (var (id, row) in table.Take(25))
        {
            var look = Env.Cli("predict", "lookup", "--redis", redis, "--model-id", s.ModelId, "--sample-id", id, "--json");
            Assert.True(look.Code == 0, look.Err);
            var rec = PredictionRecord.Parse(look.Out, id);
            Assert.Equal(Env.Bits(row.Value), Env.Bits(rec.PredictValue));
            Assert.Equal(row.Class, rec.PredictedClass);
            Assert.Equal(1, rec.Version);
            Assert.Equal(Dt, rec.Dt);
            Assert.Equal(3, rec.Probabilities!.Count);
        }
        using var mux = RedisPredictions.Connect(redis);
        var db = mux.GetDatabase();
        Assert.Equal("1", db.StringGet(PredictionKeys.ActiveVersion(s.ModelId)).ToString());
        var ttl = db.KeyTimeToLive(PredictionKeys.Record(s.ModelId, 1, table.Keys.First()));
        Assert.True(ttl is { TotalSeconds: > 3000 and <= 3600 });
        var missing = Env.Cli("predict", "lookup", "--redis", redis, "--model-id", s.ModelId, "--sample-id", "no-such-sample");
        Assert.Equal(2, missing.Code);
    }

    [Fact]
    public void Hourly_run_rescores_only_changed_samples_and_newest_features_win()
    {
        var redis = Env.Require("FED_TEST_REDIS");
        using var s = EngineEqualityTests.Make("breast_cancer");
        var wh = "sqlite:" + Path.Combine(s.Dir, "wh.db");
        using (var w0 = WarehouseFactory.Open(wh)) foreach (var m in s.Models.Values) new Fed.Converter.ModelExporter(w0).Export(m);
        // Hour 0: every row. Hour 3: 10 guest rows changed (values x1.01), 10 re-sent unchanged; nothing new from the host.
        var guest = File.ReadAllLines(s.Csv["guest"]);
        var changed = guest.Skip(1).Take(10).Select(l => { var c = l.Split(','); for (var i = 2; i < c.Length; i++) if (c[i].Length > 0) c[i] = (double.Parse(c[i]) * 1.01).ToString("R"); return string.Join(',', c); }).ToList();
        var same = guest.Skip(11).Take(10).ToList();
        var h3 = Path.Combine(s.Dir, "guest_h3.csv");
        File.WriteAllLines(h3, [guest[0], .. changed, .. same]);
        var hostEmpty = Path.Combine(s.Dir, "host_h3.csv");
        File.WriteAllLines(hostEmpty, [File.ReadLines(s.Csv["host"]).First()]);
        foreach (var (p, h, csv) in new[] { ("guest", "0", s.Csv["guest"]), ("host", "0", s.Csv["host"]), ("guest", "3", h3), ("host", "3", hostEmpty) })
            Assert.Equal(0, Env.Cli("features", "load", "--party", p, "--csv", csv, "--table", s.Table(p) + "_h", "--dt", Dt, "--hour", h, "--warehouse", wh).Code);

        var files = Path.Combine(s.Dir, "hscores");
        foreach (var hour in new[] { "0", "3" })
            foreach (var p in s.Parties)
            {
                var r = Env.Cli("predict", "batch", "--party", p, "--model-id", s.ModelId, "--features", s.Table(p) + "_h", "--dt", Dt, "--hour", hour, "--warehouse", wh, "--out", files, "--json");
                Assert.True(r.Code == 0, r.Err);
                if (hour == "3" && p == "guest")
                {
                    var doc = JsonDocument.Parse(r.Out).RootElement;
                    Assert.Equal(10, doc.GetProperty("rows_scored").GetInt64() + doc.GetProperty("rows_rejected").GetInt64());
                    Assert.Equal(10, doc.GetProperty("rows_unchanged").GetInt64());
                }
                // The SQL engine applies the same rule to the same rows.
                var q = Env.Cli("predict", "batch", "--party", p, "--model-id", s.ModelId, "--features", s.Table(p) + "_h", "--dt", Dt, "--hour", hour, "--warehouse", wh, "--engine", "sql", "--json");
                Assert.True(q.Code == 0, q.Err);
            }
        (string Id, double Value)? scored = null; // a changed sample that has a prediction, looked up in Redis below
        foreach (var input in new[] { files, "warehouse" })
        {
            var c = Env.Cli("predict", "combine", "--model-id", s.ModelId, "--dt", Dt, "--hour", "3", "--input", input, "--warehouse", wh, "--report", Path.Combine(s.Dir, "h.json"));
            Assert.True(c.Code == 0, c.Err);
            // Reference: predict local on the newest features (hour 0 with the hour-3 changes), restricted to the changed samples.
            var newest = Path.Combine(s.Dir, "guest_newest.csv");
            File.WriteAllLines(newest, [guest[0], .. changed, .. guest.Skip(11)]);
            var reference = LocalPredictor.Run(s.ModelsDir, [("guest", newest), ("host", s.Csv["host"])], Path.Combine(s.Dir, "href.csv"));
            var changedIds = changed.Select(l => l.Split(',')[0]).ToHashSet();
            using var w = WarehouseFactory.Open(wh);
            var got = Env.ReadPredictions(w, s.ModelId, Dt, "03");
            var expected = reference.Predictions.Ids.Select((id, r) => (id, r)).Where(x => changedIds.Contains(x.id)).ToList();
            Assert.True(expected.Count >= 5);
            Assert.Equal(expected.Count, got.Count);
            foreach (var (id, r) in expected) Assert.Equal(Env.Bits(reference.Predictions.Values[r]), Env.Bits(got[id].Value));
            scored ??= (expected[0].id, reference.Predictions.Values[expected[0].r]);
        }
        var load = Env.Cli("predict", "load-redis", "--redis", redis, "--model-id", s.ModelId, "--dt", Dt, "--hour", "3", "--warehouse", wh);
        Assert.True(load.Code == 0, load.Err);
        var (anyId, anyValue) = scored!.Value;
        var look = Env.Cli("predict", "lookup", "--redis", redis, "--model-id", s.ModelId, "--sample-id", anyId, "--version", "1", "--json");
        Assert.True(look.Code == 0, look.Err);
        var rec = PredictionRecord.Parse(look.Out, anyId);
        Assert.Equal("03", rec.Hour);
        Assert.Equal(Env.Bits(anyValue), Env.Bits(rec.PredictValue));
    }

    [Fact]
    public void Bad_inputs_exit_2_and_leave_the_predictions_untouched()
    {
        var (s, wh, scores) = Daily();
        using var _ = s;
        string[] Combine(string input, string dt = Dt, string model = "", params string[] more) =>
            ["predict", "combine", "--model-id", model.Length > 0 ? model : s.ModelId, "--dt", dt, "--input", input, "--warehouse", wh, .. more];
        Assert.Equal(0, Env.Cli(Combine(scores)).Code);
        int Count() { using var w = WarehouseFactory.Open(wh); return Env.ReadPredictions(w, s.ModelId, Dt).Count; }
        var good = Count();
        Assert.True(good > 400);

        void Expect2(string[] args, string needle, string? dirToCheck = null)
        {
            var r = Env.Cli(args);
            Assert.True(r.Code == 2, $"exit {r.Code}: {r.Err}");
            Assert.Contains(needle, r.Err);
            Assert.Equal(good, Count());
        }
        string Copy(string name)
        {
            var d = Path.Combine(s.Dir, name);
            Directory.CreateDirectory(d);
            foreach (var f in Directory.GetFiles(scores)) File.Copy(f, Path.Combine(d, Path.GetFileName(f)));
            return d;
        }
        string HostManifest(string d) => Directory.GetFiles(d, "*host*.manifest.json").Single();
        string HostData(string d) => Directory.GetFiles(d, "*host*.csv").Single();
        void Rewrite(string manifest, Func<PartialScoreManifest, PartialScoreManifest> f) =>
            File.WriteAllText(manifest, JsonSerializer.Serialize(f(PartialScoreFiles.ReadManifest(manifest))));

        // Row count differs from the manifest.
        var d1 = Copy("rowcount");
        Rewrite(HostManifest(d1), m => m with { RowCount = m.RowCount + 1 });
        Expect2(Combine(d1), "row count mismatch");
        // Data file altered: checksum.
        var d2 = Copy("checksum");
        File.AppendAllText(HostData(d2), "br999999,0.5\n");
        Expect2(Combine(d2), "checksum mismatch");
        // Duplicate sample id (manifest consistent with the file).
        var d3 = Copy("dup");
        var lines = File.ReadAllLines(HostData(d3));
        File.WriteAllLines(HostData(d3), [.. lines, lines[1]]);
        Rewrite(HostManifest(d3), m => m with { RowCount = m.RowCount + 1, Sha256 = PartialScoreFiles.Sha256Of(HostData(d3)) });
        Expect2(Combine(d3), "duplicate sample id");
        // A party's file is absent.
        var d4 = Copy("absent");
        File.Delete(HostManifest(d4));
        Expect2(Combine(d4), "'host'");
        // Empty partition: a party sent no rows; and a day nobody scored.
        var d5 = Copy("empty");
        File.WriteAllLines(HostData(d5), [lines[0]]);
        Rewrite(HostManifest(d5), m => m with { RowCount = 0, Sha256 = PartialScoreFiles.Sha256Of(HostData(d5)) });
        Expect2(Combine(d5), "empty partition");
        Expect2(Combine("warehouse"), "empty partition");
        Expect2(Combine(scores, "2024-03-02"), "no partial scores");
        // Unknown model, unknown version, bad dt.
        Expect2(Combine(scores, Dt, "nosuch-model"), "unknown model id");
        Expect2(Combine(scores, Dt, "", "--version", "9"), "no version 9");
        Expect2(Combine(scores, "2024-13-45"), "not a date");
        Expect2(["predict", "batch", "--party", "guest", "--model-id", s.ModelId, "--version", "9", "--features", s.Table("guest"), "--dt", Dt, "--warehouse", wh], "no version 9");
        Expect2(["predict", "batch", "--party", "guest", "--model-id", s.ModelId, "--features", "no_such_table", "--dt", Dt, "--warehouse", wh, "--engine", "sql"], "no feature table");
        Expect2(["predict", "batch", "--party", "guest", "--model-id", s.ModelId, "--features", s.Csv["host"], "--dt", Dt, "--warehouse", wh, "--out", Path.Combine(s.Dir, "x")], "needs feature column");
        Expect2(["predict", "local", "--models", s.ModelsDir, "--party", $"guest={s.Csv["guest"]}", "--out", Path.Combine(s.Dir, "p.csv")], "'host'");
        // No Spark here: a clear failure naming SPARK_HOME, and the SQL is still emitted.
        var sql = Path.Combine(s.Dir, "guest.sql");
        var spark = Env.Cli("predict", "batch", "--party", "guest", "--model-id", s.ModelId, "--features", s.Table("guest"), "--dt", Dt, "--warehouse", wh, "--engine", "spark-sql", "--emit-sql", sql);
        if (Environment.GetEnvironmentVariable("SPARK_HOME") is null) { Assert.Equal(1, spark.Code); Assert.Contains("SPARK_HOME", spark.Err); }
        Assert.Contains($"INSERT OVERWRITE TABLE `fed_partial_scores` PARTITION (`model_id`='{s.ModelId}', `version`='1', `party`='guest', `dt`='2024-03-01')", File.ReadAllText(sql));
    }

    /// <summary>Every generated Spark SQL and HiveQL statement (daily/hourly, wide/long, reject/default) parses with the real grammars.</summary>
    [Fact]
    public void Generated_spark_sql_and_hiveql_pass_the_real_grammars()
    {
        using var s = EngineEqualityTests.Make("german_credit");
        using var w = new SqliteWarehouse(Path.Combine(s.Dir, "wh.db"));
        s.Setup(w, Dt);
        var statements = new List<string>();
        foreach (var p in s.Parties)
            foreach (var layout in new[] { WeightLayout.Wide, WeightLayout.Long })
                foreach (int? hour in new int?[] { null, 7 })
                {
                    var plan = ScoringPlan.Build(w, s.ModelId, null, p, s.Table(p), Partition.Parse(Dt, hour), layout);
                    statements.AddRange(new SqlGenerator(SqlDialect.Hive, plan).ScriptStatements());
                }
        Fed.TestSupport.SqlGrammar.AssertValid(statements, "spark", "hive");
        Assert.True(statements.Count >= 3 * 2 * 2 * 4);
    }
}
