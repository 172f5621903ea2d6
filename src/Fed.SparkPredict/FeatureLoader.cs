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
        if (!w.Dialect.SupportsTransactions)
            throw new BadInputException($"{d.Name} has no transactions: copy the CSV to a folder the cluster reads and give --stage-location (a staged external table and INSERT OVERWRITE), or --emit-sql");
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

    /// <summary>
    /// Hive/Spark: the statements that load a CSV the cluster can read at <paramref name="location"/> (a folder holding
    /// only that CSV, header line first) into the feature table's partition: an external TEXTFILE staging table over the
    /// folder (every column STRING, in the CSV's order), <c>INSERT OVERWRITE ... PARTITION (dt=...[, hour=...])</c> with
    /// an explicit column list (empty cell = NULL), then the staging table is dropped (the files stay: it is external).
    /// </summary>
    public static IReadOnlyList<string> HiveStatements(string csv, string table, Partition p, string location, string idColumn = "id", string? labelColumn = "y")
    {
        Identifiers.SqlName(table, "feature table name");
        var header = CsvFeatureSource.ReadHeader(csv);
        if (!header.Contains(idColumn)) throw new BadInputException($"{csv}: no id column '{idColumn}'");
        var features = header.Where(h => h != idColumn && h != labelColumn).ToArray();
        if (features.Length == 0) throw new BadInputException($"{csv}: no feature columns besides '{idColumn}'");
        if (location.Length == 0 || location.Any(ch => ch is '\'' or '\\' or ';' or '\n' or '\r'))
            throw new BadInputException($"--stage-location '{location}': give a folder URI without quotes, backslashes or ';' (e.g. hdfs:///staging/fed/guest)");
        var d = SqlDialect.Hive;
        var def = Schema.Features(table, features, p.Hourly);
        var stage = Identifiers.SqlName($"{table}_stage", "staging table name");
        var stageCols = header.Select((_, i) => $"  {d.Id($"c_{i + 1}")} STRING");
        string Cell(string name) => d.Id($"c_{Array.IndexOf(header, name) + 1}");
        var select = new[] { $"{Cell(idColumn)} AS {d.Id("sample_id")}" }
            .Concat(features.Select(f => $"CAST(NULLIF(TRIM({Cell(f)}), '') AS DOUBLE) AS {d.Id(Identifiers.ColumnFor(f))}"));
        var spec = d.PartitionSpec([("dt", p.Dt), .. p.Hourly ? new[] { ("hour", p.HourText!) } : []]);
        return
        [
            d.CreateTable(def),
            $"DROP TABLE IF EXISTS {d.Id(stage)}",
            $"CREATE EXTERNAL TABLE {d.Id(stage)} (\n{string.Join(",\n", stageCols)}\n)\nROW FORMAT DELIMITED FIELDS TERMINATED BY ','\nSTORED AS TEXTFILE\n" +
            $"LOCATION '{location}'\nTBLPROPERTIES ('skip.header.line.count'='1')",
            $"INSERT OVERWRITE TABLE {d.Id(table)} {spec}\nSELECT {string.Join(",\n  ", select)}\nFROM {d.Id(stage)}",
            $"DROP TABLE {d.Id(stage)}",
        ];
    }
}
