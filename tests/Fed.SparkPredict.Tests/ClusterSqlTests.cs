using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Fed.Converter;
using Fed.Core;
using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.Warehouse;
using Fed.Warehouse.Sqlite;

namespace Fed.SparkPredict.Tests;

/// <summary>The cluster side: spark-sql's output read back, partition specs, no self-overwrite, the real grammars, --ids.</summary>
public class ClusterSqlTests
{
    const string Dt = "2024-03-01";

    /// <summary>What spark-sql -S prints for the script's tagged SELECTs: the same statements run here in SQLite,
    /// rows printed tab-separated with NULL as "NULL", among unrelated lines.</summary>
    static string SparkSqlStdout(IWarehouse w, params SqlStatement[] statements)
    {
        var sb = new StringBuilder("WARN  spark: using builtin-java classes\n");
        foreach (var st in statements)
        {
            using var r = w.Query(st.Sql, st.Args);
            while (r.Read())
                sb.Append(string.Join('\t', Enumerable.Range(0, r.FieldCount).Select(i => r.IsNull(i) ? "NULL" : r.GetString(i)))).Append('\n');
            sb.Append("Time taken: 0.1 seconds\n");
        }
        return sb.ToString();
    }

    [Fact]
    public void Spark_sql_output_parsing_gives_the_counts_and_coverage_of_the_local_engine()
    {
        using var s = EngineEqualityTests.Make("german_credit"); // host1 rejects, host2 uses defaults: both coverage kinds
        using var w = new SqliteWarehouse(Path.Combine(s.Dir, "wh.db"));
        s.Setup(w, Dt);
        foreach (var p in s.Parties)
        {
            var plan = ScoringPlan.Build(w, s.ModelId, null, p, s.Table(p), Partition.Parse(Dt, null));
            var local = LocalEngine.Execute(plan, w, Path.Combine(s.Dir, "scores"));
            var gen = new SqlGenerator(w.Dialect, plan);
            var parsed = SparkSqlOutput.Parse(SparkSqlStdout(w, gen.CoverageCounts(tagged: true), gen.MissingRows(ScoringRunResult.MaxListed, tagged: true)), plan.Model);
            Assert.Equal(local.RowsScored, parsed.Coverage.RowsScored);
            Assert.Equal(local.RowsRejected, parsed.Coverage.RowsRejected);
            Assert.Equal(local.Coverage!.RowsSeen, parsed.Coverage.RowsSeen);
            Assert.Equal(local.Coverage.Missing, parsed.Coverage.Missing);
            Assert.Equal(local.Coverage.Defaulted, parsed.Coverage.Defaulted);
            Assert.Equal(local.Rejected.OrderBy(r => r.SampleId, StringComparer.Ordinal), parsed.Rejected.OrderBy(r => r.SampleId, StringComparer.Ordinal));
            Assert.Null(parsed.IdsNotFound);
        }
        var model = ScoringPlan.Build(w, s.ModelId, null, "host1", s.Table("host1"), Partition.Parse(Dt, null)).Model;
        Assert.Contains("no 'fed_coverage' row", Assert.Throws<FedFailureException>(() => SparkSqlOutput.Parse("Time taken: 1 s\n", model)).Message);
        Assert.Contains("not a count", Assert.Throws<FedFailureException>(() => SparkSqlOutput.Parse("fed_coverage\tx" + string.Concat(Enumerable.Repeat("\t0", model.FeatureCount + 1)) + "\n", model)).Message);
    }

    [Fact]
    public void Spark_sql_engine_with_a_stand_in_spark_sql_executable_reports_its_counts_and_names_its_error()
    {
        using var s = EngineEqualityTests.Make("breast_cancer");
        using var w = new SqliteWarehouse(Path.Combine(s.Dir, "wh.db"));
        s.Setup(w, Dt);
        var plan = ScoringPlan.Build(w, s.ModelId, null, "host", s.Table("host"), Partition.Parse(Dt, null));
        var local = LocalEngine.Execute(plan, w, Path.Combine(s.Dir, "scores"));
        var gen = new SqlGenerator(w.Dialect, plan);
        var canned = Path.Combine(s.Dir, "stdout.txt");
        File.WriteAllText(canned, SparkSqlStdout(w, gen.CoverageCounts(tagged: true), gen.MissingRows(ScoringRunResult.MaxListed, tagged: true)));
        // The stand-in checks it was called as 'spark-sql -S -f FILE' with the emitted script, then prints the canned rows.
        var exe = Path.Combine(s.Dir, "spark-sql");
        File.WriteAllText(exe, $"#!/bin/sh\n[ \"$1\" = -S ] && [ \"$2\" = -f ] && grep -q 'INSERT OVERWRITE TABLE' \"$3\" || exit 9\ncat '{canned}'\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(exe, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var res = SparkSqlEngine.Execute(plan, SparkSqlEngine.Emit(plan, Path.Combine(s.Dir, "host.sql")), null, exe);
        Assert.Equal(local.RowsScored, res.RowsScored);
        Assert.Equal(5, res.RowsRejected);
        Assert.Equal(local.RowsRejected, res.RowsRejected);
        Assert.Equal(local.Coverage!.Missing, res.Coverage!.Missing);

        File.WriteAllText(exe, "#!/bin/sh\necho 'Time taken: 0.2 seconds'\necho '[TABLE_OR_VIEW_NOT_FOUND] Error in query: The table or view `feat_x` cannot be found.' >&2\nexit 1\n");
        var e = Assert.Throws<FedFailureException>(() => SparkSqlEngine.Execute(plan, Path.Combine(s.Dir, "host.sql"), null, exe));
        Assert.Contains("exited 1", e.Message);
        Assert.Contains("Error in query: The table or view `feat_x` cannot be found.", e.Message);
    }

    static readonly Regex Overwrite = new(@"^INSERT OVERWRITE TABLE `(?<t>[a-z0-9_]+)`(?: PARTITION \((?<p>[^)]*)\))?", RegexOptions.Multiline);

    /// <summary>Every INSERT OVERWRITE names a static partition and never reads the table it overwrites.</summary>
    static List<(string Table, string Spec)> AssertOwnPartitionsOnly(IEnumerable<string> statements)
    {
        var found = new List<(string, string)>();
        foreach (var st in statements)
        {
            var m = Overwrite.Match(st);
            if (!m.Success) continue;
            var t = m.Groups["t"].Value;
            Assert.True(m.Groups["p"].Success, $"an overwrite of all of {t}:\n{st}");
            Assert.DoesNotContain($"FROM `{t}`", st);
            Assert.DoesNotContain($"JOIN `{t}`", st);
            found.Add((t, m.Groups["p"].Value));
        }
        return found;
    }

    [Fact]
    public void Hive_jobs_overwrite_exactly_their_own_partition_never_read_it_and_pass_the_real_grammars()
    {
        using var s = EngineEqualityTests.Make("wine");
        using var w = new SqliteWarehouse(Path.Combine(s.Dir, "wh.db"));
        s.Setup(w, Dt);
        var statements = new List<string>();
        var m = s.ModelId;

        // Scoring: one job's partition.
        foreach (int? hour in new int?[] { null, 7 })
        {
            var plan = ScoringPlan.Build(w, m, null, "host", s.Table("host"), Partition.Parse(Dt, hour));
            var st = new SqlGenerator(SqlDialect.Hive, plan).ScriptStatements();
            var spec = AssertOwnPartitionsOnly(st).Single();
            Assert.Equal(hour is null ? "fed_partial_scores" : "fed_partial_scores_hourly", spec.Table);
            Assert.Equal($"`model_id`='{m}', `version`='1', `party`='host', `dt`='{Dt}'" + (hour is null ? "" : ", `hour`='07'"), spec.Spec);
            statements.AddRange(st);
        }
        // Combine: one model version's partition of the predictions (softmax here, logistic and linear below).
        foreach (int? hour in new int?[] { null, 5 })
        {
            var sig = CombineCore.Signature(w, m, null);
            var st = new CombineSql(sig, Partition.Parse(Dt, hour)).Statements();
            var spec = AssertOwnPartitionsOnly(st).Single();
            Assert.Equal($"`model_id`='{m}', `version`='1', `dt`='{Dt}'" + (hour is null ? "" : ", `hour`='05'"), spec.Spec);
            statements.AddRange(st);
        }
        foreach (var kind in new[] { ModelKind.Logistic, ModelKind.Linear })
            statements.AddRange(new CombineSql(new ModelSignature("m-1", 3, kind, [], ["guest", "host1", "host2"]), Partition.Parse(Dt, null)).Statements());
        // Features load: a staged external table, then the feature table's partition.
        var load = FeatureLoader.HiveStatements(s.Csv["guest"], "feat_guest", Partition.Parse(Dt, 3), "hdfs:///staging/fed/guest");
        Assert.Equal([("feat_guest", $"`dt`='{Dt}', `hour`='03'")], AssertOwnPartitionsOnly(load));
        Assert.DoesNotContain(load, x => x.Contains("SELECT *"));
        statements.AddRange(load);

        // Model export: each weight table's partition of this version, the registry's partition of this model via staging.
        foreach (var pm in s.Models.Values)
        {
            var sm = ScoringModel.From(pm);
            var export = HiveModelScript.Generate(sm, activate: true, DateTime.UnixEpoch);
            var specs = AssertOwnPartitionsOnly(export);
            var v = $"`model_id`='{m}', `version`='1'";
            Assert.Equal(
            [
                ("fed_model_columns", $"{v}, `party`='{pm.PartyId}'"), ("fed_model_long", $"{v}, `party`='{pm.PartyId}'"),
                (Schema.WideName(pm.PartyId, sm.FeatureCount), v),
                ("fed_model_registry_staging", $"`model_id`='{m}'"), ("fed_model_registry", $"`model_id`='{m}'"),
            ], specs);
            // The staging statement reads only this model's registry partition.
            Assert.Contains($"FROM `fed_model_registry` WHERE model_id = '{m}'", export.Single(x => x.StartsWith("INSERT OVERWRITE TABLE `fed_model_registry_staging`")));
            statements.AddRange(export);
        }
        statements.AddRange(HiveRegistry.Activate(m, 1, "2024-03-01T00:00:00.000Z"));
        Assert.DoesNotContain(statements, x => x.Contains("SELECT *"));
        Fed.TestSupport.SqlGrammar.AssertValid(statements, "spark", "hive");
    }

    [Fact]
    public void Ids_score_only_the_agreed_ids_on_every_engine_and_count_the_ids_not_found()
    {
        using var s = EngineEqualityTests.Make("breast_cancer");
        var wh = "sqlite:" + Path.Combine(s.Dir, "wh.db");
        using (var w = WarehouseFactory.Open(wh)) s.Setup(w, Dt);
        var guestIds = File.ReadLines(s.Csv["guest"]).Skip(1).Select(l => l.Split(',')[0]).ToList();
        var agreed = guestIds.Where((_, i) => i % 7 == 0).ToList();
        var idsFile = Path.Combine(s.Dir, "agreed.txt");
        File.WriteAllLines(idsFile, ["sample_id", .. agreed, "nobody-1", "nobody-2", agreed[0]]);
        using (var w = WarehouseFactory.Open(wh))
        {
            w.Execute("CREATE TABLE agreed_ids (sample_id TEXT NOT NULL)");
            foreach (var id in agreed.Append("nobody-1").Append("nobody-2")) w.Execute("INSERT INTO agreed_ids (sample_id) VALUES (?)", id);
        }
        var outDir = Path.Combine(s.Dir, "out");
        foreach (var (engine, ids) in new[] { ("local", idsFile), ("sql", idsFile), ("local", "agreed_ids"), ("sql", "agreed_ids") })
        {
            var args = new List<string> { "predict", "batch", "--party", "guest", "--model-id", s.ModelId, "--features", s.Table("guest"), "--dt", Dt, "--warehouse", wh, "--engine", engine, "--ids", ids, "--json" };
            if (engine == "local") args.AddRange(["--out", outDir]);
            var r = Env.Cli([.. args]);
            Assert.True(r.Code == 0, r.Err);
            var doc = JsonDocument.Parse(r.Out).RootElement;
            Assert.Equal(agreed.Count, doc.GetProperty("rows_scored").GetInt64() + doc.GetProperty("rows_rejected").GetInt64());
            Assert.Equal(2, doc.GetProperty("ids_not_found").GetInt64());
            if (engine == "sql")
            {
                using var w = WarehouseFactory.Open(wh);
                using var q = w.Query("SELECT sample_id FROM fed_partial_scores WHERE model_id = ? AND party = ? AND dt = ?", s.ModelId, "guest", Dt);
                var got = new List<string>();
                while (q.Read()) got.Add(q.GetString(0));
                Assert.Equal(agreed.Order(StringComparer.Ordinal), got.Order(StringComparer.Ordinal));
            }
            else
            {
                var set = PartialScoreFiles.Read(Directory.GetFiles(outDir, "*guest*.manifest.json").Single(), PartialScoreFiles.ReadManifest(Directory.GetFiles(outDir, "*guest*.manifest.json").Single()));
                Assert.Equal(agreed.Order(StringComparer.Ordinal), set.Ids.Order(StringComparer.Ordinal));
            }
        }
        // Spark SQL: a table of ids joins the scoring; a local file is refused (exit 2).
        var sql = Path.Combine(s.Dir, "ids.sql");
        var spark = Env.Cli("predict", "batch", "--party", "guest", "--model-id", s.ModelId, "--features", s.Table("guest"), "--dt", Dt, "--warehouse", wh, "--engine", "spark-sql", "--ids", "agreed_ids", "--emit-sql", sql);
        Assert.Equal(1, spark.Code); // no SPARK_HOME here
        var script = File.ReadAllText(sql);
        Assert.Contains("f.sample_id IN (SELECT i.sample_id FROM `agreed_ids` i)", script);
        Assert.Contains("'fed_ids_not_found'", script);
        var refused = Env.Cli("predict", "batch", "--party", "guest", "--model-id", s.ModelId, "--features", s.Table("guest"), "--dt", Dt, "--warehouse", wh, "--engine", "spark-sql", "--ids", idsFile, "--emit-sql", sql);
        Assert.Equal(2, refused.Code);
        Assert.Contains("table of agreed ids", refused.Err);
        var missing = Env.Cli("predict", "batch", "--party", "guest", "--model-id", s.ModelId, "--features", s.Table("guest"), "--dt", Dt, "--warehouse", wh, "--engine", "sql", "--ids", "no_such_ids");
        Assert.Equal(2, missing.Code);
    }
}
