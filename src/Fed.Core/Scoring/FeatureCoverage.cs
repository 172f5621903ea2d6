using System.Text.Json;

namespace Fed.Core.Scoring;

/// <summary>
/// How complete the features were: rows seen, scored and rejected, and per feature how often it was missing
/// and how often a recorded default stood in. Reported by every path, so a silent gap cannot hide.
/// Not thread-safe: one per worker, then <see cref="Add"/>.
/// </summary>
public sealed class FeatureCoverage
{
    public FeatureCoverage(IReadOnlyList<string> features)
    {
        Features = features;
        Missing = new long[features.Count];
        Defaulted = new long[features.Count];
    }

    public IReadOnlyList<string> Features { get; }
    public long RowsSeen { get; set; }
    public long RowsScored { get; set; }
    public long RowsRejected { get; set; }
    /// <summary>Per feature: rows where the value was absent.</summary>
    public long[] Missing { get; }
    /// <summary>Per feature: rows where the model's recorded default was used.</summary>
    public long[] Defaulted { get; }

    public void Add(FeatureCoverage other)
    {
        if (other.Missing.Length != Missing.Length) throw new ArgumentException("coverage of a different feature set");
        RowsSeen += other.RowsSeen;
        RowsScored += other.RowsScored;
        RowsRejected += other.RowsRejected;
        for (var i = 0; i < Missing.Length; i++)
        {
            Missing[i] += other.Missing[i];
            Defaulted[i] += other.Defaulted[i];
        }
    }

    /// <summary>Share of feature values present, over all rows seen (1.0 = complete).</summary>
    public double Completeness => RowsSeen == 0 || Features.Count == 0 ? 1.0 : 1.0 - Missing.Sum() / (double)(RowsSeen * Features.Count);

    public Dictionary<string, object> ToReport() => new()
    {
        ["rows_seen"] = RowsSeen,
        ["rows_scored"] = RowsScored,
        ["rows_rejected"] = RowsRejected,
        ["completeness"] = Completeness,
        ["missing_by_feature"] = Features.Select((f, i) => (f, i)).Where(p => Missing[p.i] > 0).ToDictionary(p => p.f, p => Missing[p.i]),
        ["defaulted_by_feature"] = Features.Select((f, i) => (f, i)).Where(p => Defaulted[p.i] > 0).ToDictionary(p => p.f, p => Defaulted[p.i]),
    };

    /// <summary>The same object as <see cref="ToReport"/> serializes to, written directly (an online answer's hot path:
    /// no dictionary, no boxing).</summary>
    public void WriteJson(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteNumber("rows_seen", RowsSeen);
        w.WriteNumber("rows_scored", RowsScored);
        w.WriteNumber("rows_rejected", RowsRejected);
        w.WriteNumber("completeness", Completeness);
        WriteCounts(w, "missing_by_feature", Missing);
        WriteCounts(w, "defaulted_by_feature", Defaulted);
        w.WriteEndObject();
    }

    void WriteCounts(Utf8JsonWriter w, string name, long[] counts)
    {
        w.WriteStartObject(name);
        for (var i = 0; i < counts.Length; i++) if (counts[i] > 0) w.WriteNumber(Features[i], counts[i]);
        w.WriteEndObject();
    }
}
