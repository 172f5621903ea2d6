using System.Diagnostics;
using System.Text.Json;
using Confluent.Kafka;
using Fed.Core.Scoring;

namespace Fed.Streaming.Tests;

/// <summary>
/// SIGTERM while events flow, against `fed stream` processes and the real broker: the worker stops consuming, drains
/// its work in flight, commits, and exits 0 within shutdown_timeout_ms; what it committed is exactly what it processed.
/// </summary>
public sealed class GracefulStopTests : IDisposable
{
    const int BoundMs = 5000;
    // From the signal to the exit status: `kill` itself and the runtime's exit, outside the worker's bound.
    const int ProcessSlackMs = 1000;
    readonly string _dir = Path.Combine(Path.GetTempPath(), "fed-stream-stop-" + Guid.NewGuid().ToString("N")[..8]);

    public void Dispose() { if (Environment.GetEnvironmentVariable("FED_TEST_KEEP") != "1") try { Directory.Delete(_dir, true); } catch (IOException) { } }

    string Write(string name, StreamConfigBase c) { var p = Path.Combine(_dir, name); File.WriteAllText(p, c.ToJson()); return p; }

    static void WaitForMetric(string metricsFile, string name, long atLeast, FedProcess p)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(60))
        {
            try
            {
                if (File.Exists(metricsFile) && JsonDocument.Parse(File.ReadAllText(metricsFile)).RootElement.GetProperty("fed_stream_metrics").GetProperty(name).GetInt64() >= atLeast) return;
            }
            catch (Exception e) when (e is JsonException or IOException) { }
            Thread.Sleep(50);
        }
        throw new TimeoutException($"{name} < {atLeast} after 60 s; log: {File.ReadAllText(p.LogFile)}");
    }

    static long StopAndTime(FedProcess p, out int exitCode)
    {
        var sw = Stopwatch.StartNew();
        exitCode = p.Terminate(TimeSpan.FromSeconds(30));
        return sw.ElapsedMilliseconds;
    }

    [Fact]
    public void A_party_stopped_by_SIGTERM_mid_stream_exits_0_within_the_bound_and_commits_exactly_what_it_processed()
    {
        var prefix = TestServices.UniquePrefix("stop-party");
        var models = BreastCancerModels.Create(_dir, "bc_stop_" + Guid.NewGuid().ToString("N")[..6]);
        string input = prefix + ".features.guest", partials = prefix + ".partials", dlq = prefix + ".dlq.guest";
        TestServices.CreateTopics(4, input, partials, dlq);
        var cfg = TestServices.PartyConfig("guest", models.GuestDb, input, partials, dlq, prefix + "-guest");
        cfg.ShutdownTimeoutMs = BoundMs;
        cfg.MetricsIntervalMs = 100;
        cfg.MetricsFile = Path.Combine(_dir, "guest-metrics.json");
        using var proc = FedProcess.Start(Path.Combine(_dir, "guest.log"), "stream", "party", "--config", Write("guest.json", cfg));

        ReplayOptions Replay(string eventPrefix, int limit, double rate) => new()
        {
            CsvPath = BreastCancerModels.GuestCsv, Topic = input, ModelIds = [models.ModelId], Kafka = TestServices.OldBrokerKafka(),
            EventPrefix = eventPrefix, Drop = ["y"], Rate = rate, Limit = limit,
        };
        // Warm up (start, group join, model load), then ~4 s of events; the stop comes while they flow.
        const int warmup = 5;
        FeatureReplay.Run(Replay("w-", warmup, 0), null, default);
        WaitForMetric(cfg.MetricsFile, "events_out", warmup, proc);
        var replay = new Thread(() => FeatureReplay.Run(Replay("g-", 0, 150), null, default));
        replay.Start();
        WaitForMetric(cfg.MetricsFile, "events_out", warmup + 50, proc);
        var ms = StopAndTime(proc, out var code);
        replay.Join();
        Assert.True(code == 0, $"exit {code}; log: {File.ReadAllText(proc.LogFile)}");
        Assert.True(ms <= BoundMs + ProcessSlackMs, $"stopped {ms} ms after SIGTERM; bound {BoundMs} ms");

        var events = TestServices.ReadRecords(input, 4);
        Assert.Equal(warmup + models.Guest.Count, events.Count);
        var outputs = TestServices.ReadRecords(partials, 4).Select(r => r.Key!).ToList();
        Assert.Equal(outputs.Count, outputs.Distinct().Count()); // no output twice
        var processed = outputs.ToHashSet();
        var committed = TestServices.Committed(cfg.GroupId, input, 4);
        for (var p = 0; p < 4; p++)
        {
            var inPartition = events.Where(e => e.Partition == p).ToList();
            var belowCommit = inPartition.Where(e => e.Offset < committed[p]).Select(e => e.Key!).Order().ToList();
            var done = inPartition.Select(e => e.Key!).Where(processed.Contains).Order().ToList();
            Assert.Equal(belowCommit, done);
        }
        var total = committed.Values.Sum();
        Assert.True(total > 0 && total < events.Count, $"committed {total} of {events.Count}: the stop did not come mid-stream");
        Assert.Contains("work in flight drained, offsets committed", File.ReadAllText(proc.LogFile));
    }

    [Fact]
    public void The_initiator_stopped_by_SIGTERM_mid_stream_exits_0_within_the_bound_and_commits_exactly_the_requests_it_wrote()
    {
        var prefix = TestServices.UniquePrefix("stop-init");
        var models = BreastCancerModels.Create(_dir, "bc_stopi_" + Guid.NewGuid().ToString("N")[..6]);
        var cfg = TestServices.InitiatorConfig(models.GuestDb, prefix, windowMs: 120_000); // no window closes during the test
        TestServices.CreateTopics(4, cfg.PartialsTopic, cfg.ScoresTopic, cfg.StatusTopic, cfg.DeadLetterTopic);
        cfg.ShutdownTimeoutMs = BoundMs;
        cfg.MetricsIntervalMs = 100;
        cfg.MetricsFile = Path.Combine(_dir, "initiator-metrics.json");
        using var proc = FedProcess.Start(Path.Combine(_dir, "initiator.log"), "stream", "initiator", "--config", Write("initiator.json", cfg));

        // Both parts of each request, keyed by request id (one partition), signed by their parties; ~3 s of requests.
        var ids = models.BothIds.ToList();
        var now = FeatureEvent.Now();
        const int warmup = 5; // requests sent first, to wait for the start, group join and registry read
        var sent = new ManualResetEventSlim();
        var producer = new Thread(() =>
        {
            using var p = new ProducerBuilder<string, byte[]>(new ProducerConfig(TestServices.OldBrokerKafka()) { LingerMs = 1 }).Build();
            var n = 0;
            foreach (var id in ids)
            {
                if (n == warmup) { p.Flush(TimeSpan.FromSeconds(10)); sent.Set(); WaitForMetric(cfg.MetricsFile, "events_out", warmup, proc); }
                foreach (var party in new[] { "guest", "host" })
                    p.Produce(cfg.PartialsTopic, new Message<string, byte[]>
                    {
                        Key = "i-" + id,
                        Value = new PartialScoreMessage { RequestId = "i-" + id, ModelId = models.ModelId, Version = 1, Party = party, SampleId = id,
                            Scores = [party == "guest" ? 0.25 : -0.5], EventTime = now }.ToSignedJson(TestServices.Key(party)),
                    });
                if (++n % 20 == 0) { p.Flush(TimeSpan.FromSeconds(10)); Thread.Sleep(120); }
            }
            p.Flush(TimeSpan.FromSeconds(10));
        });
        producer.Start();
        Assert.True(sent.Wait(TimeSpan.FromSeconds(30)));
        WaitForMetric(cfg.MetricsFile, "events_out", warmup + 30, proc);
        var ms = StopAndTime(proc, out var code);
        producer.Join();
        Assert.True(code == 0, $"exit {code}; log: {File.ReadAllText(proc.LogFile)}");
        Assert.True(ms <= BoundMs + ProcessSlackMs, $"stopped {ms} ms after SIGTERM; bound {BoundMs} ms");

        var parts = TestServices.ReadRecords(cfg.PartialsTopic, 4);
        Assert.Equal(2 * ids.Count, parts.Count);
        var committed = TestServices.Committed(cfg.GroupId, cfg.PartialsTopic, 4);
        using var redis = TestServices.ConnectRedis();
        var db = redis.GetDatabase();
        for (var p = 0; p < 4; p++)
        {
            var requests = parts.Where(r => r.Partition == p).GroupBy(r => r.Key!).ToList();
            // Committed: both parts below the committed offset. Processed: the prediction is in Redis.
            var belowCommit = requests.Where(g => g.All(r => r.Offset < committed[p])).Select(g => g.Key).Order().ToList();
            var written = requests.Where(g => db.KeyExists(PredictionKeys.Record(models.ModelId, 1, g.Key[2..]))).Select(g => g.Key).Order().ToList();
            Assert.Equal(belowCommit, written);
        }
        var total = committed.Values.Sum();
        Assert.True(total > 0 && total < parts.Count, $"committed {total} of {parts.Count}: the stop did not come mid-stream");
        Assert.Contains("work in flight drained, offsets committed", File.ReadAllText(proc.LogFile));
    }
}
