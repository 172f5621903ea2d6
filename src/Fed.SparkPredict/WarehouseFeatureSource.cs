using Fed.Core;
using Fed.Core.Data;
using Fed.Warehouse;

namespace Fed.SparkPredict;

/// <summary>
/// Streams a party's warehouse feature table (<see cref="Schema.Features"/>) for one partition as columnar batches.
/// Daily: every row of dt. Hourly (the rule <see cref="SqlGenerator"/> implements too): among the rows of dt with
/// hour &lt;= H, the newest row per sample_id wins; a sample is emitted only if its newest row is at hour H and its
/// feature values differ (NULL-safe, exact) from its newest row before H, or it has none. Unchanged samples keep their
/// earlier partial score.
/// </summary>
public sealed class WarehouseFeatureSource : IFeatureSource
{
    readonly IRowReader _reader;
    readonly int _k;
    readonly string? _hour;
    bool _pending; // _reader is positioned on a row not yet consumed
    bool _end;
    readonly double[] _row; // one row's features, reused

    public WarehouseFeatureSource(IWarehouse warehouse, string table, IReadOnlyList<string> features, Partition partition)
    {
        var d = warehouse.Dialect;
        Description = $"{warehouse.Description} table {table} {partition}";
        if (!warehouse.TableExists(Identifiers.SqlName(table, "feature table name")))
            throw new BadInputException($"no feature table '{table}' in {warehouse.Description}: load it with 'fed features load'");
        var columns = features.Select(Identifiers.ColumnFor).ToArray();
        var have = ColumnsOf(warehouse, table);
        var missing = features.Where((f, i) => !have.Contains(columns[i])).ToList();
        if (missing.Count > 0)
            throw new MissingFeatureException($"{Description}: the model needs feature column(s) {string.Join(", ", missing.Select((f) => $"'{f}' ({Identifiers.ColumnFor(f)})"))} that the table does not have", missing);
        if (partition.Hourly && !have.Contains("hour"))
            throw new BadInputException($"{table} has no hour column: it is a daily feature table; drop --hour or load hourly features");
        _k = columns.Length;
        _row = new double[_k];
        var cols = string.Join("", columns.Select(c => ", " + d.Id(c)));
        if (partition.Hourly)
        {
            _hour = partition.HourText;
            _reader = warehouse.Scan($"SELECT sample_id, hour{cols} FROM {d.Id(table)} WHERE dt = ? AND hour <= ? ORDER BY sample_id, hour DESC",
                partition.Dt, partition.HourText);
        }
        else
            _reader = warehouse.Scan($"SELECT sample_id{cols} FROM {d.Id(table)} WHERE dt = ?", partition.Dt);
    }

    public string Description { get; }
    /// <summary>Hourly: samples whose newest row is at hour H but equal to their previous row (not rescored).</summary>
    public long Unchanged { get; private set; }

    internal static HashSet<string> ColumnsOf(IWarehouse w, string table) => [.. w.Dialect.ColumnsOf(w, table)];

    public bool ReadBatch(FeatureBatch batch)
    {
        var n = 0;
        var row = _row;
        if (_hour is null)
        {
            while (n < batch.Capacity && _reader.Read())
            {
                batch.SampleIds[n] = _reader.GetString(0);
                _reader.GetDoubles(1, row);
                for (var f = 0; f < _k; f++) batch.Columns[f][n] = row[f];
                n++;
            }
        }
        else
        {
            Span<double> prev = stackalloc double[_k];
            while (n < batch.Capacity && !_end)
            {
                if (!_pending && !_reader.Read()) { _end = true; break; }
                _pending = false;
                // Newest row of this sample (rows come ordered by sample_id, hour DESC).
                var id = _reader.GetString(0);
                var newestHour = _reader.GetString(1);
                _reader.GetDoubles(2, row);
                for (var f = 0; f < _k; f++) batch.Columns[f][n] = row[f];
                var hasPrev = false;
                var changed = true;
                // Skip the sample's older rows, comparing with the first (the newest before H).
                while (_reader.Read())
                {
                    if (_reader.GetString(0) != id) { _pending = true; break; }
                    if (hasPrev) continue;
                    hasPrev = true;
                    _reader.GetDoubles(2, prev);
                    changed = false;
                    for (var f = 0; f < _k && !changed; f++)
                    {
                        var a = batch.Columns[f][n];
                        var b = prev[f];
                        changed = double.IsNaN(a) != double.IsNaN(b) || (!double.IsNaN(a) && a != b);
                    }
                }
                if (!_pending) _end = true;
                if (newestHour != _hour) continue;  // nothing new this hour
                if (!changed) { Unchanged++; continue; }
                batch.SampleIds[n] = id;
                n++;
            }
        }
        batch.Count = n;
        return n > 0;
    }

    public void Dispose() => _reader.Dispose();
}
