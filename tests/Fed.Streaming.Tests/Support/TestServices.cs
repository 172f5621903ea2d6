using System.Diagnostics;
using Confluent.Kafka;
using Fed.Streaming;
using StackExchange.Redis;

namespace Fed.Streaming.Tests;

/// <summary>
/// The real Kafka broker (0.9.0.1) and Redis started by scripts/test.sh, found through FED_TEST_* variables.
/// A missing variable fails the test (never skips). The old-broker client settings live here, in test configuration only.
/// Shared with bench/Fed.Bench (linked source).
/// </summary>
public static class TestServices
{
    public static string Require(string name) =>
        Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v
            : throw new InvalidOperationException($"{name} is not set: run the tests through scripts/test.sh, which starts Kafka and Redis on free ports and exports FED_TEST_KAFKA, FED_TEST_ZK, FED_TEST_KAFKA_LIBS and FED_TEST_REDIS");

    public static string Kafka => Require("FED_TEST_KAFKA");
    public static string ZooKeeper => Require("FED_TEST_ZK");
    public static string KafkaLibs => Require("FED_TEST_KAFKA_LIBS");
    public static string Redis => Require("FED_TEST_REDIS");

    /// <summary>librdkafka settings for the Kafka 0.9 test broker (a production config targets a modern broker).</summary>
    public static Dictionary<string, string> OldBrokerKafka() => new()
    {
        ["bootstrap.servers"] = Kafka,
        ["api.version.request"] = "false",
        ["broker.version.fallback"] = "0.9.0",
        ["topic.metadata.refresh.interval.ms"] = "2000",
    };

    /// <summary>Consumer-only settings: the 0.9 broker accepts session timeouts of 6-30 s; 6 s makes a killed member leave fast.</summary>
    public static Dictionary<string, string> OldBrokerConsumer() => new()
    {
        ["session.timeout.ms"] = "6000",
        ["heartbeat.interval.ms"] = "1000",
    };

    static int _seq;

    /// <summary>A run-unique topic prefix so tests never see each other's messages.</summary>
    public static string UniquePrefix(string name) =>
        $"t{Environment.ProcessId}-{DateTime.UtcNow:HHmmss}-{Interlocked.Increment(ref _seq)}-{name}";

    /// <summary>Creates topics through ZooKeeper with the broker's own TopicCommand (AdminClient cannot on 0.9).</summary>
    public static void CreateTopics(int partitions, params string[] topics)
    {
        var procs = topics.Select(t =>
        {
            var psi = new ProcessStartInfo("java") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { "-Xmx128m", "-XX:TieredStopAtLevel=1", "-Xshare:auto", "-cp", Path.Combine(KafkaLibs, "*"), "kafka.admin.TopicCommand",
                         "--zookeeper", ZooKeeper, "--create", "--topic", t, "--partitions", partitions.ToString(), "--replication-factor", "1" })
                psi.ArgumentList.Add(a);
            return (t, Process.Start(psi)!);
        }).ToList();
        foreach (var (t, p) in procs)
        {
            var err = p.StandardError.ReadToEndAsync();
            var output = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            if (p.ExitCode != 0 || !output.Contains("Created topic"))
                throw new InvalidOperationException($"cannot create topic {t}: {output} {err.Result}");
        }
        // Wait until the broker has leaders for every partition.
        KafkaNative.Ensure();
        using var admin = new AdminClientBuilder(new AdminClientConfig(OldBrokerKafka())).Build();
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var md = admin.GetMetadata(TimeSpan.FromSeconds(5));
            if (topics.All(t => md.Topics.Any(x => x.Topic == t && x.Error.Code == ErrorCode.NoError && x.Partitions.Count == partitions && x.Partitions.All(p => p.Leader >= 0))))
                return;
            if (sw.Elapsed > TimeSpan.FromSeconds(30)) throw new TimeoutException($"topics {string.Join(", ", topics)} have no leaders after 30 s");
            Thread.Sleep(100);
        }
    }

    /// <summary>Reads a topic from the beginning of every partition until <paramref name="until"/> holds or the timeout.</summary>
    public static List<(string? Key, string Value)> ReadTopic(string topic, int partitions, Func<List<(string? Key, string Value)>, bool> until, TimeSpan timeout)
    {
        KafkaNative.Ensure();
        var cfg = new ConsumerConfig(OldBrokerKafka()) { GroupId = "reader-" + Guid.NewGuid().ToString("N"), EnableAutoCommit = false };
        using var c = new ConsumerBuilder<string?, string>(cfg).Build();
        c.Assign(Enumerable.Range(0, partitions).Select(p => new TopicPartitionOffset(topic, p, Offset.Beginning)));
        var list = new List<(string?, string)>();
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            var r = c.Consume(100);
            if (r != null) { list.Add((r.Message.Key, r.Message.Value)); continue; }
            if (until(list)) break;
        }
        c.Close();
        return list;
    }

    /// <summary>
    /// Reads every partition of a topic from its beginning up to its end offset (high watermark) taken when the call
    /// starts, and proves it got there: a partition counts as read only when its last message before the end offset
    /// was consumed. Throws if that does not happen within the timeout. "Nothing" read here means the topic was empty.
    /// </summary>
    public static List<(string? Key, string Value)> ReadToEnd(string topic, int partitions, TimeSpan? timeout = null) =>
        ReadRecords(topic, partitions, timeout).Select(r => (r.Key, r.Value)).ToList();

    /// <summary><see cref="ReadToEnd"/> with each message's partition and offset.</summary>
    public static List<(int Partition, long Offset, string? Key, string Value)> ReadRecords(string topic, int partitions, TimeSpan? timeout = null)
    {
        KafkaNative.Ensure();
        var cfg = new ConsumerConfig(OldBrokerKafka()) { GroupId = "reader-" + Guid.NewGuid().ToString("N"), EnableAutoCommit = false };
        using var c = new ConsumerBuilder<string?, string>(cfg).Build();
        var ends = new Dictionary<int, long>();
        for (var p = 0; p < partitions; p++)
        {
            var w = c.QueryWatermarkOffsets(new TopicPartition(topic, p), TimeSpan.FromSeconds(10));
            if (w.High.Value > w.Low.Value) ends[p] = w.High.Value;
        }
        var list = new List<(int, long, string?, string)>();
        if (ends.Count == 0) { c.Close(); return list; }
        c.Assign(ends.Keys.Select(p => new TopicPartitionOffset(topic, p, Offset.Beginning)));
        var limit = timeout ?? TimeSpan.FromSeconds(30);
        var sw = Stopwatch.StartNew();
        while (ends.Count > 0)
        {
            if (sw.Elapsed > limit)
                throw new TimeoutException($"{topic}: partitions {string.Join(", ", ends.Keys)} not read to their end offsets ({string.Join(", ", ends.Values)}) within {limit.TotalSeconds} s");
            var r = c.Consume(100);
            if (r is null || !ends.TryGetValue(r.Partition.Value, out var end) || r.Offset.Value >= end) continue;
            list.Add((r.Partition.Value, r.Offset.Value, r.Message.Key, r.Message.Value));
            if (r.Offset.Value + 1 >= end) ends.Remove(r.Partition.Value);
        }
        c.Close();
        return list;
    }

    /// <summary>The offsets a consumer group has committed on a topic, by partition (0 where none).</summary>
    public static Dictionary<int, long> Committed(string group, string topic, int partitions)
    {
        KafkaNative.Ensure();
        var cfg = new ConsumerConfig(OldBrokerKafka()) { GroupId = group, EnableAutoCommit = false };
        using var c = new ConsumerBuilder<Ignore, Ignore>(cfg).Build();
        var got = c.Committed(Enumerable.Range(0, partitions).Select(p => new TopicPartition(topic, p)), TimeSpan.FromSeconds(10));
        c.Close();
        return got.ToDictionary(t => t.Partition.Value, t => t.Offset == Offset.Unset ? 0 : t.Offset.Value);
    }

    public static ConnectionMultiplexer ConnectRedis() => ConnectionMultiplexer.Connect(Redis + ",abortConnect=false");

    public static PartyConfig PartyConfig(string party, string warehouse, string inputTopic, string partials, string dlq, string group) => new()
    {
        Party = party, Warehouse = "sqlite:" + warehouse, InputTopic = inputTopic, PartialsTopic = partials, DeadLetterTopic = dlq,
        GroupId = group, Kafka = OldBrokerKafka(), Consumer = OldBrokerConsumer(), RegistryPollMs = 200, MetricsIntervalMs = 2000,
        SigningKey = "file:" + KeyFile(party),
    };

    public static InitiatorConfig InitiatorConfig(string warehouse, string prefix, int windowMs) => new()
    {
        Warehouse = "sqlite:" + warehouse, PartialsTopic = prefix + ".partials", ScoresTopic = prefix + ".scores",
        StatusTopic = prefix + ".status", DeadLetterTopic = prefix + ".dlq", GroupId = prefix + "-initiator",
        Kafka = OldBrokerKafka(), Consumer = OldBrokerConsumer(), Redis = Redis, WindowMs = windowMs, PredictionTtlSeconds = 3600, MetricsIntervalMs = 2000,
        PartyKeys = new() { ["guest"] = "file:" + KeyFile("guest"), ["host"] = "file:" + KeyFile("host") },
    };

    static readonly object KeyLock = new();

    /// <summary>This test run's HMAC key file of a party (random, mode 0600), created on first use.</summary>
    public static string KeyFile(string party)
    {
        if (!OperatingSystem.IsLinux()) throw new PlatformNotSupportedException("Fed's tests run on Linux (Debian 12)");
        var dir = Path.Combine(Path.GetTempPath(), $"fed-test-keys-{Environment.ProcessId}");
        var path = Path.Combine(dir, party + ".key");
        lock (KeyLock)
        {
            if (File.Exists(path)) return path;
            Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            using var f = new FileStream(path, new FileStreamOptions
            {
                Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            });
            f.Write(System.Text.Encoding.ASCII.GetBytes(Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32))));
            return path;
        }
    }

    /// <summary>A party's key as the workers read it.</summary>
    public static byte[] Key(string party) => StreamSecrets.LoadKey("file:" + KeyFile(party), party);
}
