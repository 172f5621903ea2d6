using System.Globalization;
using System.Text.Json;
using DuckDB.NET.Data;
using Fed.Core.Model;
using Fed.Warehouse;
using ParquetSharp;

namespace Fed.SparkPredict.Tests;

/// <summary>
/// Hive-layout Parquet as Fed's table format: features in dt= folders -> predict batch -> Parquet partial scores ->
/// predict combine -> Parquet predictions, equal bit for bit to 'fed predict local' on the CSVs; DuckDB (an
/// independent reader, hive_partitioning=true) reads every file Fed writes and sees Fed's values and partition columns.
/// Arrow IPC partial scores (--format arrow, party -> initiator) carry the same bits.
/// </summary>
public class ParquetTests
{
    const string Dt = "2024-03-01";

    /// <summary>The party's CSV as a Hive table: DuckDB writes TABLE/dt=D/part-0|1.parquet (rows split, 50-row row groups; blanks become nulls).</summary>
    static string ToHiveParquet(Scenario s, string party, string root, string? hour = null)
    {
        var table = Path.Combine(root, s.Table(party));
        var dir = Path.Combine(table, $"dt={Dt}" + (hour is null ? "" : $"/hour={hour}"));
        Directory.CreateDirectory(dir);
        using var db = DuckDb();
        Exec(db, $"CREATE TABLE t AS SELECT * FROM read_csv('{s.Csv[party]}', header = true, types = {{'id': 'VARCHAR'}})");
        Exec(db, $"COPY (SELECT * FROM t WHERE hash(id) % 2 = 0) TO '{dir}/part-0.parquet' (FORMAT parquet, ROW_GROUP_SIZE 50)");
        Exec(db, $"COPY (SELECT * FROM t WHERE hash(id) % 2 = 1) TO '{dir}/part-1.parquet' (FORMAT parquet, ROW_GROUP_SIZE 50)");
        return table;
    }

    /// <summary>A SQLite warehouse next to the scenario holding every party's model.</summary>
    static string Export(Scenario s)
    {
        var wh = "sqlite:" + Path.Combine(s.Dir, "wh.db");
        using var w = WarehouseFactory.Open(wh);
        foreach (var m in s.Models.Values) new Fed.Converter.ModelExporter(w).Export(m);
        return wh;
    }

    static DuckDBConnection DuckDb()
    {
        var db = new DuckDBConnection("DataSource=:memory:");
        db.Open();
        return db;
    }

    static void Exec(DuckDBConnection db, string sql)
    {
        using var c = db.CreateCommand();
        c.CommandText = sql;
        c.ExecuteNonQuery();
    }

    static List<object?[]> Query(DuckDBConnection db, string sql)
    {
        using var c = db.CreateCommand();
        c.CommandText = sql;
        using var r = c.ExecuteReader();
        var rows = new List<object?[]>();
        while (r.Read())
        {
            var row = new object?[r.FieldCount];
            for (var i = 0; i < row.Length; i++) row[i] = r.IsDBNull(i) ? null : r.GetValue(i);
            rows.Add(row);
        }
        return rows;
    }

    /// <summary>Hive partitions typed as text, as Fed writes them (DuckDB would make dt a DATE).</summary>
    static string Read(string glob) => $"read_parquet('{glob}', hive_partitioning = true, hive_types_autocast = false)";

    [Theory]
    [InlineData("german_credit")] // three parties, reject and default policies, nulls in two of them
    [InlineData("wine")]          // softmax: one partial score per class
    public void Parquet_round_trip_equals_predict_local_bit_for_bit_and_duckdb_reads_every_file(string dataset)
    {
        using var s = EngineEqualityTests.Make(dataset);
        var wh = Export(s);
        var features = Path.Combine(s.Dir, "features");
        var outDir = Path.Combine(s.Dir, "out");
        var csvScores = Path.Combine(s.Dir, "csv-scores");
        var arrowScores = Path.Combine(s.Dir, "arrow-scores");
        var runs = new Dictionary<string, JsonElement>();
        foreach (var p in s.Parties)
        {
            var table = ToHiveParquet(s, p, features);
            var r = Env.Cli("predict", "batch", "--party", p, "--model-id", s.ModelId, "--features", table, "--dt", Dt, "--warehouse", wh,
                "--out", outDir, "--format", "parquet", "--json");
            Assert.True(r.Code == 0, r.Err);
            runs[p] = JsonDocument.Parse(r.Out).RootElement.Clone();
            var c = Env.Cli("predict", "batch", "--party", p, "--model-id", s.ModelId, "--features", s.Csv[p], "--dt", Dt, "--warehouse", wh, "--out", csvScores);
            Assert.True(c.Code == 0, c.Err);
            var a = Env.Cli("predict", "batch", "--party", p, "--model-id", s.ModelId, "--features", table, "--dt", Dt, "--warehouse", wh, "--out", arrowScores, "--format", "arrow");
            Assert.True(a.Code == 0, a.Err);
        }
        var combine = Env.Cli("predict", "combine", "--model-id", s.ModelId, "--dt", Dt, "--input", outDir, "--warehouse", wh,
            "--out", outDir, "--format", "parquet", "--json");
        Assert.True(combine.Code == 0, combine.Err);
        var reference = LocalPredictor.Run(s.ModelsDir, s.Parties.Select(p => (p, s.Csv[p])).ToList(), Path.Combine(s.Dir, "ref.csv"));

        // Same rows scored and rejected as the CSV path, with the rejected samples listed in the manifest.
        foreach (var p in s.Parties)
        {
            Assert.Equal(reference.Runs[p].RowsScored, runs[p].GetProperty("rows_scored").GetInt64());
            Assert.Equal(reference.Runs[p].RowsRejected, runs[p].GetProperty("rows_rejected").GetInt64());
            var manifest = PartialScoreFiles.ReadManifest(Path.Combine(outDir, "fed_partial_scores", $"model_id={s.ModelId}", "version=1", $"party={p}", $"dt={Dt}", HiveParquet.ManifestName));
            Assert.Equal(reference.Runs[p].RowsScored, manifest.RowCount);
            Assert.Equal(reference.Runs[p].Rejected.Select(x => x.SampleId).Order(), manifest.Rejected!.Select(x => x.SampleId).Order());
        }
        if (dataset == "german_credit") Assert.True(reference.Runs.Values.Sum(r => r.RowsRejected) > 0 && reference.Runs["host2"].Coverage!.Defaulted.Sum() > 0);

        using var db = DuckDb();
        // Partial scores: DuckDB's values = Fed's own reader's = the CSV path's, bit for bit; partition columns as folders say.
        var partials = Query(db, $"SELECT model_id, version, party, dt, sample_id, class_index, partial_score FROM {Read(outDir + "/fed_partial_scores/*/*/*/*/*.parquet")}");
        var outputs = s.Kind == ModelKind.Softmax ? 3 : 1;
        Assert.Equal(s.Parties.Sum(p => reference.Runs[p].RowsScored) * outputs, partials.Count);
        Assert.All(partials, row => Assert.Equal([s.ModelId, "1", Dt], new[] { row[0], row[1], row[3] }));
        foreach (var p in s.Parties)
        {
            var csvSet = PartialScoreFiles.Find(csvScores, s.ModelId, 1, Partition.Parse(Dt, null)).Single(f => f.Manifest.Party == p);
            var fromCsv = PartialScoreFiles.Read(csvSet.Path, csvSet.Manifest);
            var pq = HiveParquet.FindPartialScores(outDir, s.ModelId, 1, Partition.Parse(Dt, null)).Single(f => f.Manifest.Party == p);
            var fed = PartialScoreFiles.Read(pq.Path, pq.Manifest);
            var duck = partials.Where(r => (string)r[2]! == p).ToDictionary(r => ((string)r[4]!, (int)r[5]!), r => (double)r[6]!);
            var arrowSet = PartialScoreFiles.Find(arrowScores, s.ModelId, 1, Partition.Parse(Dt, null)).Single(f => f.Manifest.Party == p);
            Assert.EndsWith(".arrow", arrowSet.Manifest.DataFile);
            var fromArrow = PartialScoreFiles.Read(arrowSet.Path, arrowSet.Manifest);
            Assert.Equal(fed.Ids, fromArrow.Ids);
            for (var c = 0; c < outputs; c++) Assert.Equal(fed.Scores[c].Select(Env.Bits), fromArrow.Scores[c].Select(Env.Bits));
            var csvRow = fromCsv.Ids.Select((id, i) => (id, i)).ToDictionary(x => x.id, x => x.i);
            Assert.Equal(fromCsv.Ids.Order(StringComparer.Ordinal), fed.Ids.Order(StringComparer.Ordinal));
            Assert.Equal(fed.Count * outputs, duck.Count);
            for (var i = 0; i < fed.Count; i++)
                for (var c = 0; c < outputs; c++)
                {
                    Assert.Equal(Env.Bits(fromCsv.Scores[c][csvRow[fed.Ids[i]]]), Env.Bits(fed.Scores[c][i]));
                    Assert.Equal(Env.Bits(fed.Scores[c][i]), Env.Bits(duck[(fed.Ids[i], c)]));
                }
        }

        // Predictions: DuckDB reads exactly predict local's bits, under model_id/version/dt.
        var preds = Query(db, $"SELECT model_id, version, dt, sample_id, predict_value, predicted_class, probabilities FROM {Read(outDir + "/fed_predictions/*/*/*/*.parquet")}");
        Assert.All(preds, row => Assert.Equal([s.ModelId, "1", Dt], new[] { row[0], row[1], row[2] }));
        EngineEqualityTests.AssertSame(reference.Predictions,
            preds.ToDictionary(r => (string)r[3]!, r => ((double)r[4]!, (string?)r[5], (string?)r[6])), "parquet round trip read by DuckDB");
        // The Arrow IPC partial scores (party -> initiator) combine to the same bits.
        var fromArrowDir = Env.Cli("predict", "combine", "--model-id", s.ModelId, "--dt", Dt, "--input", arrowScores, "--warehouse", wh);
        Assert.True(fromArrowDir.Code == 0, fromArrowDir.Err);
        using (var w = WarehouseFactory.Open(wh)) EngineEqualityTests.AssertSame(reference.Predictions, Env.ReadPredictions(w, s.ModelId, Dt), "arrow partial scores");
        // A partial-score file altered in transit is refused (checksum), nothing combined.
        var arrowFile = Directory.GetFiles(arrowScores, "*.arrow").First();
        var bytes = File.ReadAllBytes(arrowFile);
        bytes[bytes.Length / 2] ^= 1;
        File.WriteAllBytes(arrowFile, bytes);
        var tampered = Env.Cli("predict", "combine", "--model-id", s.ModelId, "--dt", Dt, "--input", arrowScores, "--warehouse", wh);
        Assert.Equal(2, tampered.Code);
        Assert.Contains("checksum mismatch", tampered.Err);

        var report = JsonDocument.Parse(combine.Out).RootElement;
        Assert.Equal(reference.Predictions.Count, report.GetProperty("predictions").GetInt32());
        Assert.Equal(reference.Predictions.Missing.Count, report.GetProperty("missing_count").GetInt32());
    }

    [Fact]
    public void Rerun_replaces_exactly_its_partition_and_hourly_folders_follow_the_hour()
    {
        using var s = EngineEqualityTests.Make("breast_cancer");
        var wh = Export(s);
        var features = Path.Combine(s.Dir, "features");
        var outDir = Path.Combine(s.Dir, "out");
        var guest = ToHiveParquet(s, "guest", features, hour: "07");
        var host = ToHiveParquet(s, "host", features, hour: "07");
        foreach (var (p, t) in new[] { ("guest", guest), ("host", host) })
            Assert.Equal(0, Env.Cli("predict", "batch", "--party", p, "--model-id", s.ModelId, "--features", t, "--dt", Dt, "--hour", "7", "--warehouse", wh, "--out", outDir, "--format", "parquet").Code);
        var hostPart = Path.Combine(outDir, "fed_partial_scores_hourly", $"model_id={s.ModelId}", "version=1", "party=host", $"dt={Dt}", "hour=07");
        var guestPart = hostPart.Replace("party=host", "party=guest");
        var guestBefore = File.ReadAllBytes(Path.Combine(guestPart, HiveParquet.PartFile));

        // The host reruns with fewer rows: its partition holds exactly the new rows, the guest's is untouched.
        File.Delete(Path.Combine(host, $"dt={Dt}", "hour=07", "part-1.parquet"));
        Assert.Equal(0, Env.Cli("predict", "batch", "--party", "host", "--model-id", s.ModelId, "--features", host, "--dt", Dt, "--hour", "7", "--warehouse", wh, "--out", outDir, "--format", "parquet").Code);
        using var db = DuckDb();
        var expected = Query(db, $"SELECT count(*) FROM read_parquet('{host}/dt={Dt}/hour=07/part-0.parquet')")[0][0];
        var rejected = PartialScoreFiles.ReadManifest(Path.Combine(hostPart, HiveParquet.ManifestName)).Rejected!.Count;
        var rows = Query(db, $"SELECT party, hour, count(*) FROM {Read(outDir + "/fed_partial_scores_hourly/*/*/*/*/*/*.parquet")} GROUP BY ALL ORDER BY party");
        Assert.Equal(2, rows.Count);
        Assert.Equal(["host", "07", Convert.ToInt64(expected) - rejected], new object?[] { rows[1][0], rows[1][1], Convert.ToInt64(rows[1][2]) });
        Assert.Equal(["guest", "07"], new[] { rows[0][0], rows[0][1] });
        Assert.Equal(guestBefore, File.ReadAllBytes(Path.Combine(guestPart, HiveParquet.PartFile)));
        Assert.Equal([HiveParquet.ManifestName, HiveParquet.PartFile], Directory.GetFiles(hostPart).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Empty(Directory.GetDirectories(Path.GetDirectoryName(hostPart)!, ".*")); // no staging or old folder left

        // Combine for hour 7 from the Parquet folders equals predict local on the CSVs restricted to the host's remaining rows.
        var c = Env.Cli("predict", "combine", "--model-id", s.ModelId, "--dt", Dt, "--hour", "7", "--input", outDir, "--warehouse", wh, "--out", outDir, "--format", "parquet", "--json");
        Assert.True(c.Code == 0, c.Err);
        var preds = Query(db, $"SELECT hour, count(*) FROM {Read(outDir + "/fed_predictions_hourly/*/*/*/*/*.parquet")} GROUP BY ALL");
        Assert.Equal("07", preds.Single()[0]);
        Assert.Equal(JsonDocument.Parse(c.Out).RootElement.GetProperty("predictions").GetInt64(), Convert.ToInt64(preds.Single()[1]));
    }

    /// <summary>Writes a one-file Hive table with the given columns (ParquetSharp), for the refusal cases.</summary>
    static string Table(string root, string name, Column[] columns, Action<RowGroupWriter> write, string part = "dt=2024-03-01")
    {
        var dir = Path.Combine(root, name, part);
        Directory.CreateDirectory(dir);
        using var f = new ParquetFileWriter(Path.Combine(dir, "part-0.parquet"), columns);
        using (var rg = f.AppendRowGroup()) write(rg);
        f.Close();
        return Path.Combine(root, name);
    }

    [Fact]
    public void Bad_parquet_input_is_refused_with_exit_2_and_nothing_written()
    {
        using var s = EngineEqualityTests.Make("breast_cancer");
        var wh = Export(s);
        var features = s.Models["guest"].Features;
        var root = Path.Combine(s.Dir, "bad");
        var outDir = Path.Combine(s.Dir, "out");
        void Col<T>(RowGroupWriter rg, T[] v) { using var w = rg.NextColumn().LogicalWriter<T>(); w.WriteBatch(v); }
        Column[] Cols(params string[] extra) => [new Column<string>("id"), .. features.Select(f => (Column)new Column<double?>(f)), .. extra.Select(e => (Column)new Column<double>(e))];
        void Rows(RowGroupWriter rg, double first, params double[][] extra)
        {
            Col(rg, new[] { "a", "b" });
            for (var i = 0; i < features.Length; i++) Col(rg, new double?[] { i == 0 ? first : 1.0, null });
            foreach (var e in extra) Col(rg, e);
        }
        var cases = new (string Table, string Message)[]
        {
            (Table(root, "dup", Cols(features[0].ToUpperInvariant()), rg => Rows(rg, 1.0, [1.0, 2.0])), "ambiguous"),
            (Table(root, "nan", Cols(), rg => Rows(rg, double.NaN)), "not a value"),
            (Table(root, "inf", Cols(), rg => Rows(rg, double.PositiveInfinity)), "not a value"),
            (Table(root, "lacks", [new Column<string>("id"), new Column<double>(features[0])], rg => { Col(rg, new[] { "a" }); Col(rg, new[] { 1.0 }); }), "needs feature column"),
            (Table(root, "text", [new Column<string>("id"), .. features.Select(f => (Column)new Column<string>(f))], rg => { Col(rg, new[] { "a" }); foreach (var _ in features) Col(rg, new[] { "1" }); }), "must be DOUBLE"),
            (Table(root, "noday", Cols(), rg => Rows(rg, 1.0), part: "dt=2024-03-02"), "no partition dt=2024-03-01"),
        };
        foreach (var (table, message) in cases)
        {
            var r = Env.Cli("predict", "batch", "--party", "guest", "--model-id", s.ModelId, "--features", table, "--dt", Dt, "--warehouse", wh, "--out", outDir, "--format", "parquet");
            Assert.True(r.Code == 2, $"{table}: exit {r.Code}: {r.Err}");
            Assert.Contains(message, r.Err);
            Assert.DoesNotContain("   at ", r.Err);
            Assert.False(Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir, "*", SearchOption.AllDirectories).Any(), $"{table}: something was written");
        }

        // A bad value in the first of many row groups (read in parallel): the error, not a hang, and nothing written.
        var many = Path.Combine(root, "many", $"dt={Dt}");
        Directory.CreateDirectory(many);
        using (var f = new ParquetFileWriter(Path.Combine(many, "part-0.parquet"), Cols()))
        {
            for (var g = 0; g < 40; g++)
                using (var rg = f.AppendRowGroup())
                {
                    Col(rg, Enumerable.Range(0, 1000).Select(i => $"s{g}_{i}").ToArray());
                    for (var i = 0; i < features.Length; i++) Col(rg, Enumerable.Range(0, 1000).Select(r => (double?)(g == 0 && r == 999 && i == 3 ? double.NaN : r)).ToArray());
                }
            f.Close();
        }
        var m = Env.Cli("predict", "batch", "--party", "guest", "--model-id", s.ModelId, "--features", Path.Combine(root, "many"), "--dt", Dt, "--warehouse", wh, "--out", outDir, "--format", "parquet");
        Assert.True(m.Code == 2, m.Err);
        Assert.Contains("not a value", m.Err);
        Assert.False(Directory.Exists(outDir));

        // hour=7 and hour=07 side by side: ambiguous.
        var hourly = Table(root, "hours", Cols(), rg => Rows(rg, 1.0), part: "dt=2024-03-01/hour=07");
        Table(root, "hours", Cols(), rg => Rows(rg, 1.0), part: "dt=2024-03-01/hour=7");
        var h = Env.Cli("predict", "batch", "--party", "guest", "--model-id", s.ModelId, "--features", hourly, "--dt", Dt, "--hour", "7", "--warehouse", wh, "--out", outDir, "--format", "parquet");
        Assert.Equal(2, h.Code);
        Assert.Contains("ambiguous hour partition", h.Err);

        // A symbolic link inside the table (it could point at anyone's data) is refused.
        var linked = Path.Combine(root, "linked", $"dt={Dt}");
        Directory.CreateDirectory(linked);
        File.CreateSymbolicLink(Path.Combine(linked, "part-0.parquet"), Path.Combine(root, "nan", $"dt={Dt}", "part-0.parquet"));
        var l = Env.Cli("predict", "batch", "--party", "guest", "--model-id", s.ModelId, "--features", Path.Combine(root, "linked"), "--dt", Dt, "--warehouse", wh, "--out", outDir, "--format", "parquet");
        Assert.Equal(2, l.Code);
        Assert.Contains("symbolic link", l.Err);

        // Without --out, --format parquet has nowhere to go.
        var noOut = Env.Cli("predict", "batch", "--party", "guest", "--model-id", s.ModelId, "--features", s.Csv["guest"], "--dt", Dt, "--warehouse", wh, "--format", "parquet");
        Assert.Equal(2, noOut.Code);
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void Ddl_location_mounts_the_parquet_output_and_passes_the_hive_and_spark_grammars()
    {
        using var s = EngineEqualityTests.Make("breast_cancer");
        var wh = Export(s);
        var outDir = Path.Combine(s.Dir, "out");
        Assert.Equal(0, Env.Cli("predict", "batch", "--party", "guest", "--model-id", s.ModelId, "--features", s.Csv["guest"], "--dt", Dt, "--warehouse", wh, "--out", outDir, "--format", "parquet").Code);

        var o = new StringWriter();
        var e = new StringWriter();
        Assert.Equal(0, Fed.Cli.CliApp.Run(["ddl", "--dialect", "hive", "--location", outDir, "--json"], Fed.Cli.Commands.ConvertCommands.All, o, e));
        var statements = JsonDocument.Parse(o.ToString()).RootElement.GetProperty("statements").EnumerateArray().Select(x => x.GetString()!).ToList();
        Assert.Contains(statements, x => x.StartsWith("CREATE EXTERNAL TABLE IF NOT EXISTS `fed_partial_scores` (") && x.Contains("STORED AS PARQUET") && x.EndsWith($"LOCATION '{outDir}/fed_partial_scores'")
            && x.Contains("PARTITIONED BY (\n  `model_id` STRING,\n  `version` STRING,\n  `party` STRING,\n  `dt` STRING"));
        Assert.Contains(statements, x => x.StartsWith("CREATE EXTERNAL TABLE IF NOT EXISTS `fed_predictions_hourly` ("));
        Assert.Contains("MSCK REPAIR TABLE `fed_partial_scores`", statements);
        Assert.Contains($"ALTER TABLE `fed_partial_scores` ADD IF NOT EXISTS PARTITION (`model_id` = '{s.ModelId}', `version` = '1', `party` = 'guest', `dt` = '{Dt}') " +
            $"LOCATION '{outDir}/fed_partial_scores/model_id={s.ModelId}/version=1/party=guest/dt={Dt}'", statements);
        Fed.TestSupport.SqlGrammar.AssertValid(statements, "hive", "spark");

        // A location that could end the literal is refused.
        var bad = Fed.Cli.CliApp.Run(["ddl", "--dialect", "hive", "--location", "/data/x' ; DROP TABLE t; --"], Fed.Cli.Commands.ConvertCommands.All, new StringWriter(), e);
        Assert.Equal(2, bad);
    }
}
