namespace Fed.Core.Data;

/// <summary>
/// A columnar batch of feature rows: sample ids plus one column per requested feature, in the order asked for.
/// A missing value is NaN (sources refuse literal NaN/Infinity in the data, so NaN only ever means "absent").
/// Reused between reads to keep the hot path free of allocation.
/// </summary>
public sealed class FeatureBatch
{
    public FeatureBatch(int featureCount, int capacity)
    {
        Capacity = capacity;
        SampleIds = new string[capacity];
        Columns = new double[featureCount][];
        for (var i = 0; i < featureCount; i++) Columns[i] = new double[capacity];
    }

    public int Capacity { get; }
    public int Count { get; set; }
    public string[] SampleIds { get; }
    public double[][] Columns { get; }
    /// <summary>Optional per-row partition stamps (e.g. hour for hourly snapshots); null when the source has none.</summary>
    public long[]? Stamps { get; set; }
}

/// <summary>
/// Where a party's features come from: a CSV file, a warehouse table, events. One interface so that no path
/// needs a hand-written adapter per data source. Columns are bound to the model's features by name once, up front:
/// a feature the source lacks is an error naming it, never a column of zeros.
/// </summary>
public interface IFeatureSource : IDisposable
{
    /// <summary>Human-readable origin, used in error messages.</summary>
    string Description { get; }
    /// <summary>Fills <paramref name="batch"/> with up to its capacity rows; false at the end.</summary>
    bool ReadBatch(FeatureBatch batch);
}

/// <summary>
/// A source made of independent parts (e.g. Parquet row groups) that workers may read in parallel. Read in part
/// order, the parts are exactly the source's rows in its <see cref="IFeatureSource.ReadBatch"/> order.
/// </summary>
public interface IPartitionedFeatureSource : IFeatureSource
{
    int PartCount { get; }
    /// <summary>A source of its own (own file handle) reading only part <paramref name="part"/>.</summary>
    IFeatureSource OpenPart(int part);
}
