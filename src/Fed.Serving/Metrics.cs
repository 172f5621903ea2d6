using System.Collections.Concurrent;
using Prometheus;

namespace Fed.Serving;

/// <summary>
/// One service's Prometheus metrics, kept by prometheus-net (its own registry per service, so two services in one
/// process never share series; no process/runtime default metrics). Collectors are created once by name and reused;
/// callers hold the returned collector (or its labelled child) so the request path does one label lookup per update.
/// Served at /metrics by prometheus-net.AspNetCore (<c>MapMetrics</c>) under the service's own authorization rule.
/// </summary>
public sealed class Metrics
{
    /// <summary>Latency buckets (seconds) of every request-duration histogram.</summary>
    public static readonly double[] LatencySeconds = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

    readonly IMetricFactory _factory;
    readonly ConcurrentDictionary<string, Collector> _byName = new(StringComparer.Ordinal);

    public Metrics()
    {
        Registry = Prometheus.Metrics.NewCustomRegistry();
        _factory = Prometheus.Metrics.WithCustomRegistry(Registry);
    }

    public CollectorRegistry Registry { get; }

    public Counter Counter(string name, string help, params string[] labelNames) =>
        (Counter)_byName.GetOrAdd(name, _ => _factory.CreateCounter(name, help, labelNames));

    public Histogram Histogram(string name, string help, params string[] labelNames) =>
        (Histogram)_byName.GetOrAdd(name, _ => _factory.CreateHistogram(name, help, new HistogramConfiguration { LabelNames = labelNames, Buckets = LatencySeconds }));

    /// <summary>A gauge whose value is computed when scraped.</summary>
    public void Gauge(string name, string help, Func<double> value)
    {
        var g = (Gauge)_byName.GetOrAdd(name, _ => _factory.CreateGauge(name, help));
        Registry.AddBeforeCollectCallback(() => g.Set(value()));
    }

    /// <summary>Adds each value's count to the counter's child labelled with it: one update per distinct value (e.g.
    /// per-sample statuses), not one per sample.</summary>
    public static void IncEach(Counter counter, IEnumerable<string> values)
    {
        foreach (var g in values.CountBy(v => v, StringComparer.Ordinal)) counter.WithLabels(g.Key).Inc(g.Value);
    }

    /// <summary>A counter's current value (0 when it or the labelled series does not exist yet); for tests and gauges.</summary>
    public long Value(string name, params string[] labelValues) =>
        _byName.TryGetValue(name, out var c) && c is Counter counter ? (long)(labelValues.Length == 0 ? counter.Value : counter.WithLabels(labelValues).Value) : 0;

    /// <summary>The exposition text (format 0.0.4), as /metrics serves it.</summary>
    public string Render()
    {
        using var ms = new MemoryStream();
        Registry.CollectAndExportAsTextAsync(ms).GetAwaiter().GetResult();
        return System.Text.Encoding.UTF8.GetString(ms.GetBuffer(), 0, (int)ms.Length);
    }
}
