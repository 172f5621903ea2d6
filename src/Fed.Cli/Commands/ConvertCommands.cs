using Fed.Converter;
using Fed.Core;
using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.Warehouse;

namespace Fed.Cli.Commands;

/// <summary>fed convert, fed model list|activate|rollback|stamp, fed ddl: model files into warehouse tables.</summary>
public static class ConvertCommands
{
    static readonly CliOption Warehouse = CliOptions.Warehouse;

    public static IReadOnlyList<CliCommand> All =>
    [
        new("convert", "Export partial-model files into the warehouse tables (wide, column map, long, registry)",
            [
                new CliOption("model", "partial-model file", Required: true, Multiple: true),
                Warehouse,
                new CliOption("no-activate", "add the version without making it active", Flag: true),
                new CliOption("emit-sql", "write the HiveQL/Spark SQL export script to this file instead of writing to a warehouse"),
            ],
            Convert),
        new("model list", "List the model versions the warehouse registry holds",
            [new CliOption("model-id", "only this model"), Warehouse],
            (a, o) =>
            {
                using var w = a.Warehouse();
                var rows = new ModelRegistry(w).List(a.Opt("model-id"));
                foreach (var e in rows)
                    o.Say($"{e.ModelId,-20} v{e.Version,-4} {e.Party,-12} {e.Role,-6} {e.Kind,-9} {e.FeatureCount,4} features  {e.Status,-8} {e.Checksum[..19]}…");
                if (rows.Count == 0) o.Say("(no models; run 'fed convert')");
                o.Result(new { ok = true, models = rows });
                return 0;
            }),
        new("model activate", "Make one version the active version of a model",
            [new CliOption("model-id", "model id", Required: true), new CliOption("version", "version to activate", Required: true), Warehouse],
            (a, o) =>
            {
                using var w = a.Warehouse();
                new ModelRegistry(w).Activate(a.Get("model-id"), a.Int("version"));
                o.Say($"{a.Get("model-id")} v{a.Int("version")} is active");
                o.Result(new { ok = true, model_id = a.Get("model-id"), active_version = a.Int("version") });
                return 0;
            }),
        new("model rollback", "Re-activate the version before the active one",
            [new CliOption("model-id", "model id", Required: true), Warehouse],
            (a, o) =>
            {
                using var w = a.Warehouse();
                var v = new ModelRegistry(w).Rollback(a.Get("model-id"));
                o.Say($"{a.Get("model-id")} rolled back: v{v} is active");
                o.Result(new { ok = true, model_id = a.Get("model-id"), active_version = v });
                return 0;
            }),
        new("model stamp", "Validate a model file written by another exporter (no checksum yet) and write it with its checksum",
            [new CliOption("in", "model file without checksum", Required: true), new CliOption("out", "where to write the stamped file", Required: true)],
            (a, o) =>
            {
                var path = a.Get("in");
                string text;
                try { text = File.ReadAllText(path); }
                catch (IOException e) { throw new BadInputException($"{path}: cannot read: {e.Message}", e); }
                var m = ModelFile.Write(ModelFile.ParseUnstamped(text, path), a.Get("out"));
                o.Say($"wrote {a.Get("out")} ({m.Checksum})");
                o.Result(new { ok = true, path = a.Get("out"), checksum = m.Checksum });
                return 0;
            }),
        new("ddl", "Print the CREATE TABLE statements of Fed's tables for a dialect",
            [
                new CliOption("dialect", "hive, sqlite or postgres", Default: "hive"),
                new CliOption("model", "also the wide table and the feature tables of this party's model file"),
                new CliOption("feature-table", "name of the party's feature table (with --model)", Default: "fed_features"),
                new CliOption("location", "hive: instead, mount Fed's Parquet output folder DIR (CREATE EXTERNAL TABLE ... STORED AS PARQUET LOCATION, MSCK REPAIR TABLE, ADD PARTITION)"),
            ],
            (a, o) =>
            {
                var d = SqlDialect.Parse(a.Get("dialect"));
                if (a.Opt("location") is { } location)
                {
                    if (d != SqlDialect.Hive) throw new BadInputException("--location mounts Parquet folders in Hive/Spark: use --dialect hive");
                    var mount = Fed.SparkPredict.HiveParquet.MountStatements(location);
                    if (o.Json) o.Result(new { ok = true, dialect = d.Name, statements = mount });
                    else o.Out.Write(string.Join(";\n\n", mount) + ";\n");
                    return 0;
                }
                var tables = StandardTables(a.Opt("model") is { } p ? ScoringModel.From(ModelFile.Read(p)) : null, a.Get("feature-table"));
                var sql = string.Join("\n\n", tables.Select(t => d.CreateTable(t) + ";")) + "\n";
                if (o.Json) o.Result(new { ok = true, dialect = d.Name, statements = tables.Select(d.CreateTable).ToArray() });
                else o.Out.Write(sql);
                return 0;
            }),
    ];

    /// <summary>Model, registry, partial-score and prediction tables, plus a model's wide and feature tables.</summary>
    public static IReadOnlyList<TableDef> StandardTables(ScoringModel? model, string featureTable)
    {
        var tables = new List<TableDef>(Schema.ModelTables)
        {
            Schema.RegistryStaging,
            Schema.PartialScores(hourly: false), Schema.PartialScores(hourly: true),
            Schema.Predictions(hourly: false), Schema.Predictions(hourly: true),
        };
        if (model != null)
        {
            tables.Add(Schema.Wide(model.PartyId, model.FeatureCount));
            tables.Add(Schema.Features(featureTable, model.Features, hourly: false));
            tables.Add(Schema.Features(featureTable + "_hourly", model.Features, hourly: true));
        }
        return tables;
    }

    /// <summary>Party files converted together must agree: one model version has one kind, class list and party list;
    /// and files that only together cover a party list must not name different models (an import typo).</summary>
    static void CheckAgreement(IReadOnlyList<PartialModel> models, IReadOnlyList<string> paths)
    {
        for (var i = 1; i < models.Count; i++)
            for (var j = 0; j < i; j++)
            {
                var (m, o) = (models[i], models[j]);
                if (m.ModelId == o.ModelId && m.Version == o.Version
                    && (m.Kind != o.Kind || !m.Classes.SequenceEqual(o.Classes) || !m.Parties.SequenceEqual(o.Parties)))
                    throw new BadInputException($"{paths[i]} and {paths[j]} are both {m.ModelId} v{m.Version} but disagree on the kind, classes or parties " +
                        $"({PartialModel.KindName(m.Kind)} vs {PartialModel.KindName(o.Kind)})");
                if (m.ModelId != o.ModelId && m.PartyId != o.PartyId && m.Parties.SequenceEqual(o.Parties)
                    && models.Count(x => x.ModelId == m.ModelId) < m.Parties.Length && models.Count(x => x.ModelId == o.ModelId) < o.Parties.Length)
                    throw new BadInputException($"{paths[i]} says model_id '{m.ModelId}', {paths[j]} says '{o.ModelId}' for the same parties " +
                        $"[{string.Join(", ", m.Parties)}]: the parties of one model must agree on its id");
            }
    }

    static int Convert(CliArgs a, CliOutput o)
    {
        // Read and validate every file first: one bad file and nothing is written.
        var models = a.All("model").Select(ModelFile.Read).ToList();
        CheckAgreement(models, a.All("model"));
        var activate = !a.Flag("no-activate");
        if (a.Opt("emit-sql") is { } sqlPath)
        {
            var now = DateTime.UtcNow;
            var statements = models.SelectMany(m => HiveModelScript.Generate(ScoringModel.From(m), activate, now)).ToList();
            using var outputs = new StagedOutputs(a.All("model"));
            File.WriteAllText(outputs.Stage(sqlPath, "--emit-sql"), string.Join(";\n\n", statements) + ";\n");
            outputs.Commit();
            o.Say($"wrote {statements.Count} HiveQL statements to {sqlPath}");
            o.Result(new { ok = true, emit_sql = sqlPath, statements = statements.Count });
            return 0;
        }
        using var w = a.Warehouse();
        // All or nothing: a conflict in any file and no model is written.
        var results = new ModelExporter(w).ExportAll(models, activate);
        foreach (var r in results)
            o.Say($"{r.ModelId} v{r.Version} party '{r.Party}': {(r.Outcome == ExportOutcome.Added ? $"added ({r.RowsWritten} rows, wide table {r.WideTable}{(r.Active ? ", active" : "")})" : "unchanged (already exported)")}");
        o.Result(new { ok = true, warehouse = w.Description, exports = results.Select(r => new { model_id = r.ModelId, version = r.Version, party = r.Party, outcome = r.Outcome.ToString().ToLowerInvariant(), rows = r.RowsWritten, wide_table = r.WideTable, active = r.Active }) });
        return 0;
    }
}
