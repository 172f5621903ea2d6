using StackExchange.Redis;

namespace Fed.Core.Redis;

/// <summary>
/// The Redis client plumbing every path shares (batch load/lookup, streaming, serving), for a single node, a
/// Sentinel-managed primary or a Redis Cluster alike: one <see cref="ConnectionMultiplexer"/> per process built from
/// the usual configuration string ("host:port", "h1:p1,h2:p2,...": StackExchange.Redis finds out whether the servers
/// form a cluster and routes each key to its slot's master), and multi-key reads that stay legal on a cluster.
/// </summary>
public static class RedisStore
{
    /// <summary>
    /// Connects. <paramref name="abortOnConnectFail"/> false: return at once and keep reconnecting (a service that
    /// must start while Redis is down); true: fail now (a command-line tool). On a cluster the client also re-reads the
    /// topology when a master fails, so commands go to the promoted replica once it has taken over.
    /// </summary>
    public static ConnectionMultiplexer Connect(string config, bool abortOnConnectFail, int? syncTimeoutMs = null, bool allowAdmin = false)
    {
        var options = ConfigurationOptions.Parse(config);
        options.AbortOnConnectFail = abortOnConnectFail;
        if (allowAdmin) options.AllowAdmin = true; // e.g. CLUSTER NODES (the server's ACL still decides)
        if (syncTimeoutMs is { } t) options.SyncTimeout = t;
        var mux = ConnectionMultiplexer.Connect(options);
        FollowFailovers(mux);
        return mux;
    }

    /// <summary>
    /// When a cluster node's connection fails, re-reads the topology every second (CLUSTER NODES through the client)
    /// until every master that holds slots is connected again, for at most two minutes. Without it the client may keep
    /// the topology it read while the failed master still held its slots (the only node that would answer MOVED is
    /// dead), and route those slots nowhere until its next periodic check; measured here: lookups of the failed
    /// master's keys did not come back within 60 s in one run of <c>ClusterFailoverTests</c>.
    /// </summary>
    static void FollowFailovers(ConnectionMultiplexer mux)
    {
        var running = 0;
        mux.ConnectionFailed += (_, _) =>
        {
            if (!IsCluster(mux) || Interlocked.Exchange(ref running, 1) == 1) return;
            _ = Task.Run(async () =>
            {
                try
                {
                    for (var i = 0; i < 120; i++)
                    {
                        await Task.Delay(1000);
                        try { await mux.ConfigureAsync(); }
                        catch (ObjectDisposedException) { return; }
                        catch (Exception e) when (e is RedisException or TimeoutException) { continue; }
                        if (MastersConnected(mux)) return;
                    }
                }
                finally { Volatile.Write(ref running, 0); }
            });
        };
    }

    static bool MastersConnected(ConnectionMultiplexer mux)
    {
        var config = mux.GetServers().FirstOrDefault(s => s.IsConnected)?.ClusterConfiguration;
        return config != null && config.Nodes.Where(n => !n.IsReplica && n.Slots.Count > 0)
            .All(n => n.EndPoint != null && mux.GetServer(n.EndPoint).IsConnected);
    }

    /// <summary>
    /// GET of many keys: one MGET per hash slot, all sent at once (pipelined), values in the order of
    /// <paramref name="keys"/>. On a single node every key is in one group, so this is one MGET as before; on a cluster
    /// an MGET across slots would be refused (CROSSSLOT), and the groups also spread the read over the masters.
    /// </summary>
    public static async Task<RedisValue[]> GetManyAsync(IDatabase db, IReadOnlyList<RedisKey> keys)
    {
        if (keys.Count == 0) return [];
        var mux = db.Multiplexer;
        var groups = new Dictionary<int, List<int>>();
        for (var i = 0; i < keys.Count; i++)
        {
            var slot = mux.GetHashSlot(keys[i]);
            if (!groups.TryGetValue(slot, out var g)) groups[slot] = g = new List<int>(1);
            g.Add(i);
        }
        var result = new RedisValue[keys.Count];
        if (groups.Count == 1)
        {
            var all = await db.StringGetAsync(keys as RedisKey[] ?? keys.ToArray());
            all.CopyTo(result, 0);
            return result;
        }
        var reads = groups.Values.Select(async g =>
        {
            var values = await db.StringGetAsync(g.Select(i => keys[i]).ToArray());
            for (var j = 0; j < g.Count; j++) result[g[j]] = values[j];
        }).ToArray();
        await Task.WhenAll(reads);
        return result;
    }

    /// <summary>True if the connected servers form a Redis Cluster.</summary>
    public static bool IsCluster(IConnectionMultiplexer mux) => mux.GetServers().Any(s => s.ServerType == ServerType.Cluster);
}
