using System.Globalization;
using System.Text.RegularExpressions;
using Fed.Core;
using Fed.Core.Scoring;
using Fed.Warehouse;

namespace Fed.SparkPredict;

/// <summary>A day partition, optionally one hour of it. dt is yyyy-MM-dd, hour 0..23 (stored as "HH").
/// Both are validated here, so they may appear as literals in generated HiveQL/Spark SQL.</summary>
/// <summary>What the local engine writes with --out DIR: CSV or Arrow IPC partial-score files (+ manifest), or Hive-layout Parquet partitions.</summary>
public enum OutputFormat { Csv, Parquet, Arrow }

public sealed partial record Partition(string Dt, int? Hour)
{
    [GeneratedRegex(@"^\d{4}-\d{2}-\d{2}$")] private static partial Regex DtPattern();

    public static Partition Parse(string dt, int? hour)
    {
        if (!DtPattern().IsMatch(dt) || !DateOnly.TryParseExact(dt, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out _))
            throw new BadInputException($"--dt '{dt}' is not a date: use yyyy-MM-dd, e.g. 2024-03-31");
        if (hour is < 0 or > 23) throw new BadInputException($"--hour {hour} is out of range: use 0..23");
        return new Partition(dt, hour);
    }

    public bool Hourly => Hour.HasValue;
    /// <summary>The hour as the tables store it ("05"), or null.</summary>
    public string? HourText => Hour?.ToString("D2", CultureInfo.InvariantCulture);
    public override string ToString() => Hourly ? $"dt={Dt} hour={HourText}" : $"dt={Dt}";
    public string FileTag => Hourly ? $"{Dt}_h{HourText}" : Dt;
}

/// <summary>
/// Everything a scoring engine needs, resolved once from the registry: the party's scoring model (exactly the
/// warehouse numbers), where the features are, which partition, which weight layout. Every engine runs the same plan.
/// </summary>
public sealed class ScoringPlan
{
    public required ScoringModel Model { get; init; }
    public required ModelEntry Entry { get; init; }
    /// <summary>A warehouse feature table name, or a CSV path.</summary>
    public required string Features { get; init; }
    public required Partition Partition { get; init; }
    public WeightLayout Layout { get; init; } = WeightLayout.Wide;
    public string IdColumn { get; init; } = "id";
    /// <summary>--ids: the agreed ids, as a warehouse table (column sample_id) or a file (one id a line); null = every row.</summary>
    public string? Ids { get; init; }
    public bool IdsIsFile => Ids is { } i && (i.Contains('/') || i.Contains('.') || File.Exists(i));

    /// <summary>--ids FILE: the ids, one a line (blank lines skipped; a first line 'sample_id' or 'id' is a header).</summary>
    public HashSet<string> ReadIdsFile()
    {
        var path = Ids ?? throw new InvalidOperationException("no --ids");
        if (!File.Exists(path)) throw new BadInputException($"--ids {path}: no such file (give a file of ids, one a line, or a warehouse table with a sample_id column)");
        var set = new HashSet<string>(StringComparer.Ordinal);
        var first = true;
        foreach (var line in File.ReadLines(path))
        {
            var id = line.Trim();
            if (first && id is "sample_id" or "id") { first = false; continue; }
            first = false;
            if (id.Length > 0) set.Add(id);
        }
        if (set.Count == 0) throw new BadInputException($"--ids {path}: no ids in the file");
        return set;
    }

    /// <summary>A folder: a Hive table location with dt=D[/hour=H] subfolders of Parquet files.</summary>
    public bool FeaturesIsFolder => Directory.Exists(Features);
    public bool FeaturesIsFile => Features.EndsWith(".csv", StringComparison.OrdinalIgnoreCase) || Features.Contains('/') || File.Exists(Features);
    public string PartyId => Model.PartyId;

    public static ScoringPlan Build(IWarehouse warehouse, string modelId, int? version, string party, string features,
        Partition partition, WeightLayout layout = WeightLayout.Wide, string idColumn = "id", string? ids = null)
    {
        Identifiers.PartyId(party);
        var registry = new ModelRegistry(warehouse);
        var entry = registry.Resolve(modelId, party, version);
        var model = registry.Load(modelId, party, entry.Version, layout);
        var plan = new ScoringPlan { Model = model, Entry = entry, Features = features, Partition = partition, Layout = layout, IdColumn = idColumn, Ids = ids };
        if (!plan.FeaturesIsFile) Identifiers.SqlName(features, "feature table name");
        if (ids != null && !plan.IdsIsFile) Identifiers.SqlName(ids, "--ids table name");
        return plan;
    }
}
