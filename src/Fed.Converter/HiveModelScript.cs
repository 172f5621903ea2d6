using System.Globalization;
using System.Text.Json;
using Fed.Core;
using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.Warehouse;

namespace Fed.Converter;

/// <summary>
/// The HiveQL/Spark SQL script that exports a model on a cluster, where there are no transactions.
/// The weight tables are partitioned by the model version (<see cref="Schema"/>): each is written with one
/// <c>INSERT OVERWRITE ... PARTITION (model_id=..., version=...[, party=...])</c> of literal rows, which neither reads
/// nor rewrites any other model's rows, and re-running it changes nothing. The registry (partitioned by model_id) is
/// written last through its staging table (<see cref="HiveRegistry"/>), so until then no reader sees the new version.
/// No statement overwrites a table it reads from.
/// </summary>
public static class HiveModelScript
{
    public static IReadOnlyList<string> Generate(ScoringModel m, bool activate, DateTime now)
    {
        var d = SqlDialect.Hive;
        var stamp = now.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture);
        var wide = Schema.Wide(m.PartyId, m.FeatureCount);
        var version = m.Version.ToString(CultureInfo.InvariantCulture);
        var statements = new List<string>();
        statements.AddRange(Schema.ModelTables.Append(Schema.RegistryStaging).Append(wide).Select(d.CreateTable));

        var columns = Enumerable.Range(0, m.FeatureCount).Select(f =>
            $"SELECT {f + 1}, {Str(m.Features[f])}, {Str(Identifiers.ColumnFor(m.Features[f]))}, " +
            (m.Missing.Defaults is { } def ? Num(def[f]) : "CAST(NULL AS DOUBLE)")).ToList();
        if (columns.Count > 0) statements.Add(Overwrite(Schema.Columns, [("model_id", m.ModelId), ("version", version), ("party", m.PartyId)], columns));

        var longRows = new List<string>();
        var wideRows = new List<string>();
        for (var c = 0; c < m.OutputCount; c++)
        {
            longRows.Add($"SELECT {c}, 0, '(intercept)', {Num(m.Constants[c])}");
            for (var f = 0; f < m.FeatureCount; f++)
                longRows.Add($"SELECT {c}, {f + 1}, {Str(m.Features[f])}, {Num(m.Weights[c][f])}");
            wideRows.Add($"SELECT {c}, {Num(m.Constants[c])}" + string.Concat(m.Weights[c].Select(w => ", " + Num(w))));
        }
        statements.Add(Overwrite(Schema.Long, [("model_id", m.ModelId), ("version", version), ("party", m.PartyId)], longRows));
        statements.Add(Overwrite(wide, [("model_id", m.ModelId), ("version", version)], wideRows));

        // Registry last: this model's partition only; flip its other versions of this party to inactive and add this one.
        var mine = $"SELECT {m.Version}, {Str(m.PartyId)}, {Str(PartialModel.RoleName(m.Role))}, {Str(PartialModel.KindName(m.Kind))}, " +
                   $"{Str(JsonSerializer.Serialize(m.Classes))}, {Str(JsonSerializer.Serialize(m.Parties))}, {m.FeatureCount}, {m.OutputCount}, " +
                   $"{Str(m.Missing.Kind == MissingPolicyKind.Reject ? "reject" : "default")}, {Str(m.Checksum)}, {Str(wide.Name)}, " +
                   $"{Str(activate ? Schema.Active : Schema.Inactive)}, {Str(stamp)}, {(activate ? Str(stamp) : "CAST(NULL AS STRING)")}";
        statements.AddRange(HiveRegistry.Rewrite(m.ModelId,
            c => c == "status" && activate ? $"CASE WHEN party = {Str(m.PartyId)} THEN '{Schema.Inactive}' ELSE status END" : null,
            $"version = {m.Version} AND party = {Str(m.PartyId)}", mine));
        return statements;
    }

    /// <summary>Replaces one partition with literal rows (data columns in table order): reads no table.</summary>
    static string Overwrite(TableDef t, (string, string)[] partition, IEnumerable<string> rows) =>
        $"INSERT OVERWRITE TABLE {SqlDialect.Hive.Id(t.Name)} {SqlDialect.Hive.PartitionSpec(partition)}\n{string.Join("\nUNION ALL\n", rows)}";

    /// <summary>A HiveQL string literal (<see cref="HiveRegistry.Literal"/>).</summary>
    public static string Str(string s) => HiveRegistry.Literal(s);

    /// <summary>The shortest text that parses back to the same double, typed as DOUBLE (Spark reads bare decimals as DECIMAL).</summary>
    public static string Num(double v) => $"CAST({v.ToString("R", CultureInfo.InvariantCulture)} AS DOUBLE)";
}
