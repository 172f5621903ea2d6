using System.Collections.Concurrent;
using Fed.Core;
using Fed.Core.Scoring;
using StackExchange.Redis;

namespace Fed.Serving;

/// <summary>
/// In-process copy of prediction records (the exact Redis value bytes), dropped when Redis reports a change to the key
/// through keyspace notifications, and after <c>max_age_ms</c> at the latest. A lookup served from here skips the
/// Redis round trip; it can lag a change in Redis only by the time the notification takes to arrive (one loopback or
/// LAN hop). While the notification channel is down nothing is served from here.
/// </summary>
public sealed class NearCache : IDisposable
{
    /// <summary>Notification classes needed: K keyspace channel, $ string commands (SET), g generic (DEL, EXPIRE, RENAME),
    /// x expired, e evicted. "A" stands for all classes but K.</summary>
    const string Needed = "K$gxe";
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
    readonly string _redisConfig;
    readonly ConnectionMultiplexer _redis;
    readonly RedisChannel _channel;
    readonly string _channelPrefix;
    readonly Action<string, string> _log;
    readonly Metrics _metrics;
    readonly Action<RedisChannel, RedisValue> _onMessage;
    readonly SemaphoreSlim _resuming = new(1, 1);
    long _epoch;
    int _count;
    volatile bool _live;

    NearCache(NearCacheConfig config, string redisConfig, ConnectionMultiplexer redis, Metrics metrics, Action<string, string> log)
    {
        _metrics = metrics;
        _maxEntries = config.MaxEntries;
        _maxAgeMs = config.MaxAgeMs;
        _redisConfig = redisConfig;
        _redis = redis;
        _log = log;
        var db = ConfigurationOptions.Parse(redisConfig).DefaultDatabase ?? 0;
        _channelPrefix = $"__keyspace@{db}__:";
        _channel = new RedisChannel(_channelPrefix + PredictionKeys.Prefix + "*", RedisChannel.PatternMode.Pattern);
        _onMessage = (channel, _) =>
        {
            var name = (string)channel!;
            if (name.StartsWith(_channelPrefix, StringComparison.Ordinal)) Invalidate(name[_channelPrefix.Length..]);
        };
    }

    /// <summary>Checks (and if allowed, turns on) keyspace notifications, then subscribes. Throws if the server cannot be made to send them.</summary>
    public static NearCache Start(NearCacheConfig config, string redisConfig, ConnectionMultiplexer redis, Metrics metrics, Action<string, string> log)
    {
        var cache = new NearCache(config, redisConfig, redis, metrics, log);
        EnsureNotifications(redisConfig);
        redis.GetSubscriber().Subscribe(cache._channel, cache._onMessage);
        // A notification lost while a connection was down would leave an entry stale: drop everything, serve nothing until re-subscribed.
        redis.ConnectionFailed += (_, _) => cache.Suspend();
        redis.ConnectionRestored += (_, _) => _ = Task.Run(cache.Resume);
        cache._live = true;
        return cache;
    }

    public int Count => Volatile.Read(ref _count);

    /// <summary>The record bytes, or null (not held, too old, or notifications not live).</summary>
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
        _metrics.Inc("fed_near_cache_invalidations_total", "Keyspace notifications received for prediction keys.");
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

    /// <summary>After a reconnect: the server may have restarted without the setting, and the subscription must be live before anything is served.</summary>
    async Task Resume()
    {
        await _resuming.WaitAsync(); // one at a time: interleaved re-subscribes could leave a gap while live
        try
        {
            _live = false;
            var before = Volatile.Read(ref _epoch);
            EnsureNotifications(_redisConfig);
            var sub = _redis.GetSubscriber();
            await sub.UnsubscribeAsync(_channel, _onMessage);
            await sub.SubscribeAsync(_channel, _onMessage);
            // A failure meanwhile cleared (bumped the epoch) too: then stay off until its own restore.
            if (Clear() == before + 1) _live = true;
        }
        catch (Exception e) when (e is FedException or RedisException or TimeoutException)
        {
            _log("near cache off after reconnect", e.Message);
        }
        finally { _resuming.Release(); }
    }

    /// <summary>
    /// Makes sure the server sends keyspace notifications for SET, DEL, expiry and eviction: reads
    /// notify-keyspace-events and adds what is missing. CONFIG is an admin command, so this uses a short-lived
    /// connection of its own with allowAdmin (the serving connection stays without it).
    /// </summary>
    static void EnsureNotifications(string redisConfig)
    {
        var opts = ConfigurationOptions.Parse(redisConfig);
        opts.AllowAdmin = true;
        opts.AbortOnConnectFail = true;
        ConnectionMultiplexer admin;
        try { admin = ConnectionMultiplexer.Connect(opts); }
        catch (RedisException e) { throw new FedFailureException($"near_cache: cannot reach Redis ({redisConfig}) to check notify-keyspace-events: {e.Message}", e); }
        using (admin)
        {
            foreach (var ep in admin.GetEndPoints())
            {
                var server = admin.GetServer(ep);
                string current;
                try { current = server.ConfigGet("notify-keyspace-events").FirstOrDefault().Value ?? ""; }
                catch (RedisException e) { throw Refuse(ep, "CONFIG GET failed: " + e.Message, e); }
                var missing = Missing(current);
                if (missing.Length == 0) continue;
                try { server.ConfigSet("notify-keyspace-events", current + missing); }
                catch (RedisException e) { throw Refuse(ep, $"it has notify-keyspace-events '{current}' and CONFIG SET failed: {e.Message}", e); }
                if (Missing(server.ConfigGet("notify-keyspace-events").FirstOrDefault().Value ?? "").Length > 0)
                    throw Refuse(ep, "CONFIG SET notify-keyspace-events did not take effect", null);
            }
        }
    }

    /// <summary>The flags of <see cref="Needed"/> that <paramref name="flags"/> lacks ("A" covers all but K).</summary>
    public static string Missing(string flags) =>
        new(Needed.Where(c => !flags.Contains(c) && !(c != 'K' && flags.Contains('A'))).ToArray());

    static FedFailureException Refuse(System.Net.EndPoint ep, string why, Exception? inner) => new(
        $"near_cache needs Redis keyspace notifications to drop changed entries, and {ep} does not send them: {why}. " +
        $"Configure the Redis server with notify-keyspace-events containing {Needed} (e.g. 'notify-keyspace-events K$gxe' " +
        "in redis.conf, or your provider's parameter of that name), or turn near_cache off.", inner);

    public void Dispose()
    {
        _live = false;
        _resuming.Dispose();
        try { _redis.GetSubscriber().Unsubscribe(_channel, _onMessage); }
        catch (Exception e) when (e is RedisException or TimeoutException or ObjectDisposedException) { }
    }
}
