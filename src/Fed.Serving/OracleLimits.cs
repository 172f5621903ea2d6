using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Serialization;
using Fed.Core;
using Fed.Core.Security;
using Microsoft.Extensions.Logging;

namespace Fed.Serving;

/// <summary>One agreed population: the ids (or PSI tokens) a caller may have scored with a model.</summary>
public sealed class PopulationConfig
{
    [JsonPropertyName("caller")] public string Caller { get; set; } = "";
    [JsonPropertyName("model_id")] public string ModelId { get; set; } = "";
    /// <summary>One entry per line: a sample id ("ids"), or the lower-hex HMAC-SHA256 of the id under the PSI token key
    /// ("hmac_sha256", the form a PSI run leaves both sides with, so the file need not hold raw ids).</summary>
    [JsonPropertyName("file")] public string File { get; set; } = "";
    [JsonPropertyName("format")] public string Format { get; set; } = "ids";
    /// <summary>For format hmac_sha256: environment variable holding the base64 token key (>= 32 bytes).</summary>
    [JsonPropertyName("token_key_env")] public string? TokenKeyEnv { get; set; }
}

/// <summary>Limits on the party as an oracle (docs/serving.md "Limits on the oracle").</summary>
public sealed class OracleConfig
{
    /// <summary>Agreed populations. A (caller, model) pair listed here is answered only for its population; every other
    /// sample of that pair, and every sample the party lacks, is answered with one uniform status, <c>not_scored</c>.</summary>
    [JsonPropertyName("populations")] public List<PopulationConfig> Populations { get; set; } = [];
    /// <summary>Caller id to the most samples it may ask about per UTC day (across requests; this process's count).</summary>
    [JsonPropertyName("daily_quota")] public Dictionary<string, long> DailyQuota { get; set; } = new();
    /// <summary>"file:PATH" (appended, mode 0600) or null: one JSON line per request: caller, model, request id, and the
    /// asked ids as keyed hashes (HMAC-SHA256 under <see cref="AuditKeyEnv"/>, never the ids).</summary>
    [JsonPropertyName("audit_log")] public string? AuditLog { get; set; }
    [JsonPropertyName("audit_key_env")] public string? AuditKeyEnv { get; set; }

    public void Validate(string source, IReadOnlyDictionary<string, CallerConfig> callers)
    {
        foreach (var p in Populations)
        {
            if (!callers.ContainsKey(p.Caller)) throw new BadInputException($"{source}: oracle.populations: caller '{p.Caller}' is not in 'callers'");
            Identifiers.ModelId(p.ModelId);
            if (p.Format is not ("ids" or "hmac_sha256")) throw new BadInputException($"{source}: oracle.populations: 'format' must be ids or hmac_sha256, got '{p.Format}'");
            if (p.Format == "hmac_sha256") ServingConfig.DecodeKey(null, p.TokenKeyEnv ?? throw new BadInputException($"{source}: oracle.populations: hmac_sha256 needs 'token_key_env'"), $"{source}: oracle.populations.token_key_env");
            if (!System.IO.File.Exists(p.File)) throw new BadInputException($"{source}: oracle.populations: file '{p.File}' does not exist");
        }
        foreach (var (c, q) in DailyQuota)
        {
            if (!callers.ContainsKey(c)) throw new BadInputException($"{source}: oracle.daily_quota: caller '{c}' is not in 'callers'");
            if (q < 1) throw new BadInputException($"{source}: oracle.daily_quota.{c} must be >= 1");
        }
        if (AuditLog != null)
        {
            if (!AuditLog.StartsWith("file:", StringComparison.Ordinal) || AuditLog.Length <= 5) throw new BadInputException($"{source}: oracle.audit_log must be file:PATH");
            ServingConfig.DecodeKey(null, AuditKeyEnv ?? throw new BadInputException($"{source}: oracle.audit_log needs 'audit_key_env' (the ids are logged as keyed hashes)"), $"{source}: oracle.audit_key_env");
        }
    }
}

/// <summary>The party's oracle limits: agreed populations, daily quotas per caller, and the audit log.</summary>
public sealed class OracleLimits : IAsyncDisposable
{
    sealed record Population(HashSet<string> Members, byte[]? TokenKey);
    readonly Dictionary<(string Caller, string Model), Population> _populations = new();
    readonly Dictionary<string, long> _quota;
    readonly Dictionary<string, (long Day, long Used)> _used = new(StringComparer.Ordinal);
    readonly ServiceLog? _audit;
    readonly byte[]? _auditKey;

    public OracleLimits(OracleConfig config, string service)
    {
        foreach (var p in config.Populations)
        {
            var members = System.IO.File.ReadLines(p.File).Select(l => l.Trim()).Where(l => l.Length > 0)
                .Select(l => p.Format == "hmac_sha256" ? l.ToLowerInvariant() : l).ToHashSet(StringComparer.Ordinal);
            var key = p.Format == "hmac_sha256" ? ServingConfig.DecodeKey(null, p.TokenKeyEnv, "oracle.populations.token_key_env") : null;
            if (_populations.TryGetValue((p.Caller, p.ModelId), out var existing)) existing.Members.UnionWith(members);
            else _populations[(p.Caller, p.ModelId)] = new Population(members, key);
        }
        _quota = new Dictionary<string, long>(config.DailyQuota, StringComparer.Ordinal);
        if (config.AuditLog != null)
        {
            _auditKey = ServingConfig.DecodeKey(null, config.AuditKeyEnv, "oracle.audit_key_env");
            _audit = new ServiceLog(service, config.AuditLog);
        }
    }

    public static string Token(byte[] key, string id) => Convert.ToHexStringLower(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(id)));

    /// <summary>Counts the asked samples against the caller's daily quota; returns why refused, or null.</summary>
    public string? Charge(string caller, int samples)
    {
        if (!_quota.TryGetValue(caller, out var limit)) return null;
        var day = DateTimeOffset.UtcNow.ToUnixTimeSeconds() / 86400;
        lock (_used)
        {
            var (d, used) = _used.GetValueOrDefault(caller);
            if (d != day) used = 0;
            if (used + samples > limit)
                return $"daily quota of caller '{caller}' exhausted ({used} of {limit} samples asked today, UTC); it resets at 00:00 UTC";
            _used[caller] = (day, used + samples);
        }
        return null;
    }

    /// <summary>Null: no agreed population for this caller and model (all ids answered). Else, per id, whether it is in it.</summary>
    public bool[]? Allowed(string caller, string model, string[] ids)
    {
        if (!_populations.TryGetValue((caller, model), out var pop)) return null;
        return ids.Select(id => pop.Members.Contains(pop.TokenKey is null ? id : Token(pop.TokenKey, id))).ToArray();
    }

    public void Audit(string caller, string requestId, string model, int? version, string mode, string[] ids)
    {
        if (_audit is null) return;
        _audit.Write(LogLevel.Information, "asked", ("request_id", requestId), ("caller", caller), ("model_id", model), ("version", version), ("mode", mode),
            ("samples", ids.Length), ("id_hmacs", string.Join(',', ids.Select(id => Token(_auditKey!, id)))));
    }

    public async ValueTask DisposeAsync() { if (_audit != null) await _audit.DisposeAsync(); }
}
