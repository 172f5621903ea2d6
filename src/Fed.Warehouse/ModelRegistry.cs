using System.Text.Json;
using Fed.Core;
using Fed.Core.Model;
using Fed.Core.Scoring;

namespace Fed.Warehouse;

public sealed record ModelEntry(
    string ModelId, int Version, string Party, string Role, string Kind, string[] Classes, string[] Parties,
    int FeatureCount, int OutputCount, string MissingPolicy, string Checksum, string WideTable, string Status,
    string CreatedAt, string? ActivatedAt)
{
    public bool IsActive => Status == Schema.Active;
}

/// <summary>Which model table to read weights from: the original design's wide table, or the long table.</summary>
public enum WeightLayout { Wide, Long }

/// <summary>
/// Reads models back from the warehouse tables and moves the active version (activate, roll back).
/// Every lookup of an unknown model, version or party says what the registry does hold.
/// </summary>
public sealed class ModelRegistry(IWarehouse warehouse)
{
    const string EntryColumns = "model_id, version, party, role, kind, classes, parties, feature_count, output_count, missing_policy, checksum, wide_table, status, created_at, activated_at";

    public IWarehouse Warehouse => warehouse;

    public IReadOnlyList<ModelEntry> List(string? modelId = null, string? party = null)
    {
        if (!warehouse.TableExists(Schema.Registry.Name)) return [];
        // Conditions are added, not switched with "? IS NULL": some drivers cannot type an untyped NULL parameter.
        var where = new List<string>();
        var args = new List<object?>();
        if (modelId != null) { where.Add("model_id = ?"); args.Add(modelId); }
        if (party != null) { where.Add("party = ?"); args.Add(party); }
        var sql = $"SELECT {EntryColumns} FROM {warehouse.Dialect.Id(Schema.Registry.Name)}" +
                  (where.Count > 0 ? " WHERE " + string.Join(" AND ", where) : "") + " ORDER BY model_id, version, party";
        using var r = warehouse.Query(sql, args.ToArray());
        var list = new List<ModelEntry>();
        while (r.Read())
            list.Add(new ModelEntry(r.GetString(0), (int)r.GetInt64(1), r.GetString(2), r.GetString(3), r.GetString(4),
                JsonSerializer.Deserialize<string[]>(r.GetString(5))!, JsonSerializer.Deserialize<string[]>(r.GetString(6))!,
                (int)r.GetInt64(7), (int)r.GetInt64(8), r.GetString(9), r.GetString(10), r.GetString(11), r.GetString(12),
                r.GetString(13), r.IsNull(14) ? null : r.GetString(14)));
        return list;
    }

    /// <summary>The registry row of a party's model: the given version, or the active one.</summary>
    public ModelEntry Resolve(string modelId, string party, int? version = null)
    {
        Identifiers.ModelId(modelId);
        var rows = List(modelId);
        if (rows.Count == 0)
        {
            var known = List().Select(e => e.ModelId).Distinct().Take(20).ToList();
            throw new UnknownModelException($"unknown model id '{modelId}' in {warehouse.Description}; " +
                (known.Count == 0 ? "the registry is empty: run 'fed convert' first" : $"known models: {string.Join(", ", known)}"));
        }
        var mine = rows.Where(e => e.Party == party).ToList();
        if (mine.Count == 0)
            throw new UnknownModelException($"model '{modelId}' has no part for party '{party}' in {warehouse.Description}; parties present: {string.Join(", ", rows.Select(e => e.Party).Distinct())}");
        if (version is { } v)
            return mine.FirstOrDefault(e => e.Version == v)
                ?? throw new UnknownModelException($"model '{modelId}' party '{party}' has no version {v}; versions: {string.Join(", ", mine.Select(e => e.Version))}");
        return mine.FirstOrDefault(e => e.IsActive)
            ?? throw new UnknownModelException($"model '{modelId}' party '{party}' has no active version; activate one of {string.Join(", ", mine.Select(e => e.Version))} with 'fed model activate'");
    }

    /// <summary>Loads a party's scoring model from the tables, checking the tables agree with the registry.</summary>
    public ScoringModel Load(string modelId, string party, int? version = null, WeightLayout layout = WeightLayout.Wide)
    {
        var e = Resolve(modelId, party, version);
        var d = warehouse.Dialect;
        string Corrupt(string what) => $"model '{e.ModelId}' v{e.Version} party '{e.Party}' in {warehouse.Description}: {what}; re-run 'fed convert' for this model";

        var features = new string[e.FeatureCount];
        double[]? defaults = e.MissingPolicy == "default" ? new double[e.FeatureCount] : null;
        var seen = 0;
        using (var r = warehouse.Query($"SELECT position, feature_name, {d.ReadDouble("missing_default")} FROM {d.Id(Schema.Columns.Name)} WHERE model_id = ? AND version = ? AND party = ? ORDER BY position",
                   e.ModelId, e.Version, e.Party))
        {
            while (r.Read())
            {
                var pos = (int)r.GetInt64(0);
                if (pos != seen + 1 || pos > e.FeatureCount) throw new FedFailureException(Corrupt($"column map position {pos} out of order"));
                features[seen] = r.GetString(1);
                if (defaults != null)
                {
                    if (r.IsNull(2)) throw new FedFailureException(Corrupt($"no missing_default for '{features[seen]}'"));
                    defaults[seen] = r.GetDouble(2);
                }
                seen++;
            }
        }
        if (seen != e.FeatureCount) throw new FedFailureException(Corrupt($"column map has {seen} features, the registry says {e.FeatureCount}"));

        var weights = new double[e.OutputCount][];
        var constants = new double[e.OutputCount];
        for (var c = 0; c < e.OutputCount; c++) weights[c] = new double[e.FeatureCount];
        var filled = new bool[e.OutputCount, e.FeatureCount + 1];
        if (layout == WeightLayout.Wide)
        {
            var cols = string.Join(", ", Enumerable.Range(1, e.FeatureCount).Select(i => d.ReadDouble(d.Id($"w_{i}"))));
            using var r = warehouse.Query($"SELECT class_index, {d.ReadDouble("intercept")}{(cols.Length > 0 ? ", " + cols : "")} FROM {d.Id(Identifiers.SqlName(e.WideTable))} WHERE model_id = ? AND version = ?",
                e.ModelId, e.Version);
            while (r.Read())
            {
                var c = (int)r.GetInt64(0);
                if (c < 0 || c >= e.OutputCount || filled[c, 0]) throw new FedFailureException(Corrupt($"wide table row for class {c} unexpected or repeated"));
                constants[c] = r.GetDouble(1);
                for (var f = 0; f < e.FeatureCount; f++) { weights[c][f] = r.GetDouble(2 + f); filled[c, f + 1] = true; }
                filled[c, 0] = true;
            }
        }
        else
        {
            using var r = warehouse.Query($"SELECT class_index, position, {d.ReadDouble("weight")} FROM {d.Id(Schema.Long.Name)} WHERE model_id = ? AND version = ? AND party = ?",
                e.ModelId, e.Version, e.Party);
            while (r.Read())
            {
                var c = (int)r.GetInt64(0);
                var pos = (int)r.GetInt64(1);
                if (c < 0 || c >= e.OutputCount || pos < 0 || pos > e.FeatureCount || filled[c, pos])
                    throw new FedFailureException(Corrupt($"long table row (class {c}, position {pos}) unexpected or repeated"));
                if (pos == 0) constants[c] = r.GetDouble(2); else weights[c][pos - 1] = r.GetDouble(2);
                filled[c, pos] = true;
            }
        }
        foreach (var ok in filled) if (!ok) throw new FedFailureException(Corrupt($"{layout} weight table is incomplete"));
        // Rows written before conversion refused non-finite folded models: never score from them.
        for (var c = 0; c < constants.Length; c++)
            for (var f = -1; f < features.Length; f++)
                if (!double.IsFinite(f < 0 ? constants[c] : weights[c][f]))
                    throw new BadInputException(Corrupt($"output {c}: the {(f < 0 ? "constant" : $"weight of feature '{ErrorText.Cut(features[f], 80)}'")} is not finite"));

        if (!PartialModel.TryParseKind(e.Kind, out var kind)) throw new FedFailureException(Corrupt($"unknown kind '{e.Kind}'"));
        return new ScoringModel
        {
            ModelId = e.ModelId, Version = e.Version, Kind = kind, Classes = e.Classes, PartyId = e.Party,
            Role = e.Role == "guest" ? PartyRole.Guest : PartyRole.Host, Parties = e.Parties, Features = features,
            Weights = weights, Constants = constants,
            Missing = defaults is null ? MissingPolicy.RejectRow : new MissingPolicy(MissingPolicyKind.Default, defaults),
            Checksum = e.Checksum,
        };
    }

    /// <summary>Makes <paramref name="version"/> the one active version of the model (for every party this warehouse holds).</summary>
    public void Activate(string modelId, int version)
    {
        var rows = List(Identifiers.ModelId(modelId));
        if (rows.All(e => e.Version != version))
            throw new UnknownModelException(rows.Count == 0
                ? $"unknown model id '{modelId}' in {warehouse.Description}"
                : $"model '{modelId}' has no version {version}; versions: {string.Join(", ", rows.Select(e => e.Version).Distinct())}");
        var now = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ");
        var sql = $"UPDATE {warehouse.Dialect.Id(Schema.Registry.Name)} SET status = CASE WHEN version = ? THEN ? ELSE ? END, " +
                  "activated_at = CASE WHEN version = ? THEN ? ELSE activated_at END WHERE model_id = ?";
        if (warehouse.Dialect.SupportsTransactions)
        {
            using var tx = warehouse.BeginTransaction();
            warehouse.Execute(sql, version, Schema.Active, Schema.Inactive, version, now, modelId);
            tx.Commit();
        }
        else foreach (var s in HiveRegistry.Activate(modelId, version, now)) warehouse.Execute(s);
    }

    /// <summary>Re-activates the newest version older than the active one. Returns it.</summary>
    public int Rollback(string modelId)
    {
        var rows = List(Identifiers.ModelId(modelId));
        var active = rows.Where(e => e.IsActive).Select(e => e.Version).DefaultIfEmpty(0).Max();
        if (active == 0) throw new UnknownModelException($"model '{modelId}' has no active version to roll back from");
        var previous = rows.Where(e => e.Version < active).Select(e => e.Version).DefaultIfEmpty(0).Max();
        if (previous == 0) throw new BadInputException($"model '{modelId}' v{active} is the oldest version; nothing to roll back to");
        Activate(modelId, previous);
        return previous;
    }
}

/// <summary>
/// Hive/Spark (no UPDATE, no transactions): a model's registry partition (model_id=M) is rebuilt in
/// <see cref="Schema.RegistryStaging"/> from that partition alone, then copied over it. Spark refuses to overwrite a
/// partition the same statement reads, and no other model's partition is read or written.
/// Two exports of the same model must not run at once (they share its staging partition).
/// </summary>
public static class HiveRegistry
{
    static SqlDialect D => SqlDialect.Hive;

    /// <param name="expression">a column's value in the rewritten rows (null: unchanged)</param>
    /// <param name="drop">a condition on the rows to leave out, or null</param>
    /// <param name="add">a SELECT of one more row (every column but model_id, in table order), or null</param>
    public static IReadOnlyList<string> Rewrite(string modelId, Func<string, string?> expression, string? drop, string? add)
    {
        var spec = D.PartitionSpec(("model_id", modelId));
        var mine = $"model_id = {Literal(modelId)}";
        var cols = Schema.Registry.Columns.Select(c => expression(c.Name) is { } e ? $"{e} AS {D.Id(c.Name)}" : D.Id(c.Name));
        var stage = $"INSERT OVERWRITE TABLE {D.Id(Schema.RegistryStaging.Name)} {spec}\n" +
                    $"SELECT {string.Join(", ", cols)} FROM {D.Id(Schema.Registry.Name)} WHERE {mine}{(drop is null ? "" : $" AND NOT ({drop})")}" +
                    (add is null ? "" : $"\nUNION ALL\n{add}");
        var swap = $"INSERT OVERWRITE TABLE {D.Id(Schema.Registry.Name)} {spec}\n" +
                   $"SELECT {string.Join(", ", Schema.Registry.Columns.Select(c => D.Id(c.Name)))} FROM {D.Id(Schema.RegistryStaging.Name)} WHERE {mine}";
        return [stage, swap];
    }

    /// <summary>Makes <paramref name="version"/> the model's one active version (every party).</summary>
    public static IReadOnlyList<string> Activate(string modelId, int version, string now) => Rewrite(modelId, c => c switch
    {
        "status" => $"CASE WHEN version = {version} THEN {Literal(Schema.Active)} ELSE {Literal(Schema.Inactive)} END",
        "activated_at" => $"CASE WHEN version = {version} THEN {Literal(now)} ELSE activated_at END",
        _ => null,
    }, null, null);

    /// <summary>A HiveQL string literal. Values are Fed-validated ids and feature names; escaping still makes any text safe.</summary>
    public static string Literal(string s) => "'" + s.Replace("\\", "\\\\").Replace("'", "\\'").Replace("\n", "\\n").Replace("\r", "\\r").Replace(";", "\\;") + "'";
}
