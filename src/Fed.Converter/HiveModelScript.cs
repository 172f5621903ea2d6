using System.Globalization;
using System.Text.Json;
using Fed.Core;
using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.Warehouse;

namespace Fed.Converter;

/// <summary>
/// The HiveQL/Spark SQL script that exports a model on a cluster, where there are no transactions.
/// Each table is rewritten with one INSERT OVERWRITE (atomic per table in Hive and Spark) that keeps every other
/// model's rows and replaces this (model, version, party)'s: re-running the script changes nothing.
/// The registry is written last, so until then no reader sees the new version (staging, then swap).
/// </summary>
public static class HiveModelScript
{
    public static IReadOnlyList<string> Generate(ScoringModel m, bool activate, DateTime now)
    {
        var d = SqlDialect.Hive;
        var stamp = now.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture);
        var wide = Schema.Wide(m.PartyId, m.FeatureCount);
        var statements = new List<string>();
        statements.AddRange(Schema.ModelTables.Append(wide).Select(d.CreateTable));

        string Keep(TableDef t, bool hasParty = true) =>
            $"SELECT {string.Join(", ", t.AllColumns.Select(c => d.Id(c.Name)))} FROM {d.Id(t.Name)} " +
            $"WHERE NOT (model_id = {Str(m.ModelId)} AND version = {m.Version}{(hasParty ? $" AND party = {Str(m.PartyId)}" : "")})";

        var columns = Enumerable.Range(0, m.FeatureCount).Select(f =>
            $"SELECT {Str(m.ModelId)}, {m.Version}, {Str(m.PartyId)}, {f + 1}, {Str(m.Features[f])}, {Str(Identifiers.ColumnFor(m.Features[f]))}, " +
            (m.Missing.Defaults is { } def ? Num(def[f]) : "CAST(NULL AS DOUBLE)"));
        statements.Add(Overwrite(Schema.Columns, Keep(Schema.Columns), columns));

        var longRows = new List<string>();
        var wideRows = new List<string>();
        for (var c = 0; c < m.OutputCount; c++)
        {
            longRows.Add($"SELECT {Str(m.ModelId)}, {m.Version}, {Str(m.PartyId)}, {c}, 0, '(intercept)', {Num(m.Constants[c])}");
            for (var f = 0; f < m.FeatureCount; f++)
                longRows.Add($"SELECT {Str(m.ModelId)}, {m.Version}, {Str(m.PartyId)}, {c}, {f + 1}, {Str(m.Features[f])}, {Num(m.Weights[c][f])}");
            wideRows.Add($"SELECT {Str(m.ModelId)}, {m.Version}, {c}, {Num(m.Constants[c])}" + string.Concat(m.Weights[c].Select(w => ", " + Num(w))));
        }
        statements.Add(Overwrite(Schema.Long, Keep(Schema.Long), longRows));
        statements.Add(Overwrite(wide, Keep(wide, hasParty: false), wideRows));

        // Registry last: flip the model's other versions to inactive and add this one, in one statement.
        var reg = Schema.Registry;
        var others = string.Join(", ", reg.AllColumns.Select(c => c.Name switch
        {
            "status" when activate => $"CASE WHEN model_id = {Str(m.ModelId)} AND party = {Str(m.PartyId)} THEN '{Schema.Inactive}' ELSE status END",
            _ => d.Id(c.Name),
        }));
        var mine = $"SELECT {Str(m.ModelId)}, {m.Version}, {Str(m.PartyId)}, {Str(PartialModel.RoleName(m.Role))}, {Str(PartialModel.KindName(m.Kind))}, " +
                   $"{Str(JsonSerializer.Serialize(m.Classes))}, {Str(JsonSerializer.Serialize(m.Parties))}, {m.FeatureCount}, {m.OutputCount}, " +
                   $"{Str(m.Missing.Kind == MissingPolicyKind.Reject ? "reject" : "default")}, {Str(m.Checksum)}, {Str(wide.Name)}, " +
                   $"{Str(activate ? Schema.Active : Schema.Inactive)}, {Str(stamp)}, {(activate ? Str(stamp) : "CAST(NULL AS STRING)")}";
        statements.Add($"INSERT OVERWRITE TABLE {d.Id(reg.Name)}\nSELECT {others} FROM {d.Id(reg.Name)} " +
                       $"WHERE NOT (model_id = {Str(m.ModelId)} AND version = {m.Version} AND party = {Str(m.PartyId)})\nUNION ALL\n{mine}");
        return statements;
    }

    static string Overwrite(TableDef t, string keep, IEnumerable<string> rows) =>
        $"INSERT OVERWRITE TABLE {SqlDialect.Hive.Id(t.Name)}\n{keep}\nUNION ALL\n{string.Join("\nUNION ALL\n", rows)}";

    /// <summary>A HiveQL string literal. Values are Fed-validated ids and feature names; escaping still makes any text safe.</summary>
    public static string Str(string s) => "'" + s.Replace("\\", "\\\\").Replace("'", "\\'").Replace("\n", "\\n").Replace("\r", "\\r").Replace(";", "\\;") + "'";

    /// <summary>The shortest text that parses back to the same double, typed as DOUBLE (Spark reads bare decimals as DECIMAL).</summary>
    public static string Num(double v) => $"CAST({v.ToString("R", CultureInfo.InvariantCulture)} AS DOUBLE)";
}
