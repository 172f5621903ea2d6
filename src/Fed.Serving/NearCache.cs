using System.Collections.Concurrent;
using Fed.Core;
using Fed.Core.Redis;
using Fed.Core.Scoring;
using StackExchange.Redis;

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
    ClusterTracking? _cluster;
    long _epoch;
    int _count;
    volatile bool _live;

    NearCache(NearCacheConfig config, Metrics metrics)
    {
        _invalidations = metrics.Counter("fed_near_cache_invalidations_total", "Invalidations received from Redis for prediction keys.");
        _maxEntries = config.MaxEntries;
        _maxAgeMs = config.MaxAgeMs;
    }

    /// <summary>
    /// Turns client tracking on for prediction keys; throws (saying what to do) if the server cannot do it. On a Redis
    /// Cluster, one tracking connection per master (<see cref="ClusterTracking"/>): each master reports changes only to
    /// the keys it holds.
    /// </summary>
    public static NearCache Start(NearCacheConfig config, string redisConfig, Metrics metrics, Action<string, string> log)
    {
        var cache = new NearCache(config, metrics);
        var options = ConfigurationOptions.Parse(redisConfig);
        ConnectionMultiplexer? probe = null;
        try
        {
            // Its own connection (admin mode for CLUSTER NODES), kept by the cluster tracker to follow the topology.
            probe = RedisStore.Connect(redisConfig, abortOnConnectFail: true, allowAdmin: true);
            if (RedisStore.IsCluster(probe))
            {
                cache._cluster = ClusterTracking.Start(cache, options, probe, log);
                probe = null;
                return cache;
            }
        }
        catch (RedisConnectionException) { } // unreachable or refused: the single-server start below says why
        finally { probe?.Dispose(); }
        cache._listener = InvalidationListener.Start(redisConfig, PredictionKeys.Prefix, cache.Invalidate, () => cache.Clear(),
            // A change made while the connection was down went unreported: drop everything, serve nothing until tracking is back.
            down: cache.Suspend,
            up: cache.GoLive,
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

    /// <summary>Tracking is on everywhere it must be: drop what may have changed unseen, then serve again.</summary>
    void GoLive()
    {
        Clear();
        _live = true;
    }

    public void Dispose()
    {
        _live = false;
        _listener?.Dispose();
        _cluster?.Dispose();
    }

    /// <summary>
    /// Near cache over a Redis Cluster: one <see cref="InvalidationListener"/> per master that holds slots, as
    /// CLUSTER NODES says, re-read every <see cref="ReconcileMs"/>. Live only while every such master's tracking
    /// connection is up. A listener that drops suspends the cache (its master may have failed: changes there went
    /// unseen); after a failover the promoted replica is a new master, gets a listener, and once all are up the cache is
    /// cleared and goes live again. A key that changes on a master the tracker has not yet seen (a new node or a slot
    /// migration, at most one interval old) is bounded by max_age_ms like any entry.
    /// </summary>
    sealed class ClusterTracking : IDisposable
    {
        const int ReconcileMs = 500;
        sealed class Node { public InvalidationListener? Listener; public volatile bool Up; }

        readonly NearCache _cache;
        readonly ConfigurationOptions _options;
        readonly ConnectionMultiplexer _redis;
        readonly Action<string, string> _log;
        readonly Dictionary<System.Net.EndPoint, Node> _nodes = new();
        readonly CancellationTokenSource _stop = new();
        readonly object _lock = new();

        ClusterTracking(NearCache cache, ConfigurationOptions options, ConnectionMultiplexer redis, Action<string, string> log) =>
            (_cache, _options, _redis, _log) = (cache, options, redis, log);

        public static ClusterTracking Start(NearCache cache, ConfigurationOptions options, ConnectionMultiplexer redis, Action<string, string> log)
        {
            var t = new ClusterTracking(cache, options, redis, log);
            try { Task.Run(() => t.Reconcile(startup: true)).GetAwaiter().GetResult(); }
            catch { t.Dispose(); throw; }
            _ = Task.Run(t.Loop);
            return t;
        }

        async Task Loop()
        {
            while (!_stop.IsCancellationRequested)
            {
                try { await Task.Delay(ReconcileMs, _stop.Token); } catch (OperationCanceledException) { return; }
                try { await Reconcile(startup: false); }
                catch (Exception e) when (e is RedisException or TimeoutException or FedFailureException or InvalidOperationException)
                {
                    lock (_lock) _cache.Suspend();
                    _log("near cache off: the cluster topology cannot be read", e.Message);
                }
            }
        }

        async Task<HashSet<System.Net.EndPoint>> Masters()
        {
            var server = _redis.GetServers().FirstOrDefault(s => s.IsConnected)
                         ?? throw new FedFailureException("no Redis Cluster node is connected");
            var nodes = await server.ClusterNodesAsync() ?? throw new FedFailureException("CLUSTER NODES answered nothing");
            return nodes.Nodes.Where(n => !n.IsReplica && n.Slots.Count > 0 && n.EndPoint != null).Select(n => n.EndPoint!).ToHashSet();
        }

        /// <summary>All I/O outside the lock (async, no pool thread blocked); the lock only guards the node table and liveness.</summary>
        async Task Reconcile(bool startup)
        {
            var masters = await Masters();
            List<System.Net.EndPoint> added;
            lock (_lock)
            {
                foreach (var (ep, n) in _nodes.ToList())
                    if (!masters.Contains(ep)) { n.Listener?.Dispose(); _nodes.Remove(ep); }
                added = masters.Where(ep => !_nodes.ContainsKey(ep)).ToList();
            }
            foreach (var ep in added)
            {
                var node = new Node();
                try
                {
                    node.Listener = await InvalidationListener.StartAsync(_options, ep, PredictionKeys.Prefix, _cache.Invalidate, () => _cache.Clear(),
                        down: () => { lock (_lock) { node.Up = false; _cache.Suspend(); } },
                        up: () => node.Up = true,
                        log: e => _log($"near cache off until the tracking connection to {ep} is back", e));
                }
                catch (FedFailureException) when (!startup) { continue; } // try again next round; not live meanwhile
                lock (_lock)
                {
                    if (_stop.IsCancellationRequested) { node.Listener.Dispose(); return; }
                    _nodes[ep] = node;
                    _cache.Suspend(); // a master not tracked until now: what changed there went unseen
                }
            }
            lock (_lock)
                if (!_cache.Live && _nodes.Count == masters.Count && masters.All(_nodes.ContainsKey) && _nodes.Values.All(n => n.Up)) _cache.GoLive();
        }

        public void Dispose()
        {
            _stop.Cancel();
            lock (_lock)
            {
                foreach (var n in _nodes.Values) n.Listener?.Dispose();
                _nodes.Clear();
            }
            _redis.Dispose();
        }
    }
}
