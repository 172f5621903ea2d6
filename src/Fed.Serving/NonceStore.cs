using StackExchange.Redis;

namespace Fed.Serving;

/// <summary>
/// Replay protection: remembers each (caller, nonce) of a verified request for as long as its timestamp could still be
/// accepted (2 x signature_max_age_seconds + 1 s), and refuses the second use. Fails closed: when the memory is full or
/// the shared store cannot answer, the request is refused.
/// </summary>
public abstract class NonceStore : IDisposable
{
    /// <summary>How long a nonce must be remembered: a timestamp is accepted within +-maxAge of the clock.</summary>
    public static TimeSpan Window(int maxAgeSeconds) => TimeSpan.FromSeconds(2L * maxAgeSeconds + 1);

    /// <summary>Null if this is the first use of (caller, nonce) within the window (and records it); else why refused.</summary>
    public abstract ValueTask<string?> TryUse(string caller, string nonce);

    public virtual void Dispose() { }

    public static NonceStore Create(ReplayConfig config, int maxAgeSeconds, string? defaultRedis) => config.Store switch
    {
        "redis" => new RedisNonceStore(config.Redis ?? defaultRedis ?? throw new Fed.Core.BadInputException("replay.redis is required with replay.store redis"),
            config.KeyPrefix, Window(maxAgeSeconds)),
        _ => new MemoryNonceStore(config.MaxEntries, Window(maxAgeSeconds)),
    };
}

/// <summary>
/// One process's memory of nonces, bounded: two generations (current and previous) each spanning the window, so a
/// nonce is kept at least one window and at most two; at most max_entries nonces in all, beyond which requests are
/// refused (503-worthy, but said as 401 like every other authentication failure) until the older generation expires.
/// </summary>
public sealed class MemoryNonceStore(int maxEntries, TimeSpan window) : NonceStore
{
    readonly object _lock = new();
    HashSet<string> _current = new(StringComparer.Ordinal), _previous = new(StringComparer.Ordinal);
    long _currentStart = Environment.TickCount64;
    readonly long _windowMs = (long)window.TotalMilliseconds;

    public int Count { get { lock (_lock) return _current.Count + _previous.Count; } }

    public override ValueTask<string?> TryUse(string caller, string nonce)
    {
        var key = caller + "\n" + nonce;
        lock (_lock)
        {
            var now = Environment.TickCount64;
            if (now - _currentStart >= 2 * _windowMs) { _previous.Clear(); _current.Clear(); _currentStart = now; }
            else if (now - _currentStart >= _windowMs) { (_previous, _current) = (_current, _previous); _current.Clear(); _currentStart = now; }
            if (_current.Contains(key) || _previous.Contains(key)) return ValueTask.FromResult<string?>("replayed request: this nonce was already used");
            if (_current.Count + _previous.Count >= maxEntries)
                return ValueTask.FromResult<string?>($"replay memory full ({maxEntries} nonces within the window; raise replay.max_entries): retry later");
            _current.Add(key);
        }
        return ValueTask.FromResult<string?>(null);
    }
}

/// <summary>
/// Nonces shared by several service instances (e.g. initiators behind one load balancer): <c>SET {prefix}{caller}:{nonce}
/// 1 NX PX window</c>; a key that exists is a replay. Redis unreachable: refused (fail closed).
/// </summary>
public sealed class RedisNonceStore : NonceStore
{
    readonly ConnectionMultiplexer _redis;
    readonly string _prefix;
    readonly TimeSpan _window;

    public RedisNonceStore(string redis, string prefix, TimeSpan window)
    {
        _redis = InitiatorService.ConnectRedis(redis);
        _prefix = prefix;
        _window = window;
    }

    public override async ValueTask<string?> TryUse(string caller, string nonce)
    {
        try
        {
            return await _redis.GetDatabase().StringSetAsync(_prefix + caller + ":" + nonce, "1", _window, When.NotExists)
                ? null : "replayed request: this nonce was already used";
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            return "replay check unavailable (shared nonce store unreachable); retry later";
        }
    }

    public override void Dispose() => _redis.Dispose();
}
