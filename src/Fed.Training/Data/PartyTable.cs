using Fed.Core;
using Fed.Core.Data;

namespace Fed.Training.Data;

/// <summary>
/// One party's training input, read from its own CSV: ids, feature columns (NaN = missing) and, on the guest,
/// the label column. Everything stays in the party's process; only the ids enter PSI (hashed and blinded).
/// </summary>
public sealed class PartyTable
{
    public required string Path { get; init; }
    public required string[] Ids { get; init; }
    public required string[] Features { get; init; }
    /// <summary>Column-major: Columns[f][row].</summary>
    public required double[][] Columns { get; init; }
    /// <summary>Label per row (guest only), else null.</summary>
    public double[]? Labels { get; init; }
    public int Rows => Ids.Length;

    /// <summary>True when the CSV header contains <paramref name="labelColumn"/>.</summary>
    public static bool HasColumn(string path, string labelColumn)
    {
        if (!File.Exists(path)) throw new BadInputException($"{path}: no such file");
        return CsvFeatureSource.ReadHeader(path).Contains(labelColumn);
    }

    public static PartyTable Load(string path, string idColumn, string? labelColumn)
    {
        if (!File.Exists(path)) throw new BadInputException($"{path}: no such file (a party's feature CSV)");
        var header = CsvFeatureSource.ReadHeader(path);
        if (!header.Contains(idColumn))
            throw new BadInputException($"{path}: no id column '{idColumn}' in the header; pass --id-column");
        if (labelColumn != null && !header.Contains(labelColumn))
            throw new BadInputException($"{path}: no label column '{labelColumn}' in the header ({string.Join(", ", header.Take(8))}...); the guest's file must hold the labels (--label-column)");
        var features = header.Where(h => h != idColumn && h != labelColumn).ToArray();
        if (features.Length == 0) throw new BadInputException($"{path}: no feature columns besides the id{(labelColumn is null ? "" : " and label")}");
        var wanted = labelColumn is null ? features : [.. features, labelColumn];
        var ids = new List<string>();
        var cols = wanted.Select(_ => new List<double>()).ToArray();
        using (var src = new CsvFeatureSource(path, wanted, idColumn))
        {
            var batch = new FeatureBatch(wanted.Length, 4096);
            while (src.ReadBatch(batch))
            {
                for (var r = 0; r < batch.Count; r++) ids.Add(batch.SampleIds[r]);
                for (var f = 0; f < wanted.Length; f++) cols[f].AddRange(batch.Columns[f].AsSpan(0, batch.Count));
            }
        }
        if (ids.Count == 0) throw new BadInputException($"{path}: no data rows");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var id in ids)
            if (!seen.Add(id)) throw new BadInputException($"{path}: duplicate id '{id}'; ids must be unique per party");
        double[]? labels = null;
        if (labelColumn != null)
        {
            labels = cols[^1].ToArray();
            var bad = Array.FindIndex(labels, double.IsNaN);
            if (bad >= 0) throw new BadInputException($"{path}: id '{ids[bad]}' has no value in label column '{labelColumn}'");
        }
        return new PartyTable
        {
            Path = path, Ids = ids.ToArray(), Features = features,
            Columns = cols.Take(features.Length).Select(c => c.ToArray()).ToArray(), Labels = labels,
        };
    }

    /// <summary>The rows at <paramref name="rows"/>, in that order.</summary>
    public PartyTable Select(IReadOnlyList<int> rows) => new()
    {
        Path = Path, Features = Features,
        Ids = rows.Select(r => Ids[r]).ToArray(),
        Columns = Columns.Select(c => rows.Select(r => c[r]).ToArray()).ToArray(),
        Labels = Labels is null ? null : rows.Select(r => Labels[r]).ToArray(),
    };
}
