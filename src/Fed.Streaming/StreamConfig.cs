using System.Text.Json;
using System.Text.Json.Serialization;
using Confluent.Kafka;
using Fed.Core;

namespace Fed.Streaming;

/// <summary>
/// Settings shared by the party and the initiator. Kafka client settings are librdkafka properties
/// ("Confluent-style": the same names as <see cref="ClientConfig"/>), given as strings:
/// <c>kafka</c> applies to both the consumer and the producer, <c>consumer</c>/<c>producer</c> to one of them.
/// Defaults target a modern broker; an old (0.9/0.10) broker needs <c>api.version.request=false</c>,
/// <c>broker.version.fallback=0.9.0</c> and <c>session.timeout.ms</c> &lt;= 30000 in <c>kafka</c>.
/// </summary>
public abstract class StreamConfigBase
{
    /// <summary>librdkafka properties for both clients; must contain bootstrap.servers.</summary>
    [JsonPropertyName("kafka")] public Dictionary<string, string> Kafka { get; set; } = new();
    /// <summary>librdkafka properties for the consumer only.</summary>
    [JsonPropertyName("consumer")] public Dictionary<string, string> Consumer { get; set; } = new();
    /// <summary>librdkafka properties for the producer only.</summary>
    [JsonPropertyName("producer")] public Dictionary<string, string> Producer { get; set; } = new();
    /// <summary>Consumer group id (group.id). Offsets are committed under it.</summary>
    [JsonPropertyName("group_id")] public string GroupId { get; set; } = "";
    /// <summary>Warehouse spec (sqlite:PATH or odbc:...), read for the model registry.</summary>
    [JsonPropertyName("warehouse")] public string? Warehouse { get; set; }
    /// <summary>Topic that receives the reason and source (topic, partition, offset) of messages which cannot be
    /// processed, never their payload. Default: one per party, <c>fed.deadletter.&lt;party&gt;</c> (the initiator's:
    /// <c>fed.deadletter.initiator</c>), so each party's dead letters stay under its own topic permissions.</summary>
    [JsonPropertyName("dead_letter_topic")] public string DeadLetterTopic { get; set; } = "";
    /// <summary>Most messages handled per loop iteration (one produce flush and one offset store per batch).</summary>
    [JsonPropertyName("batch_size")] public int BatchSize { get; set; } = 2000;
    /// <summary>How long one iteration waits to fill a batch, ms.</summary>
    [JsonPropertyName("batch_wait_ms")] public int BatchWaitMs { get; set; } = 2;
    /// <summary>Metrics line period on stderr, ms (0 = only at shutdown).</summary>
    [JsonPropertyName("metrics_interval_ms")] public int MetricsIntervalMs { get; set; } = 5000;
    /// <summary>Optional file rewritten (atomically) with the latest metrics JSON at every metrics period.</summary>
    [JsonPropertyName("metrics_file")] public string? MetricsFile { get; set; }
    /// <summary>How long a produce flush may take before the batch is retried, ms.</summary>
    [JsonPropertyName("produce_timeout_ms")] public int ProduceTimeoutMs { get; set; } = 30000;
    /// <summary>On SIGTERM/SIGINT, the most time the worker takes to stop consuming, drain the work in flight, commit
    /// its offsets and leave the group, ms. Whatever is not delivered by then is not committed, and is replayed.</summary>
    [JsonPropertyName("shutdown_timeout_ms")] public int ShutdownTimeoutMs { get; set; } = 10000;

    public ConsumerConfig BuildConsumerConfig()
    {
        var d = new Dictionary<string, string>(Kafka);
        foreach (var (k, v) in Consumer) d[k] = v;
        d.TryAdd("auto.offset.reset", "earliest");
        // At-least-once: offsets are stored by the worker only after the batch's outputs were delivered
        // (and, on the initiator, written to Redis); librdkafka commits stored offsets periodically and on close.
        d["enable.auto.offset.store"] = "false";
        d.TryAdd("enable.auto.commit", "true");
        d.TryAdd("auto.commit.interval.ms", "500");
        // The workers read only topic, partition, offset, key and value: skip marshalling timestamps and headers.
        d.TryAdd("dotnet.consumer.consume.result.fields", "topic");
        d["group.id"] = GroupId;
        return new ConsumerConfig(d);
    }

    public ProducerConfig BuildProducerConfig()
    {
        var d = new Dictionary<string, string>(Kafka);
        foreach (var (k, v) in Producer) d[k] = v;
        d.TryAdd("linger.ms", "1");
        d.TryAdd("acks", "all");
        // Delivery reports are read for their error only.
        d.TryAdd("dotnet.producer.delivery.report.fields", "none");
        return new ProducerConfig(d);
    }

    protected virtual void Validate(string source)
    {
        if (!Kafka.TryGetValue("bootstrap.servers", out var bs) || string.IsNullOrWhiteSpace(bs))
            throw new BadInputException($"{source}: kafka.bootstrap.servers is required (e.g. \"kafka\": {{\"bootstrap.servers\": \"127.0.0.1:9092\"}})");
        if (string.IsNullOrWhiteSpace(GroupId)) throw new BadInputException($"{source}: group_id is required");
        if (DeadLetterTopic.Length == 0) DeadLetterTopic = DefaultDeadLetterTopic;
        CheckTopic(source, "dead_letter_topic", DeadLetterTopic);
        if (BatchSize < 1 || BatchSize > 100_000) throw new BadInputException($"{source}: batch_size must be 1..100000, got {BatchSize}");
        if (BatchWaitMs < 0 || BatchWaitMs > 10_000) throw new BadInputException($"{source}: batch_wait_ms must be 0..10000, got {BatchWaitMs}");
        if (MetricsIntervalMs < 0) throw new BadInputException($"{source}: metrics_interval_ms must be >= 0");
        if (ProduceTimeoutMs < 100) throw new BadInputException($"{source}: produce_timeout_ms must be >= 100");
        if (ShutdownTimeoutMs < 500 || ShutdownTimeoutMs > 600_000) throw new BadInputException($"{source}: shutdown_timeout_ms must be 500..600000, got {ShutdownTimeoutMs}");
    }

    /// <summary>The dead-letter topic when none is configured.</summary>
    protected abstract string DefaultDeadLetterTopic { get; }

    protected static void CheckTopic(string source, string field, string topic)
    {
        if (string.IsNullOrEmpty(topic) || topic.Length > 200 || topic.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-')))
            throw new BadInputException($"{source}: {field} '{topic}' is not a valid topic name ([A-Za-z0-9._-], 1-200 characters)");
    }

    static readonly JsonSerializerOptions Json = new()
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    protected static T LoadFile<T>(string path) where T : StreamConfigBase
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"{path}: cannot read config: {e.Message}", e);
        }
        T cfg;
        try { cfg = JsonSerializer.Deserialize<T>(text, Json) ?? throw new BadInputException($"{path}: config is null"); }
        catch (JsonException e) { throw new BadInputException($"{path}: bad config: {e.Message}", e); }
        cfg.Validate(path);
        return cfg;
    }

    public string ToJson() => JsonSerializer.Serialize(this, GetType(), new JsonSerializerOptions { WriteIndented = true });
}

/// <summary>Config of <c>fed stream party</c>: consume feature events, produce partial scores.</summary>
public sealed class PartyConfig : StreamConfigBase
{
    /// <summary>This party's id (as in the model's parties list).</summary>
    [JsonPropertyName("party")] public string Party { get; set; } = "";
    /// <summary>Topic of this party's feature events.</summary>
    [JsonPropertyName("input_topic")] public string InputTopic { get; set; } = "";
    /// <summary>The initiator's topic of partial scores.</summary>
    [JsonPropertyName("partials_topic")] public string PartialsTopic { get; set; } = "fed.partials";
    /// <summary>How often the registry is polled for a newly activated version, ms.</summary>
    [JsonPropertyName("registry_poll_ms")] public int RegistryPollMs { get; set; } = 1000;
    /// <summary>Where this party's HMAC key is: <c>file:PATH</c> (mode 0600) or <c>env:NAME</c>; the initiator holds
    /// the same key under this party's name (<see cref="InitiatorConfig.PartyKeys"/>). Required.</summary>
    [JsonPropertyName("signing_key")] public string SigningKey { get; set; } = "";

    /// <summary>The key <see cref="SigningKey"/> names, read when the config is validated.</summary>
    [JsonIgnore] public byte[] Key { get; private set; } = [];

    public static PartyConfig Load(string path) => LoadFile<PartyConfig>(path);

    protected override string DefaultDeadLetterTopic => "fed.deadletter." + Party;

    public void Check(string source = "party config") => Validate(source);

    protected override void Validate(string source)
    {
        base.Validate(source);
        Identifiers.PartyId(Party);
        CheckTopic(source, "input_topic", InputTopic);
        CheckTopic(source, "partials_topic", PartialsTopic);
        if (RegistryPollMs < 10) throw new BadInputException($"{source}: registry_poll_ms must be >= 10");
        if (SigningKey.Length == 0)
            throw new BadInputException($"{source}: signing_key is required (\"file:PATH\" or \"env:NAME\"): the initiator accepts only partial scores signed with this party's key");
        Key = StreamSecrets.LoadKey(SigningKey, $"{source}: signing_key");
    }
}

/// <summary>Config of <c>fed stream initiator</c>: join partial scores, combine, write predictions to Redis.</summary>
public sealed class InitiatorConfig : StreamConfigBase
{
    [JsonPropertyName("partials_topic")] public string PartialsTopic { get; set; } = "fed.partials";
    /// <summary>Topic of final-score events.</summary>
    [JsonPropertyName("scores_topic")] public string ScoresTopic { get; set; } = "fed.scores";
    /// <summary>Topic of status events (incomplete requests).</summary>
    [JsonPropertyName("status_topic")] public string StatusTopic { get; set; } = "fed.status";
    /// <summary>StackExchange.Redis configuration string, e.g. "127.0.0.1:6379,password=...".</summary>
    [JsonPropertyName("redis")] public string Redis { get; set; } = "";
    /// <summary>TTL of prediction and incomplete records in Redis, seconds (0 = no expiry).</summary>
    [JsonPropertyName("prediction_ttl_seconds")] public int PredictionTtlSeconds { get; set; } = 86400;
    /// <summary>How long a request waits for all parties after its first partial score arrived, ms.</summary>
    [JsonPropertyName("window_ms")] public int WindowMs { get; set; } = 5000;
    /// <summary>Most requests waiting in the join window; above it, consumption pauses (backpressure).</summary>
    [JsonPropertyName("max_open_joins")] public int MaxOpenJoins { get; set; } = 200_000;
    /// <summary>First and largest backoff between Redis retries, ms.</summary>
    [JsonPropertyName("redis_retry_initial_ms")] public int RedisRetryInitialMs { get; set; } = 50;
    [JsonPropertyName("redis_retry_max_ms")] public int RedisRetryMaxMs { get; set; } = 5000;
    /// <summary>Each party's HMAC key, by party id: <c>file:PATH</c> (mode 0600) or <c>env:NAME</c>. A partial score
    /// is combined only if it carries a valid HMAC under the key of the party it names. Required.</summary>
    [JsonPropertyName("party_keys")] public Dictionary<string, string> PartyKeys { get; set; } = new();

    /// <summary>The keys <see cref="PartyKeys"/> names, read when the config is validated.</summary>
    [JsonIgnore] public IReadOnlyDictionary<string, byte[]> Keys { get; private set; } = new Dictionary<string, byte[]>();

    public static InitiatorConfig Load(string path) => LoadFile<InitiatorConfig>(path);

    protected override string DefaultDeadLetterTopic => "fed.deadletter.initiator";

    public void Check(string source = "initiator config") => Validate(source);

    protected override void Validate(string source)
    {
        base.Validate(source);
        CheckTopic(source, "partials_topic", PartialsTopic);
        CheckTopic(source, "scores_topic", ScoresTopic);
        CheckTopic(source, "status_topic", StatusTopic);
        if (string.IsNullOrWhiteSpace(Redis)) throw new BadInputException($"{source}: redis is required (e.g. \"127.0.0.1:6379\")");
        if (PredictionTtlSeconds < 0) throw new BadInputException($"{source}: prediction_ttl_seconds must be >= 0");
        if (WindowMs < 1) throw new BadInputException($"{source}: window_ms must be >= 1");
        if (MaxOpenJoins < 1) throw new BadInputException($"{source}: max_open_joins must be >= 1");
        if (RedisRetryInitialMs < 1 || RedisRetryMaxMs < RedisRetryInitialMs)
            throw new BadInputException($"{source}: need 1 <= redis_retry_initial_ms <= redis_retry_max_ms");
        if (PartyKeys.Count == 0)
            throw new BadInputException($"{source}: party_keys is required, e.g. {{\"guest\": \"file:/etc/fed/guest.key\", \"host\": \"env:FED_HOST_KEY\"}}: partial scores are accepted only with a valid HMAC under their party's key");
        var keys = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var (party, spec) in PartyKeys)
        {
            Identifiers.PartyId(party);
            keys[party] = StreamSecrets.LoadKey(spec, $"{source}: party_keys.{party}");
        }
        Keys = keys;
    }
}

/// <summary>
/// Keys given by reference, never inline in a config (so a config can be shown, logged and versioned):
/// <c>file:PATH</c> (a file readable by its owner only) or <c>env:NAME</c>. The content is base64 of at least
/// 32 random bytes, e.g. <c>head -c 32 /dev/urandom | base64</c>. Errors name the reference, never the key.
/// </summary>
public static class StreamSecrets
{
    public const int MinKeyBytes = 32;

    public static byte[] LoadKey(string spec, string what)
    {
        string text;
        if (spec.StartsWith("file:", StringComparison.Ordinal))
        {
            var path = spec[5..];
            try
            {
                if (!OperatingSystem.IsWindows() &&
                    (File.GetUnixFileMode(path) & (UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite)) != 0)
                    throw new BadInputException($"{what}: key file '{path}' is readable or writable by others; chmod 600 it");
                text = File.ReadAllText(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new BadInputException($"{what}: cannot read key file '{path}': {e.Message}", e);
            }
        }
        else if (spec.StartsWith("env:", StringComparison.Ordinal))
        {
            var name = spec[4..];
            text = Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v
                : throw new BadInputException($"{what}: environment variable '{name}' is not set");
        }
        else throw new BadInputException($"{what}: expected \"file:PATH\" or \"env:NAME\" (a key is never written into the config itself)");
        byte[] key;
        try { key = Convert.FromBase64String(text.Trim()); }
        catch (FormatException) { throw new BadInputException($"{what}: the key is not base64 (make one with: head -c 32 /dev/urandom | base64)"); }
        if (key.Length < MinKeyBytes) throw new BadInputException($"{what}: the key has {key.Length} bytes; at least {MinKeyBytes} are needed");
        return key;
    }
}
