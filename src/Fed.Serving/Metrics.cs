using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace Fed.Serving;

/// <summary>A Prometheus histogram (cumulative buckets rendered at scrape time). Lock-free observation.</summary>
public sealed class Histogram(double[] bounds)
{
    readonly long[] _counts = new long[bounds.Length + 1];
    long _sumMicros;

    public static readonly double[] LatencySeconds = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

    public void Observe(double seconds)
    {
        var i = 0;
        while (i < bounds.Length && seconds > bounds[i]) i++;
        Interlocked.Increment(ref _counts[i]);
        Interlocked.Add(ref _sumMicros, (long)(seconds * 1e6));
    }

    internal void Render(StringBuilder sb, string name, string labels)
    {
        long cum = 0;
        var sep = labels.Length > 0 ? labels + "," : "";
        for (var i = 0; i < bounds.Length; i++)
        {
            cum += Interlocked.Read(ref _counts[i]);
            sb.Append(name).Append("_bucket{").Append(sep).Append("le=\"").Append(bounds[i].ToString(CultureInfo.InvariantCulture)).Append("\"} ").Append(cum).Append('\n');
        }
        cum += Interlocked.Read(ref _counts[^1]);
        sb.Append(name).Append("_bucket{").Append(sep).Append("le=\"+Inf\"} ").Append(cum).Append('\n');
        sb.Append(name).Append("_sum").Append(labels.Length > 0 ? "{" + labels + "}" : "").Append(' ')
          .Append((Interlocked.Read(ref _sumMicros) / 1e6).ToString("R", CultureInfo.InvariantCulture)).Append('\n');
        sb.Append(name).Append("_count").Append(labels.Length > 0 ? "{" + labels + "}" : "").Append(' ').Append(cum).Append('\n');
    }
}

/// <summary>
/// Hand-written Prometheus text exposition (format 0.0.4): counters and histograms with labels, plus gauges computed at scrape.
/// </summary>
public sealed class Metrics
{
    sealed class Family(string name, string help, string type)
    {
        public readonly string Name = name, Help = help, Type = type;
        public readonly ConcurrentDictionary<string, object> Children = new(StringComparer.Ordinal);
    }

    readonly ConcurrentDictionary<string, Family> _families = new(StringComparer.Ordinal);
    readonly List<(string Name, string Help, Func<double> Value)> _gauges = [];

    // Hot path: lookups of existing series allocate nothing (no capturing lambdas).
    Family Of(string name, string help, string type) =>
        _families.TryGetValue(name, out var f) ? f : _families.GetOrAdd(name, static (n, ht) => new Family(n, ht.help, ht.type), (help, type));

    public void Inc(string name, string help, string labels = "", long by = 1)
    {
        var box = (StrongBox)Of(name, help, "counter").Children.GetOrAdd(labels, static _ => new StrongBox());
        Interlocked.Add(ref box.Value, by);
    }

    /// <summary>Counts values (e.g. per-sample statuses), then one update per distinct value, not one per sample.</summary>
    public void IncEach(string name, string help, string label, IEnumerable<string> values)
    {
        foreach (var g in values.CountBy(v => v, StringComparer.Ordinal)) Inc(name, help, L(label, g.Key), g.Value);
    }

    public void Observe(string name, string help, string labels, double seconds) =>
        ((Histogram)Of(name, help, "histogram").Children.GetOrAdd(labels, static _ => new Histogram(Histogram.LatencySeconds))).Observe(seconds);

    public long Counter(string name, string labels = "") =>
        _families.TryGetValue(name, out var f) && f.Children.TryGetValue(labels, out var b) ? Interlocked.Read(ref ((StrongBox)b).Value) : 0;

    public void Gauge(string name, string help, Func<double> value) { lock (_gauges) _gauges.Add((name, help, value)); }

    /// <summary>Label text for one label pair, value escaped per the exposition format. Memoized: label values are
    /// bounded sets (routes, parties, statuses, configured callers), so the request path builds no label strings.</summary>
    public static string L(string k, string v) => Memo(k, v, null, null);
    public static string L(string k1, string v1, string k2, string v2) => Memo(k1, v1, k2, v2);

    static readonly ConcurrentDictionary<(string, string, string?, string?), string> Labels = new();

    static string Memo(string k1, string v1, string? k2, string? v2)
    {
        var key = (k1, v1, k2, v2);
        if (Labels.TryGetValue(key, out var s)) return s;
        s = Pair(k1, v1) + (k2 is null ? "" : "," + Pair(k2, v2!));
        if (Labels.Count < 10_000) Labels.TryAdd(key, s);
        return s;
    }

    static string Pair(string k, string v) => $"{k}=\"{v.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n")}\"";

    public string Render()
    {
        var sb = new StringBuilder(4096);
        foreach (var f in _families.Values.OrderBy(f => f.Name, StringComparer.Ordinal))
        {
            sb.Append("# HELP ").Append(f.Name).Append(' ').Append(f.Help).Append('\n');
            sb.Append("# TYPE ").Append(f.Name).Append(' ').Append(f.Type).Append('\n');
            foreach (var (labels, child) in f.Children.OrderBy(c => c.Key, StringComparer.Ordinal))
            {
                if (child is Histogram h) h.Render(sb, f.Name, labels);
                else sb.Append(f.Name).Append(labels.Length > 0 ? "{" + labels + "}" : "").Append(' ').Append(Interlocked.Read(ref ((StrongBox)child).Value)).Append('\n');
            }
        }
        lock (_gauges)
            foreach (var (name, help, value) in _gauges)
            {
                var v = value();
                sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
                sb.Append("# TYPE ").Append(name).Append(" gauge\n");
                sb.Append(name).Append(' ').Append(double.IsNaN(v) ? "NaN" : v.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
            }
        return sb.ToString();
    }

    sealed class StrongBox { public long Value; }
}
