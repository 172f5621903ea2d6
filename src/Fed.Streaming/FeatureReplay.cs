using System.Diagnostics;
using Confluent.Kafka;
using Fed.Core;
using Fed.Core.Data;

namespace Fed.Streaming;

/// <summary>Options of <see cref="FeatureReplay"/> (<c>fed stream replay</c>).</summary>
public sealed class ReplayOptions
{
    public required string CsvPath { get; init; }
    public required string Topic { get; init; }
    public required string[] ModelIds { get; init; }
    /// <summary>librdkafka producer properties (bootstrap.servers at least).</summary>
    public required Dictionary<string, string> Kafka { get; init; }
    /// <summary>Events per second (0 = as fast as possible).</summary>
    public double Rate { get; init; }
    /// <summary>Prefix of every event id: event_id = prefix + sample id (+ "#round" when repeated).
    /// Every party's replay of the same request must use the same prefix, so their partial scores meet.</summary>
    public string EventPrefix { get; init; } = "";
    /// <summary>How many times to go through the file (event ids get "#round" from the second round on).</summary>
    public int Repeat { get; init; } = 1;
    public string IdColumn { get; init; } = "id";
    /// <summary>Columns not sent (e.g. the label "y").</summary>
    public string[] Drop { get; init; } = [];
    /// <summary>Stop after this many events (0 = no limit).</summary>
    public long Limit { get; init; }
}

/// <summary>Produces feature events from a CSV (header; id column; numeric feature columns; empty = null).</summary>
public static class FeatureReplay
{
    public static long Run(ReplayOptions o, TextWriter? log, CancellationToken ct)
    {
        foreach (var m in o.ModelIds) Identifiers.ModelId(m);
        var header = CsvFeatureSource.ReadHeader(o.CsvPath);
        var features = header.Where(h => h != o.IdColumn && !o.Drop.Contains(h)).ToArray();
        if (features.Length == 0) throw new BadInputException($"{o.CsvPath}: no feature columns besides '{o.IdColumn}'");
        KafkaNative.Ensure();
        var cfg = new ProducerConfig(new Dictionary<string, string>(o.Kafka));
        if (!o.Kafka.ContainsKey("linger.ms")) cfg.LingerMs = 2;
        using var producer = new ProducerBuilder<string?, byte[]>(cfg).Build();
        long sent = 0;
        var failures = new Failures();
        var clock = Stopwatch.StartNew();
        var lastLog = 0L;
        for (var round = 0; round < o.Repeat && !ct.IsCancellationRequested; round++)
        {
            using var src = new CsvFeatureSource(o.CsvPath, features, o.IdColumn);
            var batch = new FeatureBatch(features.Length, 512);
            while (!ct.IsCancellationRequested && src.ReadBatch(batch))
            {
                for (var r = 0; r < batch.Count; r++)
                {
                    if (o.Limit > 0 && sent >= o.Limit) goto done;
                    if (o.Rate > 0)
                    {
                        var due = sent / o.Rate * 1000.0;
                        var wait = due - clock.Elapsed.TotalMilliseconds;
                        if (wait > 1) Thread.Sleep((int)wait);
                    }
                    var f = new Dictionary<string, double>(features.Length, StringComparer.Ordinal);
                    for (var c = 0; c < features.Length; c++) f[features[c]] = batch.Columns[c][r];
                    var id = o.EventPrefix + batch.SampleIds[r] + (round == 0 ? "" : "#" + round);
                    var e = new FeatureEvent { EventId = id, SampleId = batch.SampleIds[r], ModelIds = o.ModelIds, Features = f, EventTime = FeatureEvent.Now() };
                    Produce(producer, o.Topic, id, e.ToJson(), failures);
                    sent++;
                    if (log != null && clock.ElapsedMilliseconds - lastLog >= 5000)
                    {
                        lastLog = clock.ElapsedMilliseconds;
                        log.WriteLine($"fed stream replay: {sent} events sent ({sent / clock.Elapsed.TotalSeconds:F0}/s)");
                    }
                }
            }
        }
        done:
        while (producer.Flush(TimeSpan.FromSeconds(10)) > 0) log?.WriteLine("fed stream replay: waiting for the broker to acknowledge");
        if (Interlocked.Read(ref failures.Count) > 0)
            throw new FedFailureException($"{failures.Count} of {sent} events were not delivered to '{o.Topic}': {failures.Last}");
        log?.WriteLine($"fed stream replay: {sent} events sent to '{o.Topic}' in {clock.Elapsed.TotalSeconds:F1} s");
        return sent;
    }

    sealed class Failures { public long Count; public string? Last; }

    static void Produce(IProducer<string?, byte[]> p, string topic, string key, byte[] value, Failures failures)
    {
        while (true)
        {
            try
            {
                p.Produce(topic, new Message<string?, byte[]> { Key = key, Value = value }, r =>
                {
                    if (r.Error.IsError) { Interlocked.Increment(ref failures.Count); failures.Last = r.Error.Reason; }
                });
                return;
            }
            catch (ProduceException<string?, byte[]> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
            {
                p.Poll(TimeSpan.FromMilliseconds(5));
            }
        }
    }
}
