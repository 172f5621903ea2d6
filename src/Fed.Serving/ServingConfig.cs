using System.Text.Json;
using System.Text.Json.Serialization;
using Fed.Core;
using Fed.Core.Security;

namespace Fed.Serving;

/// <summary>A caller allowed to call a service: its HMAC key (one per pair of parties) and whether it may use admin endpoints.</summary>
public sealed class CallerConfig
{
    /// <summary>Shared key, base64 (at least 32 bytes decoded). Prefer <see cref="KeyEnv"/> in production.</summary>
    [JsonPropertyName("key")] public string? Key { get; set; }
    /// <summary>Name of an environment variable holding the base64 key.</summary>
    [JsonPropertyName("key_env")] public string? KeyEnv { get; set; }
    [JsonPropertyName("admin")] public bool Admin { get; set; }
    /// <summary>Party only (an initiator config with it set is refused): may send inline feature values (realtime mode).
    /// Only the party's own systems should: a caller who chooses the feature values reads the party's weights off
    /// k + 1 partial scores.</summary>
    [JsonPropertyName("inline_features")] public bool InlineFeatures { get; set; }
    /// <summary>With TLS: SHA-256 pin of the client certificate this caller presents (64 hex digits). A request signed
    /// as this caller over a connection with another certificate is refused.</summary>
    [JsonPropertyName("cert_sha256")] public string? CertSha256 { get; set; }

    public byte[] ResolveKey(string who) => ServingConfig.DecodeKey(Key, KeyEnv, who);
}

public sealed class RateLimitConfig
{
    /// <summary>Sustained requests per second per caller.</summary>
    [JsonPropertyName("permits_per_second")] public int PermitsPerSecond { get; set; } = 20000;
    /// <summary>Bucket size: requests a caller may burst above the sustained rate.</summary>
    [JsonPropertyName("burst")] public int Burst { get; set; } = 40000;
}

/// <summary>The service's TLS identity: a PKCS#12 (mode 0600) with its certificate and key.</summary>
public sealed class TlsConfig
{
    [JsonPropertyName("certificate")] public string Certificate { get; set; } = "";
    /// <summary>The PKCS#12 password: from this environment variable, or from this file (mode 0600), or none.</summary>
    [JsonPropertyName("password_env")] public string? PasswordEnv { get; set; }
    [JsonPropertyName("password_file")] public string? PasswordFile { get; set; }
    /// <summary>Accept a certificate file that group/others can read (insecure).</summary>
    [JsonPropertyName("allow_insecure_key_file_mode")] public bool AllowInsecureKeyFileMode { get; set; }

    public System.Security.Cryptography.X509Certificates.X509Certificate2 Load(string who) =>
        Certificates.LoadPkcs12(Certificate, SecretFiles.ReadSecret(PasswordEnv, PasswordFile, who + ".tls password"), who + ".tls.certificate", AllowInsecureKeyFileMode);
}

/// <summary>Replay protection (<see cref="NonceStore"/>).</summary>
public sealed class ReplayConfig
{
    /// <summary>"memory" (this process) or "redis" (shared by every instance using the same Redis and prefix).</summary>
    [JsonPropertyName("store")] public string Store { get; set; } = "memory";
    /// <summary>Redis for store "redis" (StackExchange.Redis configuration string); the initiator defaults to its 'redis'.</summary>
    [JsonPropertyName("redis")] public string? Redis { get; set; }
    /// <summary>Key prefix of the nonce keys: {prefix}{caller}:{nonce}, each expiring after the window.</summary>
    [JsonPropertyName("key_prefix")] public string KeyPrefix { get; set; } = "fed:nonce:";
    /// <summary>Memory store bound: nonces remembered at once (beyond it, requests are refused until old ones expire).</summary>
    [JsonPropertyName("max_entries")] public int MaxEntries { get; set; } = 1_000_000;
}

/// <summary>Where /readyz and /metrics are served.</summary>
public sealed class OpsConfig
{
    /// <summary>A separate listener (e.g. http://127.0.0.1:9101) serving only /healthz, /readyz and /metrics, unauthenticated:
    /// bind it to a private interface. Plain http is allowed here only on a loopback address (or with insecure_plaintext).
    /// Left out: /readyz and /metrics are on the main listener and need <see cref="Access"/>.</summary>
    [JsonPropertyName("listen")] public string? Listen { get; set; }
    /// <summary>On the main listener: "signed" (any configured caller) or "admin" (an admin caller).</summary>
    [JsonPropertyName("access")] public string Access { get; set; } = "signed";
}

/// <summary>Settings both services share.</summary>
public abstract class ServingConfig
{
    /// <summary>Kestrel address, e.g. https://127.0.0.1:7101 (port 0 = any free port). https needs 'tls'; http needs
    /// 'insecure_plaintext': true.</summary>
    [JsonPropertyName("listen")] public string Listen { get; set; } = "https://127.0.0.1:0";
    /// <summary>HTTPS with client certificates required and pinned (callers.*.cert_sha256).</summary>
    [JsonPropertyName("tls")] public TlsConfig? Tls { get; set; }
    /// <summary>Allows plain HTTP (no TLS, no client certificates) for the listener and the calls to parties: for tests
    /// and benchmarks on one machine only.</summary>
    [JsonPropertyName("insecure_plaintext")] public bool InsecurePlaintext { get; set; }
    [JsonPropertyName("replay")] public ReplayConfig Replay { get; set; } = new();
    [JsonPropertyName("ops")] public OpsConfig Ops { get; set; } = new();
    /// <summary>On SIGTERM: listeners close at once, requests in flight get this long to finish.</summary>
    [JsonPropertyName("shutdown_timeout_seconds")] public double ShutdownTimeoutSeconds { get; set; } = 10;
    /// <summary>Warehouse spec (sqlite:PATH or odbc:...): model registry, feature tables, partial scores.</summary>
    [JsonPropertyName("warehouse")] public string Warehouse { get; set; } = "";
    /// <summary>This service's party id in the model registry.</summary>
    [JsonPropertyName("party_id")] public string PartyId { get; set; } = "";
    /// <summary>Who may call /v1/* (signed requests): caller id to key.</summary>
    [JsonPropertyName("callers")] public Dictionary<string, CallerConfig> Callers { get; set; } = new();
    [JsonPropertyName("max_request_bytes")] public long MaxRequestBytes { get; set; } = 1 << 20;
    [JsonPropertyName("max_batch")] public int MaxBatch { get; set; } = 1000;
    [JsonPropertyName("signature_max_age_seconds")] public int SignatureMaxAgeSeconds { get; set; } = 30;
    [JsonPropertyName("rate_limit")] public RateLimitConfig RateLimit { get; set; } = new();
    /// <summary>How often the active-version pointer is re-read from the registry (admin activate refreshes at once).</summary>
    [JsonPropertyName("model_refresh_seconds")] public double ModelRefreshSeconds { get; set; } = 10;
    /// <summary>Warehouse connections kept open for concurrent requests.</summary>
    [JsonPropertyName("warehouse_connections")] public int WarehouseConnections { get; set; } = 4;
    /// <summary>"stdout", "stderr", "file:PATH" (appended) or "none": one JSON line per request and event.</summary>
    [JsonPropertyName("log")] public string Log { get; set; } = "stdout";

    static readonly JsonSerializerOptions Json = new() { ReadCommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true, UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow };

    public static T Load<T>(string path) where T : ServingConfig
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"{path}: cannot read config: {e.Message}", e);
        }
        T cfg;
        try { cfg = JsonSerializer.Deserialize<T>(text, Json) ?? throw new BadInputException($"{path}: empty config"); }
        catch (JsonException e) { throw new BadInputException($"{path}: invalid config: {e.Message}", e); }
        cfg.Validate(path);
        return cfg;
    }

    public virtual void Validate(string source)
    {
        if (string.IsNullOrWhiteSpace(Warehouse)) throw new BadInputException($"{source}: 'warehouse' is required (sqlite:PATH or odbc:...)");
        try { Identifiers.PartyId(PartyId); } catch (BadInputException e) { throw new BadInputException($"{source}: 'party_id': {e.Message}"); }
        if (!Uri.TryCreate(Listen, UriKind.Absolute, out var u) || u.Scheme is not ("http" or "https"))
            throw new BadInputException($"{source}: 'listen' must be an http(s) URL such as https://127.0.0.1:7101, got '{Listen}'");
        if (u.Scheme == "http" && !InsecurePlaintext)
            throw new BadInputException($"{source}: 'listen' is plain http ({Listen}): requests, keys' signatures and predictions would cross the network unencrypted. " +
                "Use https with 'tls' (fed serve cert makes a certificate), or set \"insecure_plaintext\": true for a test on one machine");
        if (u.Scheme == "https")
        {
            if (Tls is null || string.IsNullOrWhiteSpace(Tls.Certificate))
                throw new BadInputException($"{source}: 'listen' is https: give 'tls': {{\"certificate\": \"PATH.p12\"}} (fed serve cert --name NAME --out PATH.p12 makes one)");
        }
        if (Tls is not null && string.IsNullOrWhiteSpace(Tls.Certificate)) throw new BadInputException($"{source}: 'tls.certificate' is required");
        if (Callers.Count == 0) throw new BadInputException($"{source}: 'callers' is empty: every /v1 request is signed, so list at least one caller with its key");
        foreach (var (id, c) in Callers)
        {
            Identifiers.ModelId(id, "caller id");
            c.ResolveKey($"{source}: callers.{id}");
            if (c.CertSha256 != null) c.CertSha256 = Certificates.CheckPin(c.CertSha256, $"{source}: callers.{id}.cert_sha256");
            else if (u.Scheme == "https")
                throw new BadInputException($"{source}: callers.{id}: 'cert_sha256' is required with https: the SHA-256 pin of the client certificate this caller presents");
        }
        if (Replay.Store is not ("memory" or "redis")) throw new BadInputException($"{source}: 'replay.store' must be memory or redis, got '{Replay.Store}'");
        if (Replay.MaxEntries < 1000) throw new BadInputException($"{source}: 'replay.max_entries' must be >= 1000");
        if (string.IsNullOrEmpty(Replay.KeyPrefix)) throw new BadInputException($"{source}: 'replay.key_prefix' must not be empty");
        if (Ops.Access is not ("signed" or "admin")) throw new BadInputException($"{source}: 'ops.access' must be signed or admin, got '{Ops.Access}'");
        if (Ops.Listen != null)
        {
            if (!Uri.TryCreate(Ops.Listen, UriKind.Absolute, out var ou) || ou.Scheme is not ("http" or "https"))
                throw new BadInputException($"{source}: 'ops.listen' must be an http(s) URL such as http://127.0.0.1:9101, got '{Ops.Listen}'");
            if (ou.Scheme == "http" && !InsecurePlaintext && !(ou.IsLoopback))
                throw new BadInputException($"{source}: 'ops.listen' is plain http on a non-loopback address ({Ops.Listen}): use https or a loopback address");
            if (ou.Scheme == "https" && Tls is null) throw new BadInputException($"{source}: 'ops.listen' is https: give 'tls'");
        }
        if (ShutdownTimeoutSeconds is < 0 or > 3600) throw new BadInputException($"{source}: 'shutdown_timeout_seconds' must be 0 .. 3600");
        if (MaxRequestBytes < 1024) throw new BadInputException($"{source}: 'max_request_bytes' must be >= 1024");
        if (MaxBatch < 1) throw new BadInputException($"{source}: 'max_batch' must be >= 1");
        if (SignatureMaxAgeSeconds < 1) throw new BadInputException($"{source}: 'signature_max_age_seconds' must be >= 1");
        if (RateLimit.PermitsPerSecond < 1 || RateLimit.Burst < 1) throw new BadInputException($"{source}: 'rate_limit' values must be >= 1");
        if (WarehouseConnections < 1) throw new BadInputException($"{source}: 'warehouse_connections' must be >= 1");
        if (Log is not ("stdout" or "stderr" or "none") && !(Log.StartsWith("file:", StringComparison.Ordinal) && Log.Length > 5))
            throw new BadInputException($"{source}: 'log' must be stdout, stderr, none or file:PATH");
    }

    internal static byte[] DecodeKey(string? key, string? keyEnv, string who)
    {
        var text = key;
        if (text is null && keyEnv is not null)
            text = Environment.GetEnvironmentVariable(keyEnv) ?? throw new BadInputException($"{who}: environment variable '{keyEnv}' (key_env) is not set");
        if (text is null) throw new BadInputException($"{who}: needs 'key' or 'key_env' (a base64 shared key of >= 32 bytes)");
        byte[] bytes;
        try { bytes = Convert.FromBase64String(text); }
        catch (FormatException) { throw new BadInputException($"{who}: the key is not valid base64"); }
        if (bytes.Length < 32) throw new BadInputException($"{who}: the key has {bytes.Length} bytes; use at least 32 (e.g. openssl rand -base64 32)");
        return bytes;
    }
}

/// <summary>`fed serve party --config PATH`.</summary>
public sealed class PartyConfig : ServingConfig
{
    /// <summary>Realtime mode's feature source: the party's daily feature table (Schema.Features, hourly: false); newest dt per sample wins.</summary>
    [JsonPropertyName("feature_table")] public string? FeatureTable { get; set; }
    /// <summary>Near-real-time mode: the hourly snapshot table (Schema.Features, hourly: true); newest (dt, hour) per sample wins.</summary>
    [JsonPropertyName("hourly_feature_table")] public string? HourlyFeatureTable { get; set; }
    /// <summary>Limits on answering as an oracle: agreed populations, daily quotas, audit log.</summary>
    [JsonPropertyName("oracle")] public OracleConfig Oracle { get; set; } = new();

    public override void Validate(string source)
    {
        base.Validate(source);
        Oracle.Validate(source, Callers);
        if (FeatureTable != null) Identifiers.SqlName(FeatureTable, "feature_table");
        if (HourlyFeatureTable != null) Identifiers.SqlName(HourlyFeatureTable, "hourly_feature_table");
    }
}

/// <summary>One party the initiator fans out to.</summary>
public sealed class PartyEndpoint
{
    [JsonPropertyName("party_id")] public string PartyId { get; set; } = "";
    /// <summary>Base URL of the party service, e.g. http://10.0.0.2:7101.</summary>
    [JsonPropertyName("url")] public string Url { get; set; } = "";
    /// <summary>Key shared with this party (it lists the initiator's caller_id with the same key).</summary>
    [JsonPropertyName("key")] public string? Key { get; set; }
    [JsonPropertyName("key_env")] public string? KeyEnv { get; set; }
    [JsonPropertyName("timeout_ms")] public int TimeoutMs { get; set; } = 500;
    /// <summary>With an https url: SHA-256 pin of the party's server certificate (the only certificate accepted).</summary>
    [JsonPropertyName("cert_sha256")] public string? CertSha256 { get; set; }
}

/// <summary>
/// Initiator's in-process copy of prediction records (<see cref="NearCache"/>). Left out of the config, it is on with
/// <see cref="Default"/> if Redis can track keys for it (else the initiator runs without it and logs why); given with
/// max_entries > 0, it is required (startup fails if Redis cannot); max_entries 0 turns it off.
/// </summary>
public sealed class NearCacheConfig
{
    public static NearCacheConfig Default => new() { MaxEntries = 100_000 };

    /// <summary>Most records held (0 = off). An entry is the record's bytes plus its key, about half a kilobyte.</summary>
    [JsonPropertyName("max_entries")] public int MaxEntries { get; set; }
    /// <summary>Backstop: an entry is dropped this long after it was read from Redis even without an invalidation.</summary>
    [JsonPropertyName("max_age_ms")] public int MaxAgeMs { get; set; } = 1000;

    [JsonIgnore] public bool Enabled => MaxEntries > 0;
}

/// <summary>`fed serve initiator --config PATH`.</summary>
public sealed class InitiatorConfig : ServingConfig
{
    /// <summary>The id this initiator signs its requests to parties with.</summary>
    [JsonPropertyName("caller_id")] public string CallerId { get; set; } = "";
    [JsonPropertyName("parties")] public List<PartyEndpoint> Parties { get; set; } = new();
    /// <summary>StackExchange.Redis configuration string, e.g. 127.0.0.1:6379.</summary>
    [JsonPropertyName("redis")] public string Redis { get; set; } = "";
    [JsonPropertyName("cache_ttl_seconds")] public int CacheTtlSeconds { get; set; } = 86400;
    /// <summary>Connections per party (HTTP/1.1 keep-alive pool).</summary>
    [JsonPropertyName("max_connections_per_party")] public int MaxConnectionsPerParty { get; set; } = 64;
    /// <summary>Null (left out): <see cref="NearCacheConfig.Default"/>, used only if Redis allows it.</summary>
    [JsonPropertyName("near_cache")] public NearCacheConfig? NearCache { get; set; }

    public InitiatorConfig() => MaxBatch = 100;

    public override void Validate(string source)
    {
        base.Validate(source);
        foreach (var (id, c) in Callers)
            if (c.InlineFeatures)
                throw new BadInputException($"{source}: callers.{id}: 'inline_features' applies only to party services (it lets a caller send " +
                    "feature values to a party's /v1/partial-scores); an initiator never takes feature values, so here it would do nothing: remove it");
        Identifiers.ModelId(CallerId, "caller_id");
        if (Parties.Count == 0) throw new BadInputException($"{source}: 'parties' is empty: list every party (guest included) with its url and key");
        var seen = new HashSet<string>();
        foreach (var p in Parties)
        {
            Identifiers.PartyId(p.PartyId);
            if (!seen.Add(p.PartyId)) throw new BadInputException($"{source}: party '{p.PartyId}' listed twice");
            if (!Uri.TryCreate(p.Url, UriKind.Absolute, out var u) || u.Scheme is not ("http" or "https"))
                throw new BadInputException($"{source}: party '{p.PartyId}': 'url' must be an http(s) URL, got '{p.Url}'");
            if (u.Scheme == "http" && !InsecurePlaintext)
                throw new BadInputException($"{source}: party '{p.PartyId}': 'url' is plain http: use https with 'cert_sha256', or set \"insecure_plaintext\": true for a test on one machine");
            if (u.Scheme == "https")
            {
                p.CertSha256 = Certificates.CheckPin(p.CertSha256, $"{source}: parties.{p.PartyId}.cert_sha256");
                if (Tls is null) throw new BadInputException($"{source}: party '{p.PartyId}' is https: give 'tls' (this initiator's certificate, presented to the party as its client certificate)");
            }
            DecodeKey(p.Key, p.KeyEnv, $"{source}: parties.{p.PartyId}");
            if (p.TimeoutMs < 1) throw new BadInputException($"{source}: party '{p.PartyId}': 'timeout_ms' must be >= 1");
        }
        if (string.IsNullOrWhiteSpace(Redis)) throw new BadInputException($"{source}: 'redis' is required (host:port)");
        try { StackExchange.Redis.ConfigurationOptions.Parse(Redis); }
        catch (ArgumentException e) { throw new BadInputException($"{source}: 'redis' is not a valid configuration string ({Secrets.Redact(Redis)}): {Secrets.Redact(e.Message)}"); }
        if (CacheTtlSeconds < 1) throw new BadInputException($"{source}: 'cache_ttl_seconds' must be >= 1");
        if (NearCache?.MaxEntries is < 0 or > 10_000_000) throw new BadInputException($"{source}: 'near_cache.max_entries' must be 0 (off) .. 10000000, got {NearCache.MaxEntries}");
        if (NearCache?.MaxAgeMs is < 1 or > 3_600_000) throw new BadInputException($"{source}: 'near_cache.max_age_ms' must be 1 .. 3600000, got {NearCache.MaxAgeMs}");
    }
}
