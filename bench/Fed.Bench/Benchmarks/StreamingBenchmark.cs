using System.Diagnostics;
using Confluent.Kafka;
using Fed.Core.Scoring;
using Fed.Streaming;
using Fed.Streaming.Tests;
using StackExchange.Redis;

namespace Fed.Bench.Benchmarks;

/// <summary>
/// Streaming (issue 5): sustained events/s through two parties and the initiator (in one process, three worker
/// threads) from feature events on Kafka to predictions in Redis, and end-to-end latency p50/p99 (event_time stamped
/// when the event is produced -> Redis write acknowledged) at a fixed offered rate. Baseline, same run: the broker's own
/// produce-then-consume throughput of messages of the same size. Real data: breast_cancer, cycled with unique event ids.
/// Needs the servers of scripts/test.sh (FED_TEST_KAFKA, FED_TEST_ZK, FED_TEST_KAFKA_LIBS, FED_TEST_REDIS).
/// For experiments, FED_BENCH_KAFKA="name=value;..." adds librdkafka properties to the three workers.
/// </summary>
public sealed class StreamingBenchmark : IBenchmark
{
    public string Name => "streaming";

    /// <summary>Partitions per topic.</summary>
    /// <summary>Partitions per topic: one per core. Each worker is one thread, and with 4 the broker spent ~40% more
    /// CPU per event at 20k/s on smaller per-partition message sets (p99 35 ms vs 25 ms, measured).</summary>
    const int Partitions = 2;

    public IReadOnlyList<BenchFigure> Run(BenchContext ctx)
    {
        var load0 = LoadAverage();
        var n = ctx.Quick ? 20_000 : 200_000;
        var rate = 20_000;
        var latencySeconds = ctx.Quick ? 3 : 25;
        var models = BreastCancerModels.Create(Path.Combine(ctx.WorkDirectory, "stream-models"), "bc_bench_" + Environment.ProcessId);
        var ids = models.BothIds.ToArray();
        var expected = models.Expected(1);
        var templates = new EventTemplates(models, ids);
        var servers = new Dictionary<string, int>();
        foreach (var (label, address) in new[] { ("kafka_broker", TestServices.Kafka), ("redis", TestServices.Redis) })
            if (CpuAccount.PidListening(int.Parse(address[(address.LastIndexOf(':') + 1)..], System.Globalization.CultureInfo.InvariantCulture)) is { } pid)
                servers[label] = pid;

        // Baseline: the broker alone, produce N messages of the feature-event size, consume them back (one consumer).
        var sample = Render(models, ids[0], "x", FeatureEvent.Now(), true);
        var basePrefix = TestServices.UniquePrefix("bench-base");
        TestServices.CreateTopics(Partitions, basePrefix);
        var baseline = BrokerThroughput(basePrefix, 2 * n, sample.Length);
        ctx.Log($"   broker produce+consume: {baseline:F0} msg/s ({sample.Length} B)");

        // 1. Throughput: N events offered as fast as possible (2N feature messages), time until the N-th prediction is in Redis.
        var (tput, tMetrics) = Pipeline(ctx, models, templates, ids, expected, n, offeredRate: 0, "tput", servers);
        ctx.Log($"   throughput: {tput.EventsPerSecond:F0} events/s; initiator latency under saturation p50 {tput.P50:F1} ms p99 {tput.P99:F1} ms");
        // 2. Latency at the goal rate.
        var (lat, lMetrics) = Pipeline(ctx, models, templates, ids, expected, rate * latencySeconds, offeredRate: rate, "lat", servers);
        ctx.Log($"   at {rate}/s offered: achieved {lat.EventsPerSecond:F0} events/s, p50 {lat.P50:F1} ms p99 {lat.P99:F1} ms");

        // 3. Latency below saturation: a rate this machine sustains (queueing does not dominate).
        const int lowRate = 2_000;
        var (low, lowMetrics) = Pipeline(ctx, models, templates, ids, expected, lowRate * (ctx.Quick ? 3 : 10), offeredRate: lowRate, "low", servers);
        ctx.Log($"   at {lowRate}/s offered: achieved {low.EventsPerSecond:F0} events/s, p50 {low.P50:F1} ms p99 {low.P99:F1} ms");

        var details = new Dictionary<string, object>
        {
            ["goal"] = ">= 20000 events/s with p99 <= 50 ms (event produced -> prediction in Redis)",
            ["setup"] = $"2-core machine; Kafka 0.9.0.1 (1 broker, {Partitions} partitions per topic, Java 17), Redis 7.0.15, " +
                        "guest + host party workers and the initiator as 3 threads of one .NET process; paced event producer (pre-rendered events) in the same process; " +
                        "worker client settings: the defaults of Fed.Streaming plus the 0.9-broker settings of the tests" +
                        (Environment.GetEnvironmentVariable("FED_BENCH_KAFKA") is { Length: > 0 } extra ? $" plus FED_BENCH_KAFKA={extra}" : ""),
            ["load_average_1m_start_end"] = $"{load0} / {LoadAverage()}",
            ["where_the_time_goes"] = WhereTheTimeGoes(lMetrics, rate),
            ["stages"] = "stage_ms (wall ms per worker loop stage, cumulative): party consume = waiting for and reading a batch, score = parse + PartialScorer + produce calls, " +
                         "wait_delivery = blocked because 8 batches were unacknowledged; initiator join_combine = parse + join + Combiner + record JSON, redis = pipelined SETs " +
                         "until acknowledged, produce = final-score produce calls. 'cpu' = CPU seconds per thread group (/proc), the broker and Redis processes, and the machine.",
            ["event_bytes"] = sample.Length,
            ["baseline_msgs_per_s"] = Math.Round(baseline),
            ["baseline_note"] = "each event is 2 feature messages in + 2 partial-score messages + 1 final-score message through the broker, plus 1 Redis SET",
            ["throughput_run"] = tMetrics,
            ["latency_run"] = lMetrics,
            ["low_rate_run"] = lowMetrics,
        };
        return
        [
            new BenchFigure("streaming end to end, 2 parties + initiator", "throughput", "events/s", Math.Round(tput.EventsPerSecond),
                "broker produce+consume (msgs/s, same size)", Math.Round(baseline), n) { Details = details },
            new BenchFigure($"streaming latency p50 at {rate} events/s offered", "latency_p50", "ms", Math.Round(lat.P50, 2),
                "goal p99", 50, lat.Events) { Details = new() { ["achieved_events_per_s"] = Math.Round(lat.EventsPerSecond), ["max_ms"] = Math.Round(lat.Max, 1) } },
            new BenchFigure($"streaming latency p99 at {rate} events/s offered", "latency_p99", "ms", Math.Round(lat.P99, 2),
                "goal p99", 50, lat.Events) { Details = new() { ["achieved_events_per_s"] = Math.Round(lat.EventsPerSecond) } },
            new BenchFigure($"streaming latency p50 at {lowRate} events/s offered", "latency_p50", "ms", Math.Round(low.P50, 2),
                "goal p99", 50, low.Events) { Details = new() { ["achieved_events_per_s"] = Math.Round(low.EventsPerSecond), ["max_ms"] = Math.Round(low.Max, 1) } },
            new BenchFigure($"streaming latency p99 at {lowRate} events/s offered", "latency_p99", "ms", Math.Round(low.P99, 2),
                "goal p99", 50, low.Events) { Details = new() { ["achieved_events_per_s"] = Math.Round(low.EventsPerSecond) } },
        ];
    }

    /// <summary>One sentence from the CPU account of the run at the goal rate.</summary>
    static string WhereTheTimeGoes(Dictionary<string, object> run, int rate)
    {
        var cpu = (Dictionary<string, object>)run["cpu"];
        var threads = (Dictionary<string, object>)cpu["bench_process_by_thread_cpu_s"];
        double T(string k) => threads.TryGetValue(k, out var v) ? (double)v : 0;
        double C(string k) => cpu.TryGetValue(k, out var v) ? (double)v : 0;
        var wall = C("wall_s");
        string Cores(double s) => (s / wall).ToString("F2", System.Globalization.CultureInfo.InvariantCulture);
        return $"at {rate} events/s the machine is busy {Cores(C("machine_busy_cpu_s"))} of 2 cores: Kafka broker {Cores(C("kafka_broker_cpu_s"))}, " +
               $"librdkafka threads of all clients {Cores(T("librdkafka (all clients)"))}, initiator thread {Cores(T("fed-initiator"))}, " +
               $"party threads {Cores(T("fed-guest") + T("fed-host"))}, .NET runtime + client callback threads {Cores(T(".NET runtime + other"))}, " +
               $"load generator {Cores(T("fed-loadgen"))}, Redis {Cores(C("redis_cpu_s"))} (cores = CPU seconds / wall seconds). " +
               "Latency: 2 broker hops (load generator -> party -> initiator), each linger.ms (1) + a fetch + up to batch_wait_ms (2); then pipelined Redis SETs; " +
               "the tail is CPU contention on the 2 cores, mostly by the broker.";
    }

    static string LoadAverage()
    {
        try { return File.ReadAllText("/proc/loadavg").Split(' ')[0]; } catch (IOException) { return "?"; }
    }

    sealed record RunResult(long Events, double EventsPerSecond, double P50, double P99, double Max);

    /// <summary>
    /// Feature events as the schema writes them (<see cref="FeatureEvent.ToJson"/>), pre-rendered per sample and party
    /// around the two per-event fields, so the load generator in this process costs little CPU.
    /// </summary>
    sealed class EventTemplates
    {
        const string IdMark = "@@event_id@@", TimeMark = "@@event_time@@";
        readonly Dictionary<string, (byte[] Head, byte[] Middle, byte[] Tail)> _guest = new(), _host = new();

        public EventTemplates(BreastCancerModels m, IEnumerable<string> ids)
        {
            foreach (var id in ids)
            {
                _guest[id] = Split(Render(m, id, IdMark, TimeMark, guest: true));
                _host[id] = Split(Render(m, id, IdMark, TimeMark, guest: false));
            }
        }

        public byte[] Event(string id, string eventId, string eventTime, bool guest)
        {
            var (head, middle, tail) = (guest ? _guest : _host)[id];
            var b = new byte[head.Length + eventId.Length + middle.Length + eventTime.Length + tail.Length];
            head.CopyTo(b, 0);
            var n = head.Length + System.Text.Encoding.ASCII.GetBytes(eventId, b.AsSpan(head.Length));
            middle.CopyTo(b, n);
            n += middle.Length + System.Text.Encoding.ASCII.GetBytes(eventTime, b.AsSpan(n + middle.Length));
            tail.CopyTo(b, n);
            return b;
        }

        static (byte[], byte[], byte[]) Split(byte[] json)
        {
            var id = json.AsSpan().IndexOf(System.Text.Encoding.ASCII.GetBytes(IdMark));
            var t = json.AsSpan().IndexOf(System.Text.Encoding.ASCII.GetBytes(TimeMark));
            if (id < 0 || t < id) throw new InvalidOperationException("event template markers not found");
            return (json[..id], json[(id + IdMark.Length)..t], json[(t + TimeMark.Length)..]);
        }
    }

    static byte[] Render(BreastCancerModels m, string id, string eventId, string eventTime, bool guest)
    {
        var names = guest ? m.GuestFeatures : m.HostFeatures;
        var values = guest ? m.Guest[id] : m.Host[id];
        var f = new Dictionary<string, double>(names.Length);
        for (var i = 0; i < names.Length; i++) f[names[i]] = values[i];
        return new FeatureEvent { EventId = eventId, SampleId = id, ModelIds = [m.ModelId], Features = f, EventTime = eventTime }.ToJson();
    }

    static (RunResult, Dictionary<string, object>) Pipeline(BenchContext ctx, BreastCancerModels models, EventTemplates templates, string[] ids,
        Dictionary<string, Prediction> expected, int events, int offeredRate, string tag, IReadOnlyDictionary<string, int> servers)
    {
        var prefix = TestServices.UniquePrefix("bench-" + tag);
        string gt = prefix + ".features.guest", ht = prefix + ".features.host";
        var icfg = TestServices.InitiatorConfig(models.GuestDb, prefix, windowMs: 10_000);
        icfg.MetricsIntervalMs = 0;
        TestServices.CreateTopics(Partitions, gt, ht, icfg.PartialsTopic, icfg.ScoresTopic, icfg.StatusTopic, icfg.DeadLetterTopic);
        var gcfg = TestServices.PartyConfig("guest", models.GuestDb, gt, icfg.PartialsTopic, icfg.DeadLetterTopic, prefix + "-guest");
        var hcfg = TestServices.PartyConfig("host", models.HostDb, ht, icfg.PartialsTopic, icfg.DeadLetterTopic, prefix + "-host");
        gcfg.MetricsIntervalMs = hcfg.MetricsIntervalMs = 0;
        foreach (var c in new StreamConfigBase[] { icfg, gcfg, hcfg })
            foreach (var kv in (Environment.GetEnvironmentVariable("FED_BENCH_KAFKA") ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries))
                c.Kafka[kv[..kv.IndexOf('=')]] = kv[(kv.IndexOf('=') + 1)..];
        using var cts = new CancellationTokenSource();
        var log = TextWriter.Null;
        var initiator = new InitiatorWorker(icfg, log);
        var guest = new PartyWorker(gcfg, log);
        var host = new PartyWorker(hcfg, log);
        // Named threads: CpuAccount reports CPU per name (Linux shows Thread.Name as the thread's comm).
        var threads = new[]
        {
            new Thread(() => initiator.Run(cts.Token)) { Name = "fed-initiator" },
            new Thread(() => guest.Run(cts.Token)) { Name = "fed-guest" },
            new Thread(() => host.Run(cts.Token)) { Name = "fed-host" },
        };
        foreach (var t in threads) t.Start();
        try
        {
            // Warm up: a few events through the whole pipeline (group joins, model loads, JIT), not counted.
            Produce(templates, ids, gt, ht, "w-", 200, 0);
            var sw0 = Stopwatch.StartNew();
            while (Interlocked.Read(ref initiator.Metrics.EventsOut) < 200 && sw0.Elapsed < TimeSpan.FromSeconds(60)) Thread.Sleep(20);
            initiator.Metrics.Latency.Reset();
            var before = Interlocked.Read(ref initiator.Metrics.EventsOut);
            var cpu0 = CpuAccount.Take(servers);

            var sw = Stopwatch.StartNew();
            var producer = new Thread(() => Produce(templates, ids, gt, ht, tag + "-", events, offeredRate)) { Name = "fed-loadgen" };
            producer.Start();
            while (Interlocked.Read(ref initiator.Metrics.EventsOut) - before < events && sw.Elapsed < TimeSpan.FromMinutes(3)) Thread.Sleep(2);
            var seconds = sw.Elapsed.TotalSeconds;
            var cpu = CpuAccount.Since(cpu0, seconds, servers);
            producer.Join();
            var done = Interlocked.Read(ref initiator.Metrics.EventsOut) - before;

            // Spot check: predictions in Redis are the direct scorer+combiner's, to the bit.
            using var redis = TestServices.ConnectRedis();
            var db = redis.GetDatabase();
            foreach (var id in ids.Take(50))
            {
                var rec = PredictionRecord.Parse(db.StringGet(PredictionKeys.Record(models.ModelId, 1, id))!, "");
                if (BitConverter.DoubleToInt64Bits(rec.PredictValue) != BitConverter.DoubleToInt64Bits(expected[id].Value))
                    throw new InvalidOperationException($"benchmark prediction for {id} differs from direct scoring");
            }
            var h = initiator.Metrics.Latency;
            var result = new RunResult(done, done / seconds, h.Percentile(50), h.Percentile(99), h.Max);
            var metrics = new Dictionary<string, object>
            {
                ["events"] = done, ["seconds"] = Math.Round(seconds, 2), ["offered_rate"] = offeredRate == 0 ? "max" : offeredRate,
                ["cpu"] = cpu,
                ["initiator"] = initiator.Metrics.Snapshot(), ["guest"] = guest.Metrics.Snapshot(), ["host"] = host.Metrics.Snapshot(),
            };
            return (result, metrics);
        }
        finally
        {
            cts.Cancel();
            foreach (var t in threads) t.Join();
            initiator.Dispose(); guest.Dispose(); host.Dispose();
        }
    }

    /// <summary>The same event (same event id and event time) to both parties' topics; event_time stamped at produce time.
    /// Paced: at most 64 events ahead of the offered rate's schedule.</summary>
    static void Produce(EventTemplates templates, string[] ids, string gt, string ht, string prefix, int events, int rate)
    {
        KafkaNative.Ensure();
        var cfg = new ProducerConfig(TestServices.OldBrokerKafka()) { LingerMs = 1 };
        cfg.Set("dotnet.producer.enable.delivery.reports", "false");
        using var p = new ProducerBuilder<string, byte[]>(cfg).Build();
        var sw = Stopwatch.StartNew();
        for (var i = 0; i < events; i++)
        {
            if (rate > 0 && (i & 63) == 0)
            {
                var wait = i * 1000.0 / rate - sw.Elapsed.TotalMilliseconds;
                if (wait > 1) Thread.Sleep((int)wait);
            }
            var id = ids[i % ids.Length];
            var eid = prefix + i;
            var now = FeatureEvent.Now();
            Send(p, gt, eid, templates.Event(id, eid, now, guest: true));
            Send(p, ht, eid, templates.Event(id, eid, now, guest: false));
        }
        p.Flush(TimeSpan.FromSeconds(60));
    }

    static void Send(IProducer<string, byte[]> p, string topic, string key, byte[] value)
    {
        while (true)
        {
            try { p.Produce(topic, new Message<string, byte[]> { Key = key, Value = value }); return; }
            catch (ProduceException<string, byte[]> e) when (e.Error.Code == ErrorCode.Local_QueueFull) { p.Poll(TimeSpan.FromMilliseconds(5)); }
        }
    }

    static double BrokerThroughput(string topic, int messages, int size)
    {
        KafkaNative.Ensure();
        var payload = new byte[size];
        Array.Fill(payload, (byte)'x');
        var sw = Stopwatch.StartNew();
        using (var p = new ProducerBuilder<string, byte[]>(new ProducerConfig(TestServices.OldBrokerKafka()) { LingerMs = 1 }).Build())
        {
            for (var i = 0; i < messages; i++) Send(p, topic, "k" + i, payload);
            p.Flush(TimeSpan.FromSeconds(60));
        }
        var cfg = new ConsumerConfig(TestServices.OldBrokerKafka()) { GroupId = "bench-" + Guid.NewGuid().ToString("N"), EnableAutoCommit = false };
        using var c = new ConsumerBuilder<string, byte[]>(cfg).Build();
        c.Assign(Enumerable.Range(0, Partitions).Select(i => new TopicPartitionOffset(topic, i, Offset.Beginning)));
        var got = 0;
        while (got < messages && sw.Elapsed < TimeSpan.FromMinutes(3)) if (c.Consume(100) != null) got++;
        var s = sw.Elapsed.TotalSeconds;
        c.Close();
        return got / s;
    }
}
