using System.Text.Json;
using Fed.Core;
using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.Warehouse;

namespace Fed.Converter;

public enum ExportOutcome { Added, Unchanged }

public sealed record ExportResult(ExportOutcome Outcome, string ModelId, int Version, string Party, string WideTable, int RowsWritten, bool Active);

/// <summary>
/// Writes one party's partial model into the warehouse: the wide table of the original design
/// (model_id, version, class_index, intercept, w_1..w_k), its column map, the long table, and the registry row.
/// All of it in one transaction: a failed export leaves no trace. Hive and Spark have no transactions: there the
/// <see cref="HiveModelScript"/> runs instead (atomic per-table overwrites, the registry last, so readers never see a half export). Exporting the same file again changes nothing;
/// the same version with different content is refused (versions are immutable; bump the version).
/// </summary>
public sealed class ModelExporter(IWarehouse warehouse)
{
    public ExportResult Export(PartialModel model, bool activate = true) => ExportAll([model], activate)[0];

    /// <summary>
    /// All or nothing: every model is checked against the registry (and against the others given) before anything is
    /// written, then all rows go in ONE transaction. A conflict in the last file leaves the first unwritten too.
    /// Hive/Spark (no transactions) get the same up-front checks, then one script per model.
    /// </summary>
    public IReadOnlyList<ExportResult> ExportAll(IReadOnlyList<PartialModel> models, bool activate = true)
    {
        var ms = models.Select(model => (M: ScoringModel.From(model),
            Checksum: model.Checksum ?? throw new BadInputException("model has no checksum: read it with ModelFile.Read or stamp it with ModelFile.Stamp"))).ToList();
        foreach (var g in ms.GroupBy(x => (x.M.ModelId, x.M.Version, x.M.PartyId)))
            if (g.Select(x => x.Checksum).Distinct().Count() > 1)
                throw new BadInputException($"two different files for model '{g.Key.ModelId}' v{g.Key.Version} party '{g.Key.PartyId}' in one export; give one");
        var results = new ExportResult?[ms.Count];
        var seen = new HashSet<(string, int, string)>();
        for (var i = 0; i < ms.Count; i++)
        {
            var m = ms[i].M;
            results[i] = Existing(m, Schema.WideName(m.PartyId, m.FeatureCount));
            if (results[i] is null && !seen.Add((m.ModelId, m.Version, m.PartyId)))
                results[i] = new ExportResult(ExportOutcome.Unchanged, m.ModelId, m.Version, m.PartyId, Schema.WideName(m.PartyId, m.FeatureCount), 0, activate);
        }
        var todo = Enumerable.Range(0, ms.Count).Where(i => results[i] is null).ToList();
        if (!warehouse.Dialect.SupportsTransactions)
        {
            foreach (var i in todo) results[i] = ExportWithoutTransactions(ms[i].M, activate, Schema.WideName(ms[i].M.PartyId, ms[i].M.FeatureCount));
            return results!;
        }
        foreach (var i in todo) Schema.EnsureModelTables(warehouse, ms[i].M);
        var now = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ");
        using (var tx = warehouse.BeginTransaction())
        {
            foreach (var i in todo)
            {
                var (m, checksum) = ms[i];
                var wide = Schema.WideName(m.PartyId, m.FeatureCount);
                results[i] = new ExportResult(ExportOutcome.Added, m.ModelId, m.Version, m.PartyId, wide, Insert(m, checksum, wide, activate, now), activate);
            }
            tx.Commit();
        }
        return results!;
    }

    int Insert(ScoringModel m, string checksum, string wide, bool activate, string now)
    {
        var d = warehouse.Dialect;
        var rows = 0;
        var colSql = $"INSERT INTO {d.Id(Schema.Columns.Name)} (model_id, version, party, position, feature_name, column_name, missing_default) VALUES (?, ?, ?, ?, ?, ?, ?)";
        for (var f = 0; f < m.FeatureCount; f++, rows++)
            warehouse.Execute(colSql, m.ModelId, m.Version, m.PartyId, f + 1, m.Features[f], Identifiers.ColumnFor(m.Features[f]), m.Missing.Defaults?[f]);

        var longSql = $"INSERT INTO {d.Id(Schema.Long.Name)} (model_id, version, party, class_index, position, feature, weight) VALUES (?, ?, ?, ?, ?, ?, ?)";
        var wideCols = string.Join("", Enumerable.Range(1, m.FeatureCount).Select(i => ", " + d.Id($"w_{i}")));
        var wideSql = $"INSERT INTO {d.Id(wide)} (model_id, version, class_index, intercept{wideCols}) VALUES (?, ?, ?, ?{string.Concat(Enumerable.Repeat(", ?", m.FeatureCount))})";
        for (var c = 0; c < m.OutputCount; c++)
        {
            warehouse.Execute(longSql, m.ModelId, m.Version, m.PartyId, c, 0, "(intercept)", m.Constants[c]);
            rows++;
            for (var f = 0; f < m.FeatureCount; f++, rows++)
                warehouse.Execute(longSql, m.ModelId, m.Version, m.PartyId, c, f + 1, m.Features[f], m.Weights[c][f]);
            var args = new object?[4 + m.FeatureCount];
            args[0] = m.ModelId; args[1] = m.Version; args[2] = c; args[3] = m.Constants[c];
            for (var f = 0; f < m.FeatureCount; f++) args[4 + f] = m.Weights[c][f];
            warehouse.Execute(wideSql, args);
            rows++;
        }

        if (activate)
            warehouse.Execute($"UPDATE {d.Id(Schema.Registry.Name)} SET status = ? WHERE model_id = ? AND party = ?", Schema.Inactive, m.ModelId, m.PartyId);
        warehouse.Execute(
            $"INSERT INTO {d.Id(Schema.Registry.Name)} (model_id, version, party, role, kind, classes, parties, feature_count, output_count, missing_policy, checksum, wide_table, status, created_at, activated_at) " +
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            m.ModelId, m.Version, m.PartyId, PartialModel.RoleName(m.Role), PartialModel.KindName(m.Kind),
            JsonSerializer.Serialize(m.Classes), JsonSerializer.Serialize(m.Parties), m.FeatureCount, m.OutputCount,
            m.Missing.Kind == MissingPolicyKind.Reject ? "reject" : "default", checksum, wide,
            activate ? Schema.Active : Schema.Inactive, now, activate ? now : null);
        rows++;
        return rows;
    }

    /// <summary>Hive / Spark Thrift Server: run the HiveQL export script (per-table INSERT OVERWRITE, registry last).</summary>
    ExportResult ExportWithoutTransactions(ScoringModel m, bool activate, string wide)
    {
        var statements = HiveModelScript.Generate(m, activate, DateTime.UtcNow);
        foreach (var ddl in statements.Where(s => s.StartsWith("CREATE ", StringComparison.Ordinal))) warehouse.Execute(ddl);
        if (Existing(m, wide) is { } unchanged) return unchanged;
        foreach (var dml in statements.Where(s => !s.StartsWith("CREATE ", StringComparison.Ordinal))) warehouse.Execute(dml);
        return new ExportResult(ExportOutcome.Added, m.ModelId, m.Version, m.PartyId, wide, statements.Count, activate);
    }

    /// <summary>Unchanged when this exact version is there already; refused when the version exists with other content.</summary>
    ExportResult? Existing(ScoringModel m, string wide)
    {
        var existing = new ModelRegistry(warehouse).List(m.ModelId, m.PartyId).FirstOrDefault(e => e.Version == m.Version);
        if (existing is null) return null;
        if (existing.Checksum == m.Checksum)
            return new ExportResult(ExportOutcome.Unchanged, m.ModelId, m.Version, m.PartyId, wide, 0, existing.IsActive);
        throw new BadInputException(
            $"model '{m.ModelId}' v{m.Version} party '{m.PartyId}' already exists in {warehouse.Description} with checksum {existing.Checksum}, " +
            $"but this file has {m.Checksum}: versions are immutable, export it as a new version");
    }
}
