using Fed.Core;
using Fed.Core.Scoring;
using Fed.SparkPredict;
using Fed.Warehouse;
using Fed.Warehouse.Odbc;

namespace Fed.Cli.Commands;

/// <summary>fed predict ... and fed features load: batch and hourly prediction (issue 4).</summary>
public static class PredictCommands
{
    static readonly CliOption Warehouse = CliOptions.Warehouse;
    static readonly CliOption ModelId = new("model-id", "model id", Required: true);
    static readonly CliOption Version = new("version", "model version (default: the active one)");
    static readonly CliOption Dt = new("dt", "day partition, yyyy-MM-dd", Required: true);
    static readonly CliOption Hour = new("hour", "hour 0..23 (hourly mode)");

    static Partition Part(CliArgs a) => Partition.Parse(a.Get("dt"), a.IntOpt("hour"));

    static readonly CliOption Format = new("format", "with --out DIR: csv or arrow (partial scores: data file + manifest; arrow = Arrow IPC for the initiator) | parquet (Hive layout DIR/<table>/model_id=M/version=V/[party=P/]dt=D[/hour=H]/)", Default: "csv");
    static OutputFormat FormatOf(CliArgs a) => a.Get("format") switch
    {
        "csv" => OutputFormat.Csv, "parquet" => OutputFormat.Parquet, "arrow" => OutputFormat.Arrow,
        var x => throw new BadInputException($"--format '{x}': expected csv, arrow or parquet"),
    };

    public static IReadOnlyList<CliCommand> All =>
    [
        new("predict batch", "Score one party's features for a partition into partial scores (engine local, sql or spark-sql)",
            [
                new CliOption("party", "this party's id", Required: true), ModelId, Version,
                new CliOption("features", "warehouse feature table, a CSV path, or a Hive table folder of Parquet files (dt=D[/hour=H]/*.parquet) (engine local)", Required: true), Dt, Hour,
                new CliOption("engine", "local | sql (the warehouse runs the generated SQL) | odbc (the same, through an ODBC DSN: PostgreSQL, SQLite3, a Spark Thrift Server or HiveServer2 with INSERT OVERWRITE) | spark-sql ($SPARK_HOME/bin/spark-sql -f)", Default: "local"), Warehouse,
                new CliOption("out", "engine local: write partial-score files (data + manifest) here instead of the warehouse table"), Format,
                new CliOption("emit-sql", "write the Spark SQL/HiveQL for this plan to PATH (with any engine)"),
                new CliOption("layout", "model weight table: wide | long", Default: "wide"),
                new CliOption("id-column", "CSV id column", Default: "id"), CliOptions.AllowEmpty,
                new CliOption("ids", "score only these agreed ids: a file (one id a line) or a warehouse table with a sample_id column"),
                new CliOption("run-id", "masked models ('fed model masking'): the run id every party of this partition's run was given (a fresh one per run)"),
                new CliOption("mask-keys", "masked models: this party's mask key file ('fed mask keygen'), needed by every party that masks"),
            ],
            (a, o) =>
            {
                var layout = a.Get("layout") switch
                {
                    "wide" => WeightLayout.Wide, "long" => WeightLayout.Long,
                    var x => throw new BadInputException($"--layout '{x}': expected wide or long"),
                };
                var format = FormatOf(a);
                var engine = a.Get("engine");
                if (engine is not ("local" or "sql" or "odbc" or "spark-sql")) throw new BadInputException($"--engine '{engine}': expected local, sql, odbc or spark-sql");
                using var w = a.Warehouse();
                if (engine == "odbc" && w is not OdbcWarehouse)
                    throw new BadInputException($"--engine odbc runs the plan through an ODBC warehouse (--warehouse odbc:dialect=hive;DSN=...), not {w.Description}");
                var plan = ScoringPlan.Build(w, a.Get("model-id"), a.IntOpt("version"), a.Get("party"), a.Get("features"), Part(a), layout, a.Get("id-column"), a.Opt("ids"));
                o.Progress($"fed predict batch: model {plan.Model.ModelId} v{plan.Model.Version}, party {plan.PartyId}, {plan.Partition}, engine {engine}");
                var policy = new MaskingRegistry(w).Policy(plan.Model.Signature);
                if (policy.Enabled && a.Opt("emit-sql") != null)
                    throw new BadInputException($"model '{plan.Model.ModelId}' v{plan.Model.Version} is masked: the emitted SQL would write clear partial scores (masked SQL is not generated yet)");
                string? emitted = a.Opt("emit-sql") is { } sqlPath ? SparkSqlEngine.Emit(plan, sqlPath) : null;
                if (emitted != null) o.Progress($"  Spark SQL written to {emitted}");
                using var masking = policy.Enabled
                    ? engine == "local"
                        ? BatchMasking.For(plan, policy, a.Opt("mask-keys") is { } kf ? MaskKeys.Read(kf) : null,
                            a.Opt("run-id") ?? throw new BadInputException($"model '{plan.Model.ModelId}' v{plan.Model.Version} is masked ({policy.Describe(plan.Model.Signature)}): give --run-id, the same at every party"))
                        : throw new BadInputException($"model '{plan.Model.ModelId}' v{plan.Model.Version} is masked: score it with --engine local --out DIR (masked SQL is not generated yet)")
                    : a.Opt("run-id") != null || a.Opt("mask-keys") != null
                        ? throw new BadInputException($"--run-id/--mask-keys: model '{plan.Model.ModelId}' v{plan.Model.Version} is not masked ({policy.Describe(plan.Model.Signature)})")
                        : null;
                if (masking != null) o.Progress($"  masked run '{masking.RunId}' ({(masking.MaskedByParty ? "this party masks" : "this party only encodes")})");
                using var bar = o.Bar("scoring", null);
                var res = engine switch
                {
                    "local" => LocalEngine.Execute(plan, w, a.Opt("out"), o.Lines(bar, @"^\s*(?<done>[\d,]+)(?: of (?<total>[\d,]+))? rows scored"), format, masking: masking),
                    "sql" or "odbc" => SqlEngine.Execute(plan, w),
                    _ => SparkSqlEngine.Execute(plan, emitted, o.Progress),
                };
                o.Say($"{res.RowsScored:N0} rows scored, {res.RowsRejected:N0} rejected{(plan.Partition.Hourly ? $", {res.RowsUnchanged:N0} unchanged" : "")}{(res.IdsNotFound is { } nf ? $", {nf:N0} agreed ids not found" : "")} -> {res.Output} ({res.TotalSeconds:F2} s)");
                foreach (var rj in res.Rejected.Take(10)) o.Say($"  rejected {rj.SampleId}: missing '{rj.Feature}'");
                var report = res.ToReport();
                report["ok"] = true; report["model_id"] = plan.Model.ModelId; report["version"] = plan.Model.Version; report["party"] = plan.PartyId;
                report["dt"] = plan.Partition.Dt; report["hour"] = plan.Partition.HourText; report["emitted_sql"] = emitted;
                o.Result(report);
                if (!plan.Partition.Hourly) a.RequireNonEmpty(res.RowsScored, $"0 rows of {a.Get("features")} scored for party {plan.PartyId} ({res.RowsRejected:N0} rejected)");
                return 0;
            }),
        new("predict combine", "Initiator: join every party's partial scores, combine, write fed_predictions[_hourly] and a coverage report",
            [ModelId, Version, Dt, Hour,
             new CliOption("input", "directory of partial-score files (CSV or Arrow + manifest, or the Parquet output root of 'predict batch --format parquet'), or 'warehouse' for fed_partial_scores", Required: true),
             Warehouse, new CliOption("report", "coverage report path (default: in the input directory, or the current one); all missing ids go to REPORT.missing.csv"),
             CliOptions.AllowEmpty,
             new CliOption("engine", "fed (Fed joins and combines) | spark-sql (the HiveQL/Spark SQL combine run by $SPARK_HOME/bin/spark-sql -S -f) | sql (the same run by a Hive/Spark Thrift ODBC warehouse) | emit (only write --emit-sql)", Default: "fed"),
             new CliOption("emit-sql", "write the HiveQL/Spark SQL combine to PATH"),
             new CliOption("out", "engine fed: write the predictions here (with --format parquet: DIR/fed_predictions[_hourly]/model_id=M/version=V/dt=D[/hour=H]/) instead of the warehouse table"), Format],
            (a, o) =>
            {
                if (FormatOf(a) == OutputFormat.Arrow) throw new BadInputException("--format arrow is for the partial scores of 'predict batch'; predictions go to the warehouse or, with --out DIR --format parquet, to Parquet");
                var parquetOut = a.Opt("out") is { } outDir
                    ? FormatOf(a) == OutputFormat.Parquet ? outDir : throw new BadInputException("predict combine --out DIR writes Hive-layout Parquet: add --format parquet")
                    : FormatOf(a) == OutputFormat.Parquet ? throw new BadInputException("--format parquet needs --out DIR") : null;
                using var w = a.Warehouse();
                var engine = a.Get("engine");
                if (engine != "fed")
                {
                    if (parquetOut != null) throw new BadInputException("--out DIR --format parquet is Fed's own combine (--engine fed)");
                    if (a.Get("input") != "warehouse") throw new BadInputException("the SQL combine reads fed_partial_scores: give --input warehouse");
                    var sql = CombineJob.RunSql(w, a.Get("model-id"), a.IntOpt("version"), Part(a), engine, a.Opt("emit-sql"), o.Progress);
                    o.Say(engine == "emit" ? $"combine SQL written to {sql["emitted_sql"]}" : $"{sql["predictions"]:N0} predictions -> {sql["table"]} ({engine})");
                    sql["ok"] = true;
                    o.Result(sql);
                    return 0;
                }
                if (a.Opt("emit-sql") is { } emit) o.Progress($"  combine SQL written to {CombineJob.RunSql(w, a.Get("model-id"), a.IntOpt("version"), Part(a), "emit", emit)["emitted_sql"]}");
                var res = CombineJob.Run(w, a.Get("model-id"), a.IntOpt("version"), Part(a), a.Get("input"), a.Opt("report"), o.Progress, parquetOut);
                o.Say($"{res.Predictions.Count:N0} predictions -> {res.Table}; {res.Predictions.Missing.Count:N0} samples missing at some party (not scored){(res.Predictions.Completed is { } done ? $"; {done.Count(c => c.Length > 0):N0} with completed parts (column 'completed')" : "")}; report {res.ReportPath}");
                var report = new Dictionary<string, object?>(res.Report) { ["ok"] = true, ["report"] = res.ReportPath };
                o.Result(report);
                if (a.IntOpt("hour") is null) a.RequireNonEmpty(res.Predictions.Count, $"0 predictions: no sample is present at every party ({res.Predictions.Missing.Count:N0} missing at some party, see {res.ReportPath})");
                return 0;
            }),
        new("predict local", "Reference path: score each party's CSV with its partial-model file, intersect ids, combine, write a CSV",
            [new CliOption("models", "directory with the model's *.json partial-model files", Required: true),
             new CliOption("party", "PARTY=CSV for every party", Required: true, Multiple: true),
             new CliOption("out", "predictions CSV", Required: true), new CliOption("id-column", "id column of the CSVs", Default: "id"),
             new CliOption("report", "report path (default: OUT.report.json); all missing ids go to REPORT.missing.csv"), CliOptions.AllowEmpty,
             new CliOption("masked", "the masked reference: fixed-point partial scores with pairwise masks that cancel in the sum (docs/privacy.md)", Flag: true),
             new CliOption("initiator", "--masked only: who combines, a party id or 'external' (default: the guest)")],
            (a, o) =>
            {
                if (a.Opt("initiator") != null && !a.Flag("masked")) throw new BadInputException("--initiator goes with --masked");
                var res = LocalPredictor.Run(a.Get("models"), a.Pairs("party"), a.Get("out"), a.Get("id-column"), a.Opt("report"), a.Flag("masked"), a.Opt("initiator"));
                o.Say($"{res.Predictions.Count:N0} predictions -> {res.OutPath}; {res.Predictions.Missing.Count:N0} samples missing at some party (not scored){(res.Predictions.Completed is { } done ? $"; {done.Count(c => c.Length > 0):N0} with completed parts (column 'completed')" : "")}; report {res.ReportPath}");
                o.Result(new { ok = true, predictions = res.Predictions.Count, missing = res.Predictions.Missing.Count, out_path = res.OutPath, report = res.ReportPath,
                    completed = res.Predictions.Completed?.Where(c => c.Length > 0).GroupBy(c => c).ToDictionary(g => g.Key, g => g.Count()),
                    rejected = res.Runs.ToDictionary(kv => kv.Key, kv => kv.Value.RowsRejected) });
                a.RequireNonEmpty(res.Predictions.Count, $"0 predictions: no sample is present at every party ({res.Predictions.Missing.Count:N0} missing at some party, see {res.ReportPath})");
                return 0;
            }),
        new("predict load-redis", "Write a predictions partition to Redis (key fed:pred:{<model>:v<version>:<sample_id>}, pointer fed:pred:<model>:active)",
            [new CliOption("redis", "HOST:PORT", Required: true), ModelId, Version, Dt, Hour,
             new CliOption("ttl", "seconds until the records expire (default: never)"), Warehouse],
            (a, o) =>
            {
                var ttl = a.IntOpt("ttl") is { } s ? s > 0 ? TimeSpan.FromSeconds(s) : throw new BadInputException("--ttl must be > 0") : (TimeSpan?)null;
                using var w = a.Warehouse();
                var res = RedisPredictions.Load(w, a.Get("redis"), a.Get("model-id"), a.IntOpt("version"), Part(a), ttl, o.Progress);
                o.Say($"{res.Written:N0} predictions of v{res.Version} written to Redis in {res.Seconds:F2} s ({res.Written / Math.Max(res.Seconds, 1e-9):N0}/s){(res.PointerSet ? "; active pointer set" : " (not the active version: pointer unchanged)")}");
                o.Result(new { ok = true, written = res.Written, version = res.Version, active_pointer_set = res.PointerSet, seconds = res.Seconds });
                return 0;
            }),
        new("predict lookup", "Print one prediction from Redis (the active version unless --version)",
            [new CliOption("redis", "HOST:PORT", Required: true), ModelId, Version, new CliOption("sample-id", "sample id", Required: true)],
            (a, o) =>
            {
                var rec = RedisPredictions.Lookup(a.Get("redis"), a.Get("model-id"), a.Get("sample-id"), a.IntOpt("version"))
                    ?? throw new BadInputException($"no prediction for sample '{a.Get("sample-id")}' of model '{a.Get("model-id")}' in Redis");
                o.Say($"{rec.SampleId}: {rec.PredictValue:R}{(rec.PredictedClass is null ? "" : $" class {rec.PredictedClass}")} (model {rec.ModelId} v{rec.Version}, dt {rec.Dt}{(rec.Hour is null ? "" : " hour " + rec.Hour)}, written {rec.WrittenAt})");
                o.Result(rec);
                return 0;
            }),
        new("features load", "Load a party's CSV into its warehouse feature table (for demos and tests)",
            [new CliOption("party", "party id", Required: true), new CliOption("csv", "CSV with an id column", Required: true),
             new CliOption("table", "feature table name", Required: true), Dt, Hour, Warehouse,
             new CliOption("id-column", "id column", Default: "id"), new CliOption("label-column", "label column to leave out", Default: "y"),
             new CliOption("stage-location", "hive: the folder (e.g. hdfs:///staging/fed/guest) where the cluster reads this CSV, for a staged external table + INSERT OVERWRITE"),
             new CliOption("emit-sql", "hive: write the HiveQL/Spark SQL load statements to PATH (needs --stage-location)")],
            (a, o) =>
            {
                Identifiers.PartyId(a.Get("party"));
                if (a.Opt("emit-sql") is { } emit)
                {
                    var loc = a.Opt("stage-location") ?? throw new BadInputException("--emit-sql needs --stage-location (where the cluster reads the CSV)");
                    var st = FeatureLoader.HiveStatements(a.Get("csv"), a.Get("table"), Part(a), loc, a.Get("id-column"), a.Get("label-column"));
                    File.WriteAllText(emit, string.Join(";\n\n", st) + ";\n");
                    o.Say($"wrote {st.Count} HiveQL statements to {emit}");
                    o.Result(new { ok = true, emit_sql = emit, statements = st.Count });
                    return 0;
                }
                using var w = a.Warehouse();
                if (w.Dialect.Name == "hive" && a.Opt("stage-location") is { } location)
                {
                    foreach (var st in FeatureLoader.HiveStatements(a.Get("csv"), a.Get("table"), Part(a), location, a.Get("id-column"), a.Get("label-column"))) w.Execute(st);
                    o.Say($"{a.Get("table")} {Part(a)} loaded from {location} ({w.Description})");
                    o.Result(new { ok = true, table = a.Get("table"), stage_location = location });
                    return 0;
                }
                var n = FeatureLoader.Load(w, a.Get("csv"), a.Get("table"), Part(a), a.Get("id-column"), a.Get("label-column"));
                o.Say($"{n:N0} rows loaded into {a.Get("table")} ({w.Description})");
                o.Result(new { ok = true, rows = n, table = a.Get("table") });
                return 0;
            }),
    ];
}
