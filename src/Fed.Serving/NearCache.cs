using System.Collections.Concurrent;
using Fed.Core;
using Fed.Core.Scoring;

namespace Fed.Serving;

/// <summary>
/// In-process copy of prediction records (the exact Redis value bytes), dropped when Redis reports a change to the key
/// through client tracking (<see cref="InvalidationListener"/>), and after <c>max_age_ms</c> at the latest. A lookup
/// served from here skips the Redis round trip; it can lag a change in Redis only by the time the invalidation takes
/// to arrive (one loopback or LAN hop). While the tracking connection is down nothing is served from here.
/// </summary>
public sealed class NearCache : IDisposable
{
    const int Slots = 1024;

    sealed class Entry(byte[] value, long expiresAt)
    {
        public readonly byte[] Value = value;
        public readonly long ExpiresAt = expiresAt;
    }

    /// <summary>What a populate must compare after its Redis GET: any invalidation of the key's slot, or any clear, since then voids it.</summary>
    public readonly record struct Ticket(int Slot, long Generation, long Epoch);

    readonly ConcurrentDictionary<string, Entry> _map = new(StringComparer.Ordinal);
    readonly long[] _generations = new long[Slots];
    readonly int _maxEntries;
    readonly long _maxAgeMs;
    readonly Prometheus.Counter _invalidations;
    InvalidationListener? _listener;
    long _epoch;
    int _count;
    volatile bool _live;

    NearCache(NearCacheConfig config, Metrics metrics)
    {
        _invalidations = metrics.Counter("fed_near_cache_invalidations_total", "Invalidations received from Redis for prediction keys.");
        _maxEntries = config.MaxEntries;
        _maxAgeMs = config.MaxAgeMs;
    }

    /// <summary>Turns client tracking on for prediction keys; throws (saying what to do) if the server cannot do it.</summary>
    public static NearCache Start(NearCacheConfig config, string redisConfig, Metrics metrics, Action<string, string> log)
    {
        var cache = new NearCache(config, metrics);
        cache._listener = InvalidationListener.Start(redisConfig, PredictionKeys.Prefix, cache.Invalidate, () => cache.Clear(),
            // A change made while the connection was down went unreported: drop everything, serve nothing until tracking is back.
            down: cache.Suspend,
            up: () => { cache.Clear(); cache._live = true; },
            log: e => log("near cache off until the tracking connection is back", e));
        return cache;
    }

    /// <summary>True while invalidations are being received (only then is anything served from here).</summary>
    public bool Live => _live;

    public int Count => Volatile.Read(ref _count);

    /// <summary>The record bytes, or null (not held, too old, or invalidations not flowing).</summary>
    public byte[]? TryGet(string key)
    {
        if (!_live || !_map.TryGetValue(key, out var e)) return null;
        if (Environment.TickCount64 < e.ExpiresAt) return e.Value;
        Remove(key, e);
        return null;
    }

    /// <summary>Take before sending the Redis GET whose answer will be <see cref="Put"/>.</summary>
    public Ticket Take(string key)
    {
        var slot = SlotOf(key);
        return new Ticket(slot, Volatile.Read(ref _generations[slot]), Volatile.Read(ref _epoch));
    }

    /// <summary>Stores a value read from Redis unless the key was invalidated since <paramref name="t"/> was taken.</summary>
    public void Put(string key, byte[] value, Ticket t)
    {
        if (!_live || Voided(t)) return;
        var e = new Entry(value, Environment.TickCount64 + _maxAgeMs);
        if (_map.TryGetValue(key, out var old))
        {
            if (!_map.TryUpdate(key, e, old)) return;
        }
        else
        {
            if (Interlocked.Increment(ref _count) > _maxEntries) EvictDownTo(_maxEntries);
            if (!_map.TryAdd(key, e)) { Interlocked.Decrement(ref _count); return; }
        }
        // An invalidation that ran between the check above and the insert bumped the generation before removing:
        // seeing it here means its removal may have missed this entry, so take it out again.
        if (Voided(t)) Remove(key, e);
    }

    static int SlotOf(string key) => (key.GetHashCode() & int.MaxValue) % Slots;

    bool Voided(Ticket t) => Volatile.Read(ref _generations[t.Slot]) != t.Generation || Volatile.Read(ref _epoch) != t.Epoch;

    void Invalidate(string key)
    {
        Interlocked.Increment(ref _generations[SlotOf(key)]); // first, so a racing Put sees it
        if (_map.TryRemove(key, out _)) Interlocked.Decrement(ref _count);
        _invalidations.Inc();
    }

    void Remove(string key, Entry e)
    {
        if (_map.TryRemove(new KeyValuePair<string, Entry>(key, e))) Interlocked.Decrement(ref _count);
    }

    /// <summary>Simple eviction: drops arbitrary entries (the map's enumeration order) until at most <paramref name="limit"/> remain.</summary>
    void EvictDownTo(int limit)
    {
        foreach (var (k, e) in _map)
        {
            if (Volatile.Read(ref _count) <= limit) return;
            Remove(k, e);
        }
    }

    long Clear()
    {
        var epoch = Interlocked.Increment(ref _epoch);
        foreach (var (k, e) in _map) Remove(k, e);
        return epoch;
    }

    void Suspend()
    {
        _live = false;
        Clear();
    }

    public void Dispose()
    {
        _live = false;
        _listener?.Dispose();
    }
}
