using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Fed.Core;
using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.Warehouse;

namespace Fed.SparkPredict;

/// <summary>A statement and its bound values ('?' placeholders; none for HiveQL/Spark SQL, which get checked literals).</summary>
public sealed record SqlStatement(string Sql, object?[] Args);

/// <summary>
/// Generates the partial-scoring SQL of a <see cref="ScoringPlan"/> for SQLite, PostgreSQL and HiveQL/Spark SQL.
/// The score is <c>m.intercept + m.w_1 * f.c1 + m.w_2 * f.c2 ...</c>, left to right, which is
/// <see cref="PartialScorer"/>'s order, so IEEE engines give the same bits. The weights come from the registry's
/// wide table, or from the long table pivoted with <c>MAX(CASE WHEN position = i THEN weight END) AS w_i</c>.
/// Missing values: policy reject excludes rows with a NULL feature (the coverage statements count and list them
/// with the feature's position); policy default uses <c>COALESCE(f.c, d.d_i)</c> with the recorded default from
/// fed_model_columns. Never COALESCE to 0.
/// Hourly: see <see cref="WarehouseFeatureSource"/> for the rule (newest row per sample_id via ROW_NUMBER; only samples
/// whose newest row is at hour H and differs from their previous row).
/// SQLite/PostgreSQL bind every value; HiveQL gets literals, each checked against a strict pattern first.
/// </summary>
public sealed partial class SqlGenerator(SqlDialect dialect, ScoringPlan plan)
{
    readonly ScoringModel _m = plan.Model;
    readonly bool _hive = dialect.Name == "hive";
    string[] Cols => _m.Columns;
    int K => _m.FeatureCount;

    [GeneratedRegex("^[A-Za-z0-9_.-]+$")] private static partial Regex SafeLiteral();

    sealed class Args(bool inline)
    {
        public readonly List<object?> Values = [];
        public string V(object value, string castAs)
        {
            if (!inline) { Values.Add(value); return castAs.Length == 0 ? "?" : $"CAST(? AS {castAs})"; }
            return value switch
            {
                int i => i.ToString(CultureInfo.InvariantCulture),
                string s when SafeLiteral().IsMatch(s) => $"'{s}'",
                _ => throw new BadInputException($"value '{value}' cannot be written as a SQL literal"),
            };
        }
    }

    /// <summary>The model version in a condition on a model table: a bound integer, or in HiveQL a string literal
    /// (there version is a STRING partition column, and a string comparison keeps partition pruning).</summary>
    string Version(Args a) => _hive ? a.V(_m.Version.ToString(CultureInfo.InvariantCulture), "") : a.V(_m.Version, Int);

    string Text => dialect.TypeName(ColumnType.String);
    string Int => dialect.TypeName(ColumnType.Int);

    string NullSafeEqual(string a, string b) => dialect.Name switch
    {
        "hive" => $"{a} <=> {b}",
        "sqlite" => $"{a} IS {b}",
        _ => $"{a} IS NOT DISTINCT FROM {b}",
    };

    /// <summary>The feature rows to score, as a FROM item aliased f.</summary>
    string Source(Args a)
    {
        var t = dialect.Id(plan.Features);
        if (!plan.Partition.Hourly) return $"{t} f";
        var cols = string.Join(", ", Cols.Select(dialect.Id));
        string Ranked(Args x) =>
            $"(SELECT sample_id, hour, {cols}, ROW_NUMBER() OVER (PARTITION BY sample_id ORDER BY hour DESC) AS rn FROM {t} WHERE dt = {x.V(plan.Partition.Dt, Text)} AND hour <= {x.V(plan.Partition.HourText!, Text)})";
        var same = string.Join(" AND ", Cols.Select(c => NullSafeEqual($"cur.{dialect.Id(c)}", $"prev.{dialect.Id(c)}")));
        return $"(SELECT cur.sample_id, cur.hour, {string.Join(", ", Cols.Select(c => "cur." + dialect.Id(c)))}\n" +
               $"   FROM {Ranked(a)} cur\n" +
               $"   LEFT JOIN {Ranked(a)} prev ON prev.sample_id = cur.sample_id AND prev.rn = 2\n" +
               $"   WHERE cur.rn = 1 AND cur.hour = {a.V(plan.Partition.HourText!, Text)} AND (prev.sample_id IS NULL OR NOT ({same}))) f";
    }

    /// <summary>Daily: the dt filter on f (hourly sources are already filtered); with --ids, only the agreed ids.</summary>
    string PartitionFilter(Args a) => (plan.Partition.Hourly ? "1 = 1" : $"f.dt = {a.V(plan.Partition.Dt, Text)}") +
        (IdsTable is { } ids ? $" AND f.sample_id IN (SELECT i.sample_id FROM {dialect.Id(ids)} i)" : "");

    /// <summary>The table of agreed ids (column sample_id) scoring is limited to, or null for every row.</summary>
    public string? IdsTable { get; init; }

    /// <summary>With <see cref="IdsTable"/>: how many distinct agreed ids have no feature row to score in the partition.</summary>
    public SqlStatement IdsNotFound(bool tagged = false)
    {
        var a = new Args(_hive);
        var ids = dialect.Id(IdsTable ?? throw new InvalidOperationException("no ids table"));
        var sql = $"SELECT {(tagged ? $"'{IdsTag}', " : "")}COUNT(*)\nFROM (SELECT DISTINCT sample_id FROM {ids}) i\n" +
                  $"LEFT JOIN (SELECT f.sample_id FROM {Source(a)}\n   WHERE {PartitionFilter(a)}) s ON s.sample_id = i.sample_id\nWHERE s.sample_id IS NULL";
        return new SqlStatement(sql, [.. a.Values]);
    }

    /// <summary>The party's weights as a FROM item aliased m: class_index, intercept, w_1..w_k.</summary>
    string Weights(Args a)
    {
        var ws = string.Join("", Enumerable.Range(1, K).Select(i => ", " + dialect.Id($"w_{i}")));
        if (plan.Layout == WeightLayout.Wide)
            return $"(SELECT class_index, intercept{ws} FROM {dialect.Id(plan.Entry.WideTable)} WHERE model_id = {a.V(_m.ModelId, Text)} AND version = {Version(a)}) m";
        var pivot = string.Join("", Enumerable.Range(1, K).Select(i => $",\n          MAX(CASE WHEN position = {i} THEN weight END) AS {dialect.Id($"w_{i}")}"));
        return $"(SELECT class_index, MAX(CASE WHEN position = 0 THEN weight END) AS intercept{pivot}\n" +
               $"   FROM {dialect.Id(Schema.Long.Name)} WHERE model_id = {a.V(_m.ModelId, Text)} AND version = {Version(a)} AND party = {a.V(_m.PartyId, Text)}\n" +
               "   GROUP BY class_index) m";
    }

    bool Defaults => _m.Missing.Kind == MissingPolicyKind.Default;

    /// <summary>Policy default: the recorded defaults as a FROM item aliased d (d_1..d_k).</summary>
    string DefaultsSource(Args a)
    {
        var ds = string.Join(", ", Enumerable.Range(1, K).Select(i => $"MAX(CASE WHEN position = {i} THEN missing_default END) AS {dialect.Id($"d_{i}")}"));
        return $"(SELECT {ds} FROM {dialect.Id(Schema.Columns.Name)} WHERE model_id = {a.V(_m.ModelId, Text)} AND version = {Version(a)} AND party = {a.V(_m.PartyId, Text)}) d";
    }

    string Feature(int i) => Defaults ? $"COALESCE(f.{dialect.Id(Cols[i])}, d.{dialect.Id($"d_{i + 1}")})" : $"f.{dialect.Id(Cols[i])}";

    /// <summary>intercept + w_1 * x_1 + ... strictly left to right.</summary>
    public string ScoreExpression() =>
        "m.intercept" + string.Concat(Enumerable.Range(0, K).Select(i => $" + m.{dialect.Id($"w_{i + 1}")} * {Feature(i)}"));

    string NotNull => Defaults || K == 0 ? "" : " AND " + string.Join(" AND ", Cols.Select(c => $"f.{dialect.Id(c)} IS NOT NULL"));

    string From(Args a) =>
        $"FROM {Source(a)}\nCROSS JOIN {Weights(a)}" + (Defaults ? $"\nCROSS JOIN {DefaultsSource(a)}" : "") + $"\nWHERE {PartitionFilter(a)}{NotNull}";

    public string TableName => Schema.PartialScores(plan.Partition.Hourly).Name;

    /// <summary>SQLite/PostgreSQL: the INSERT ... SELECT (run after <see cref="Delete"/> in one transaction).
    /// HiveQL/Spark SQL: INSERT OVERWRITE TABLE ... PARTITION (dt=...[, hour=...]) SELECT ...</summary>
    public SqlStatement Insert()
    {
        var a = new Args(_hive);
        var sb = new StringBuilder();
        if (_hive)
        {
            // This job's own partition (model_id, version, party, dt[, hour]): the overwrite replaces exactly its output.
            sb.Append($"INSERT OVERWRITE TABLE {dialect.Id(TableName)} {dialect.PartitionSpec(PartitionValues(plan))}\n");
            sb.Append("SELECT f.sample_id, m.class_index,\n");
        }
        else
        {
            sb.Append($"INSERT INTO {dialect.Id(TableName)} (model_id, version, party, sample_id, class_index, partial_score, dt{(plan.Partition.Hourly ? ", hour" : "")})\n");
            sb.Append($"SELECT {a.V(_m.ModelId, Text)}, {a.V(_m.Version, Int)}, {a.V(_m.PartyId, Text)}, f.sample_id, m.class_index,\n");
        }
        sb.Append("  ").Append(ScoreExpression()).Append(" AS partial_score");
        if (!_hive)
        {
            sb.Append($", {a.V(plan.Partition.Dt, Text)}");
            if (plan.Partition.Hourly) sb.Append($", {a.V(plan.Partition.HourText!, Text)}");
        }
        sb.Append('\n').Append(From(a));
        return new SqlStatement(sb.ToString(), [.. a.Values]);
    }

    /// <summary>The partition of fed_partial_scores[_hourly] one scoring job owns.</summary>
    public static (string, string)[] PartitionValues(ScoringPlan plan) =>
    [
        ("model_id", plan.Model.ModelId), ("version", plan.Model.Version.ToString(CultureInfo.InvariantCulture)), ("party", plan.PartyId),
        ("dt", plan.Partition.Dt), .. plan.Partition.Hourly ? new[] { ("hour", plan.Partition.HourText!) } : [],
    ];

    /// <summary>SQLite/PostgreSQL: removes this model version's and party's rows of the partition.</summary>
    public SqlStatement Delete()
    {
        var (sql, args) = PartialScoresTable.DeletePartition(dialect, plan);
        return new SqlStatement(sql, args);
    }

    /// <summary>Marker first column of the result rows in the Spark SQL script, so spark-sql's stdout can be parsed.</summary>
    public const string CoverageTag = "fed_coverage", MissingTag = "fed_missing", IdsTag = "fed_ids_not_found";

    /// <summary>Coverage: one row with the count of candidate rows, the count of rows with some NULL feature, then per
    /// feature the count of NULLs. In the script the row starts with <see cref="CoverageTag"/>.</summary>
    public SqlStatement CoverageCounts(bool tagged = false)
    {
        var a = new Args(_hive);
        var sums = string.Concat(Cols.Select(c => $", SUM(CASE WHEN f.{dialect.Id(c)} IS NULL THEN 1 ELSE 0 END)"));
        var sql = $"SELECT {(tagged ? $"'{CoverageTag}', " : "")}COUNT(*), SUM(CASE WHEN {AnyNull} THEN 1 ELSE 0 END){sums}\nFROM {Source(a)}\nWHERE {PartitionFilter(a)}";
        return new SqlStatement(sql, [.. a.Values]);
    }

    string AnyNull => K == 0 ? "1 = 0" : string.Join(" OR ", Cols.Select(c => $"f.{dialect.Id(c)} IS NULL"));

    /// <summary>The first <paramref name="limit"/> rows (by sample_id) with a NULL feature: sample_id and the 1-based
    /// position of the first NULL feature. In the script each row starts with <see cref="MissingTag"/>.</summary>
    public SqlStatement MissingRows(int limit, bool tagged = false)
    {
        var a = new Args(_hive);
        var cases = string.Concat(Cols.Select((c, i) => $" WHEN f.{dialect.Id(c)} IS NULL THEN {i + 1}"));
        var sql = $"SELECT {(tagged ? $"'{MissingTag}', " : "")}f.sample_id, CASE{cases} END AS missing_position\nFROM {Source(a)}\n" +
                  $"WHERE {PartitionFilter(a)} AND ({AnyNull})\nORDER BY f.sample_id\nLIMIT {limit}";
        return new SqlStatement(sql, [.. a.Values]);
    }

    /// <summary>The Spark SQL / HiveQL file: the target table (if missing), the overwrite, and the coverage query.</summary>
    public string Script()
    {
        if (!_hive) throw new InvalidOperationException("Script() is for the hive/spark dialect");
        var sb = new StringBuilder();
        sb.Append($"-- Fed partial scores: model {_m.ModelId} v{_m.Version}, party {_m.PartyId}, {plan.Partition}, {plan.Layout.ToString().ToLowerInvariant()} weights, missing policy {(Defaults ? "default" : "reject")}\n");
        sb.Append($"-- model checksum {_m.Checksum}\n");
        sb.Append(dialect.CreateTable(Schema.PartialScores(plan.Partition.Hourly))).Append(";\n\n");
        sb.Append(Insert().Sql).Append(";\n\n");
        sb.Append($"-- coverage: '{CoverageTag}', rows seen, rows with a NULL feature, then NULL count per feature (").Append(string.Join(", ", Cols)).Append(")\n");
        sb.Append(CoverageCounts(tagged: true).Sql).Append(";\n\n");
        sb.Append($"-- the first {ScoringRunResult.MaxListed} rows with a NULL feature: '{MissingTag}', sample_id, position of the first NULL feature\n");
        sb.Append(MissingRows(ScoringRunResult.MaxListed, tagged: true).Sql).Append(";\n");
        if (IdsTable != null)
            sb.Append($"\n-- '{IdsTag}': agreed ids in {IdsTable} with no feature row to score\n").Append(IdsNotFound(tagged: true).Sql).Append(";\n");
        return sb.ToString();
    }

    /// <summary>Every statement of the script, separately (for grammar validation).</summary>
    public IReadOnlyList<string> ScriptStatements() =>
        [dialect.CreateTable(Schema.PartialScores(plan.Partition.Hourly)), Insert().Sql, CoverageCounts(tagged: true).Sql, MissingRows(ScoringRunResult.MaxListed, tagged: true).Sql,
         .. IdsTable is null ? Array.Empty<string>() : [IdsNotFound(tagged: true).Sql]];
}
