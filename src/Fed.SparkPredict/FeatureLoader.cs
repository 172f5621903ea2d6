using Fed.Core;
using Fed.Core.Data;
using Fed.Warehouse;

namespace Fed.SparkPredict;

/// <summary>'fed features load': a party's CSV into its warehouse feature table (Schema.Features), partition replaced in one transaction.</summary>
public static class FeatureLoader
{
    public static long Load(IWarehouse w, string csv, string table, Partition p, string idColumn = "id", string? labelColumn = "y")
    {
        Identifiers.SqlName(table, "feature table name");
        var header = CsvFeatureSource.ReadHeader(csv);
        var features = header.Where(h => h != idColumn && h != labelColumn).ToArray();
        if (features.Length == 0) throw new BadInputException($"{csv}: no feature columns besides '{idColumn}'");
        var def = Schema.Features(table, features, p.Hourly);
        var d = w.Dialect;
        if (!w.Dialect.SupportsTransactions) throw new BadInputException($"{d.Name} has no transactions: load features with the cluster's own tools");
        w.Execute(d.CreateTable(def));
        var have = WarehouseFeatureSource.ColumnsOf(w, table);
        var lacking = def.AllColumns.Select(c => c.Name).Where(c => !have.Contains(c)).ToList();
        if (lacking.Count > 0)
            throw new BadInputException($"feature table '{table}' in {w.Description} exists without column(s) {string.Join(", ", lacking)}: load into a new table or drop it");
        var cols = def.AllColumns.Select(c => d.Id(c.Name)).ToArray();
        var insert = $"INSERT INTO {d.Id(table)} ({string.Join(", ", cols)}) VALUES ({string.Join(", ", cols.Select(_ => "?"))})";
        using var source = new CsvFeatureSource(csv, features, idColumn);
        var batch = new FeatureBatch(features.Length, 4096);
        var args = new object?[cols.Length];
        long n = 0;
        using var tx = w.BeginTransaction();
        if (p.Hourly) w.Execute($"DELETE FROM {d.Id(table)} WHERE dt = ? AND hour = ?", p.Dt, p.HourText);
        else w.Execute($"DELETE FROM {d.Id(table)} WHERE dt = ?", p.Dt);
        while (source.ReadBatch(batch))
            for (var r = 0; r < batch.Count; r++, n++)
            {
                args[0] = batch.SampleIds[r];
                for (var f = 0; f < features.Length; f++) args[1 + f] = double.IsNaN(batch.Columns[f][r]) ? null : batch.Columns[f][r];
                args[1 + features.Length] = p.Dt;
                if (p.Hourly) args[2 + features.Length] = p.HourText;
                w.Execute(insert, args);
            }
        tx.Commit();
        return n;
    }
}
