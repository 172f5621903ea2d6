using Fed.Core;
using Fed.Core.Scoring;

namespace Fed.Warehouse;

/// <summary>
/// Every table Fed reads or writes, defined once. The converter, the batch jobs and sql/*.hql all come from here
/// (a test keeps sql/ equal to <see cref="HiveScript"/>).
/// </summary>
public static class Schema
{
    static ColumnDef S(string n, string? c = null) => new(n, ColumnType.String, Comment: c);
    static ColumnDef I(string n, string? c = null) => new(n, ColumnType.Int, Comment: c);
    static ColumnDef D(string n, string? c = null) => new(n, ColumnType.Double, Comment: c);
    static ColumnDef DN(string n, string? c = null) => new(n, ColumnType.Double, Nullable: true, Comment: c);
    static ColumnDef SN(string n, string? c = null) => new(n, ColumnType.String, Nullable: true, Comment: c);

    public const string Active = "active";
    public const string Inactive = "inactive";

    // Model tables are partitioned (Hive) so that exporting one model version writes only its own partitions and never
    // reads or rewrites another model's rows (no INSERT OVERWRITE of a table from itself). In SQLite/PostgreSQL the
    // partition columns are ordinary columns and the keys are unchanged.

    static ColumnDef[] RegistryColumns =>
    [
        I("version"), S("party"), S("role", "guest or host"), S("kind", "logistic, linear or softmax"),
        S("classes", "JSON array of class labels (softmax), else []"), S("parties", "JSON array of all parties, guest first"),
        I("feature_count"), I("output_count"), S("missing_policy", "reject or default"),
        S("checksum", "sha256 of the partial-model file"), S("wide_table", "the per-party wide table holding the weights"),
        S("status", "active or inactive"), S("created_at", "UTC, ISO 8601"), SN("activated_at", "UTC, ISO 8601"),
    ];

    /// <summary>One row per (model, version, party). One active version per (model, party). Partitioned by model_id:
    /// a Hive export or activation rewrites only its own model's partition, through <see cref="RegistryStaging"/>.</summary>
    public static readonly TableDef Registry = new("fed_model_registry", RegistryColumns, [S("model_id")],
        "Fed model registry: which model versions exist per party and which one is active", ["model_id", "version", "party"]);

    /// <summary>Hive/Spark only: a model's registry partition is built here, then copied over the registry's partition,
    /// because Spark refuses to overwrite a partition it reads in the same statement.</summary>
    public static readonly TableDef RegistryStaging = new("fed_model_registry_staging", RegistryColumns, [S("model_id")],
        "Fed model registry staging: one model's partition being rewritten (export, activation)");

    /// <summary>Maps w_i of the wide table to the feature name and its warehouse column.</summary>
    public static readonly TableDef Columns = new("fed_model_columns",
    [
        I("position", "1-based: w_<position> in the wide table"),
        S("feature_name"), S("column_name", "the feature's column in the party's feature tables"),
        DN("missing_default", "raw default used when the value is absent (policy default), else NULL"),
    ], [S("model_id"), I("version"), S("party")], "Fed model column map: wide-table position to feature name", ["model_id", "version", "party", "position"]);

    /// <summary>Long form: one row per weight (position 0 holds the constant), for wide or sparse models.</summary>
    public static readonly TableDef Long = new("fed_model_long",
    [
        I("class_index"), I("position", "0 = the constant (intercept), 1..k = features"),
        S("feature", "feature name, or (intercept) at position 0"), D("weight", "raw-feature-space weight"),
    ], [S("model_id"), I("version"), S("party")], "Fed model weights, long form", ["model_id", "version", "party", "class_index", "position"]);

    /// <summary>The original design's wide table for a party with k features: model_id, version, intercept, w_1..w_k.</summary>
    public static TableDef Wide(string party, int k) => new(WideName(party, k),
        new[] { I("class_index", "0 unless softmax"), D("intercept", "the party's constant term") }
            .Concat(Enumerable.Range(1, k).Select(i => D($"w_{i}"))).ToArray(),
        [S("model_id"), I("version")], $"Fed model weights of party {Identifiers.PartyId(party)}, wide form with {k} features", ["model_id", "version", "class_index"]);

    public static string WideName(string party, int k) => Identifiers.SqlName($"fed_model_wide_{Identifiers.PartyId(party)}_k{k}", "wide table name");

    static readonly ColumnDef[] Daily = [S("dt", "day partition, yyyy-MM-dd")];
    static readonly ColumnDef[] Hourly = [S("dt", "day partition, yyyy-MM-dd"), S("hour", "hour partition, HH")];

    /// <summary>Partitioned by one job's identity first (model_id, version, party), then dt[, hour]: one job's
    /// <c>INSERT OVERWRITE ... PARTITION</c> on a shared cluster replaces exactly that job's output, as the DELETE of
    /// exactly those rows does in SQLite/PostgreSQL.</summary>
    public static TableDef PartialScores(bool hourly) => new(hourly ? "fed_partial_scores_hourly" : "fed_partial_scores",
        [S("sample_id"), I("class_index"), D("partial_score")],
        [S("model_id"), I("version"), S("party"), .. hourly ? Hourly : Daily], "Fed partial scores: one party's intercept + sum w_i x_i per sample");

    /// <summary>Partitioned by model_id, version, then dt[, hour]: one combine job's output per partition.</summary>
    public static TableDef Predictions(bool hourly) => new(hourly ? "fed_predictions_hourly" : "fed_predictions",
        [
            S("sample_id"), D("predict_value", "P(class 1), the value, or the top class probability"),
            SN("predicted_class", "softmax: the class label"), SN("probabilities", "softmax: JSON array, one per class"),
        ],
        [S("model_id"), I("version"), .. hourly ? Hourly : Daily], "Fed predictions combined from every party's partial score");

    /// <summary>A party's feature table for the given features (hourly tables carry dt and hour).</summary>
    public static TableDef Features(string table, IEnumerable<string> featureNames, bool hourly) => new(
        Identifiers.SqlName(table, "feature table name"),
        new[] { S("sample_id") }.Concat(featureNames.Select(f => DN(Identifiers.ColumnFor(f), f))).ToArray(),
        hourly ? Hourly : Daily, "Fed party features (NULL = missing)");

    public static IReadOnlyList<TableDef> ModelTables => [Registry, Columns, Long];

    /// <summary>The HiveQL script that sets up a cluster's warehouse for one party's model (sql/*.hql).</summary>
    public static string HiveScript(IEnumerable<TableDef> tables) =>
        string.Join("\n\n", tables.Select(t => SqlDialect.Hive.CreateTable(t) + ";")) + "\n";

    /// <summary>Creates the model tables (and the wide table of this model) if they do not exist.</summary>
    public static void EnsureModelTables(IWarehouse w, ScoringModel? model = null)
    {
        foreach (var t in ModelTables) w.Execute(w.Dialect.CreateTable(t));
        if (model != null) w.Execute(w.Dialect.CreateTable(Wide(model.PartyId, model.FeatureCount)));
    }
}
