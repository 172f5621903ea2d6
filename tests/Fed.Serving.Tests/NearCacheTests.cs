using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Fed.Core;
using Fed.Core.Scoring;
using Fed.TestSupport;
using StackExchange.Redis;

namespace Fed.Serving.Tests;

public sealed class NearCacheFixture : IAsyncLifetime
{
    public ServingWorld World { get; private set; } = null!;
    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(30) };
    /// <summary>Another writer: the batch load or a streaming job, on its own connection.</summary>
    public ConnectionMultiplexer Writer { get; private set; } = null!;
    public string FlagsBefore { get; private set; } = "";

    public async Task InitializeAsync()
    {
        var redis = ServingWorld.RequireRedis();
        // A server that sends no keyspace notifications: the near cache must not need them (nor CONFIG rights).
        using (var admin = ConnectionMultiplexer.Connect(redis + ",allowAdmin=true"))
        {
            var server = admin.GetServer(admin.GetEndPoints()[0]);
            server.ConfigSet("notify-keyspace-events", "");
            FlagsBefore = server.ConfigGet("notify-keyspace-events")[0].Value;
        }
        World = await ServingWorld.Create(redis, c => c.NearCache = new NearCacheConfig { MaxEntries = 10_000, MaxAgeMs = 60_000 });
        Writer = ConnectionMultiplexer.Connect(redis);
    }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        Writer?.Dispose();
        if (World != null) await World.DisposeAsync();
    }
}

/// <summary>The initiator's near cache against real Redis client tracking, services on loopback.</summary>
public sealed class NearCacheTests(NearCacheFixture f) : IClassFixture<NearCacheFixture>
{
    ServingWorld W => f.World;
    IDatabase Other => f.Writer.GetDatabase();

    Task<(int Status, string Body)> Get(string sample, InitiatorService? via = null) =>
        ServingWorld.Send(f.Http, HttpMethod.Get, (via ?? W.Initiator).Url + $"/v1/predictions/{W.ModelId}/{sample}", "client", W.ClientKey, null);

    static long NearHits(InitiatorService s) => s.Metrics.Value("fed_near_cache_lookups_total", "hit");

    string Key(string sample) => PredictionKeys.Record(W.ModelId, 2, sample);

    string Record(string sample, double value) => new PredictionRecord
    {
        ModelId = W.ModelId, Version = 2, SampleId = sample, PredictValue = value, Dt = ServingWorld.Dt, WrittenAt = "2026-11-21T00:00:00.000Z",
    }.ToJson();

    static double Value(string body) => JsonDocument.Parse(body).RootElement.GetProperty("predict_value").GetDouble();

    /// <summary>Looks up until <paramref name="done"/> holds or a second passes; every answer must pass <paramref name="allowed"/>.</summary>
    async Task<TimeSpan> PollUntil(string sample, Func<int, string, bool> done, Func<int, string, bool> allowed)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var (s, body) = await Get(sample);
            Assert.True(allowed(s, body), $"unexpected answer HTTP {s}: {body}");
            if (done(s, body)) return sw.Elapsed;
            Assert.True(sw.ElapsedMilliseconds < 1000, $"still HTTP {s}: {body} after {sw.ElapsedMilliseconds} ms");
        }
    }

    /// <summary>Looks up until one is served from the near cache: the first GET after a write may not populate it, since
    /// that write's own invalidation can arrive after the GET was sent (and then voids what it read).</summary>
    async Task<string> Warm(string sample, InitiatorService? via = null, int withinMs = 1000)
    {
        via ??= W.Initiator;
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var hits = NearHits(via);
            var (s, body) = await Get(sample, via);
            Assert.Equal(200, s);
            if (NearHits(via) > hits) return body;
            Assert.True(sw.ElapsedMilliseconds < withinMs, $"no near-cache hit within {withinMs} ms");
        }
    }

    [Fact]
    public async Task Without_keyspace_notifications_or_server_config_a_repeated_lookup_is_served_from_the_near_cache()
    {
        Assert.Equal("", f.FlagsBefore);
        Assert.True(W.Initiator.NearCacheLive);
        var id = W.SharedIds[300];
        await ServingWorld.Send(f.Http, HttpMethod.Post, W.Initiator.Url + "/v1/predict", "client", W.ClientKey, ServingWorld.PredictBody(W.ModelId, [id]));
        var stored = (string?)await Other.StringGetAsync(Key(id));
        Assert.NotNull(stored);
        Assert.Equal((200, stored), await Get(id));
        Assert.Equal(stored, await Warm(id)); // the record byte for byte, as from Redis
        var metrics = await W.Ops(f.Http, W.Initiator.Url);
        Assert.Contains("fed_near_cache_entries ", metrics);
        Assert.Contains("fed_near_cache_live 1", metrics);
        using var admin = ConnectionMultiplexer.Connect(W.Redis + ",allowAdmin=true");
        Assert.Equal("", (string?)admin.GetServer(admin.GetEndPoints()[0]).ConfigGet("notify-keyspace-events")[0].Value); // left as it was
    }

    [Fact]
    public async Task A_value_overwritten_in_Redis_by_another_writer_is_seen_within_a_second_and_nothing_else_is_ever_returned()
    {
        const string id = "nc-overwrite";
        await Other.StringSetAsync(Key(id), Record(id, 0));
        Assert.Equal(0, Value(await Warm(id)));

        await Other.StringSetAsync(Key(id), Record(id, 1));
        await PollUntil(id, (s, b) => Value(b) == 1, (s, b) => s == 200 && Value(b) is 0 or 1);

        // Many writes racing lookups that populate the cache: only written values come back, and the last one wins.
        const int n = 300;
        using var stop = new CancellationTokenSource();
        var seen = new List<double>();
        var reader = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var (s, b) = await Get(id);
                Assert.Equal(200, s);
                seen.Add(Value(b));
            }
        });
        for (var i = 2; i <= n; i++) await Other.StringSetAsync(Key(id), Record(id, i));
        stop.Cancel();
        await reader;
        Assert.All(seen, v => Assert.InRange(v, 1, n));
        var took = await PollUntil(id, (s, b) => Value(b) == n, (s, b) => s == 200 && Value(b) is >= 1 and <= n);
        Assert.True(took < TimeSpan.FromSeconds(1), $"last write seen after {took}");
        // Whether the racing lookups hit the near cache depends on how writes and lookups interleave; after the race it serves the last value.
        Assert.Equal(n, Value(await Warm(id)));
    }

    [Fact]
    public async Task A_key_deleted_in_Redis_makes_the_lookup_404_within_a_second()
    {
        const string id = "nc-delete";
        await Other.StringSetAsync(Key(id), Record(id, 0.5));
        Assert.Equal(0.5, Value(await Warm(id)));
        await Other.KeyDeleteAsync(Key(id));
        await PollUntil(id, (s, _) => s == 404, (s, b) => s == 404 || (s == 200 && Value(b) == 0.5));
    }

    [Fact]
    public async Task A_lost_tracking_connection_serves_nothing_stale_and_the_near_cache_comes_back_after_reconnecting()
    {
        const string id = "nc-reconnect";
        await Other.StringSetAsync(Key(id), Record(id, 0));
        Assert.Equal(0, Value(await Warm(id)));
        using (var admin = ConnectionMultiplexer.Connect(W.Redis + ",allowAdmin=true"))
        {
            var server = admin.GetServer(admin.GetEndPoints()[0]);
            var trackers = server.ClientList().Where(c => c.Name == InvalidationListener.ClientName).ToArray();
            Assert.NotEmpty(trackers);
            foreach (var c in trackers) server.ClientKill(c.Address!);
        }
        // Written while the tracking connection is down: its invalidation is lost, so only the reconnect handling can drop the entry.
        await Other.StringSetAsync(Key(id), Record(id, 1));
        await PollUntil(id, (s, b) => Value(b) == 1, (s, b) => s == 200 && Value(b) is 0 or 1);
        Assert.Equal(1, Value(await Warm(id, withinMs: 10_000))); // re-subscribed and serving again
        await Other.StringSetAsync(Key(id), Record(id, 2));
        await PollUntil(id, (s, b) => Value(b) == 2, (s, b) => s == 200 && Value(b) is 1 or 2);
    }

    [Fact]
    public async Task Max_entries_bounds_the_cache_and_max_age_ms_expires_entries()
    {
        var cfg = W.InitiatorConfig(W.Parties.ToDictionary(x => x.Key, x => x.Value.Url));
        cfg.NearCache = new NearCacheConfig { MaxEntries = 5, MaxAgeMs = 300 };
        await using var small = new InitiatorService(cfg);
        await small.StartAsync();
        for (var i = 0; i < 20; i++)
        {
            var id = "nc-bound-" + i;
            await Other.StringSetAsync(Key(id), Record(id, i));
            Assert.Equal(i, Value(await Warm(id, small)));
            Assert.InRange(small.NearCacheEntries, 1, 5);
        }
        var hits = NearHits(small);
        await Get("nc-bound-19", small);
        Assert.Equal(hits + 1, NearHits(small));
        await Task.Delay(400); // past max_age_ms, with no change in Redis
        await Get("nc-bound-19", small);
        Assert.Equal(hits + 1, NearHits(small));
    }

    [Fact]
    public async Task A_value_read_before_an_invalidation_that_arrives_before_it_is_stored_is_not_stored()
    {
        var metrics = new Metrics();
        using var cache = NearCache.Start(new NearCacheConfig { MaxEntries = 10, MaxAgeMs = 60_000 }, W.Redis, metrics, (_, _) => { });
        var key = Key("nc-ticket");
        var ticket = cache.Take(key); // as the lookup does, before its GET
        var stale = await Other.StringGetAsync(key);
        await Other.StringSetAsync(key, Record("nc-ticket", 7)); // another writer, after the GET
        var sw = Stopwatch.StartNew();
        // Other tests write other keys meanwhile: wait for this key's slot to move on.
        while (cache.Take(key).Generation == ticket.Generation && sw.ElapsedMilliseconds < 1000) await Task.Delay(5);
        Assert.NotEqual(ticket.Generation, cache.Take(key).Generation);
        cache.Put(key, System.Text.Encoding.UTF8.GetBytes(stale.HasValue ? (string)stale! : "old"), ticket);
        Assert.Null(cache.TryGet(key));
        Assert.Equal(0, cache.Count);
        // A GET issued after the invalidation is stored.
        ticket = cache.Take(key);
        cache.Put(key, (byte[])(await Other.StringGetAsync(key))!, ticket);
        Assert.NotNull(cache.TryGet(key));
    }

    /// <summary>The initiator config as a file, with <paramref name="nearCache"/> as its near_cache (null: left out).</summary>
    InitiatorConfig Load(string? nearCache)
    {
        var node = JsonSerializer.SerializeToNode(W.InitiatorConfig(W.Parties.ToDictionary(x => x.Key, x => x.Value.Url)),
            new JsonSerializerOptions { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull })!.AsObject();
        node.Remove("near_cache");
        if (nearCache != null) node["near_cache"] = System.Text.Json.Nodes.JsonNode.Parse(nearCache);
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, node.ToJsonString());
            return ServingConfig.Load<InitiatorConfig>(path);
        }
        finally { File.Delete(path); }
    }

    [Theory]
    [InlineData("{\"max_entries\": -1}", "near_cache.max_entries")]
    [InlineData("{\"max_entries\": 10, \"max_age_ms\": 0}", "near_cache.max_age_ms")]
    [InlineData("{\"max_entries\": 10, \"ttl\": 5}", "ttl")]
    public void Bad_near_cache_config_is_refused(string nearCache, string named) =>
        Assert.Contains(named, Assert.Throws<BadInputException>(() => Load(nearCache)).Message);

    [Fact]
    public void Near_cache_is_on_by_default_off_with_max_entries_0_and_required_as_configured()
    {
        Assert.Null(Load(null).NearCache); // left out: the default, used if Redis allows it
        Assert.Equal((true, 100_000, 1000), (NearCacheConfig.Default.Enabled, NearCacheConfig.Default.MaxEntries, NearCacheConfig.Default.MaxAgeMs));
        Assert.False(Load("{\"max_entries\": 0}").NearCache!.Enabled);
        var on = Load("{\"max_entries\": 1000, \"max_age_ms\": 250}").NearCache!;
        Assert.Equal((true, 1000, 250), (on.Enabled, on.MaxEntries, on.MaxAgeMs));
    }

    /// <summary>A real Redis that refuses CLIENT TRACKING (the command renamed away, as some managed services restrict it).</summary>
    [Fact]
    public async Task Without_client_tracking_a_configured_near_cache_refuses_to_start_and_the_default_runs_without_one()
    {
        await using var redis = await RedisServer.Start("--rename-command", "CLIENT", "");
        var cfg = W.InitiatorConfig(W.Parties.ToDictionary(x => x.Key, x => x.Value.Url));
        cfg.Redis = redis.Endpoint;
        cfg.NearCache = new NearCacheConfig { MaxEntries = 100 };
        var e = Assert.Throws<FedFailureException>(() => new InitiatorService(cfg));
        Assert.Contains("client tracking", e.Message);
        Assert.Contains("max_entries 0", e.Message); // says what to do
        cfg.NearCache = null; // the default: runs, looks up in Redis, and says why it has no near cache
        await using var plain = new InitiatorService(cfg);
        await plain.StartAsync();
        Assert.False(plain.NearCacheLive);
        Assert.Contains("fed_near_cache_live 0", await W.Ops(f.Http, plain.Url));
        cfg.NearCache = new NearCacheConfig(); // off
        await using var off = new InitiatorService(cfg);
    }

    [Fact]
    public async Task A_flushed_keyspace_empties_the_near_cache()
    {
        await using var redis = await RedisServer.Start(); // FLUSHALL on the shared server would hit other tests
        var cfg = W.InitiatorConfig(W.Parties.ToDictionary(x => x.Key, x => x.Value.Url));
        cfg.Redis = redis.Endpoint;
        cfg.NearCache = new NearCacheConfig { MaxEntries = 100, MaxAgeMs = 60_000 };
        await using var init = new InitiatorService(cfg);
        await init.StartAsync();
        using var other = ConnectionMultiplexer.Connect(redis.Endpoint + ",allowAdmin=true");
        const string id = "nc-flush";
        await other.GetDatabase().StringSetAsync(Key(id), Record(id, 3));
        Assert.Equal(3, Value(await Warm(id, init)));
        await other.GetServer(other.GetEndPoints()[0]).FlushAllDatabasesAsync();
        var sw = Stopwatch.StartNew();
        while ((await Get(id, init)).Status != 404) Assert.True(sw.ElapsedMilliseconds < 1000, "still served after FLUSHALL");
        Assert.Equal(0, init.NearCacheEntries);
    }

    [Fact]
    public async Task The_tracking_connection_authenticates_like_the_serving_connection()
    {
        await using var redis = await RedisServer.Start("--requirepass", "s3cret");
        var cfg = W.InitiatorConfig(W.Parties.ToDictionary(x => x.Key, x => x.Value.Url));
        cfg.Redis = redis.Endpoint + ",password=s3cret";
        cfg.NearCache = new NearCacheConfig { MaxEntries = 100, MaxAgeMs = 60_000 };
        await using (var init = new InitiatorService(cfg))
        {
            await init.StartAsync();
            using var other = ConnectionMultiplexer.Connect(cfg.Redis);
            const string id = "nc-auth";
            await other.GetDatabase().StringSetAsync(Key(id), Record(id, 4));
            Assert.Equal(4, Value(await Warm(id, init)));
            await other.GetDatabase().StringSetAsync(Key(id), Record(id, 5));
            var sw = Stopwatch.StartNew();
            while (Value((await Get(id, init)).Body) != 5) Assert.True(sw.ElapsedMilliseconds < 1000, "overwrite not seen: invalidations not received");
        }
        cfg.Redis = redis.Endpoint + ",password=wrong,abortConnect=false";
        var e = Assert.Throws<FedFailureException>(() => new InitiatorService(cfg));
        Assert.Contains("client tracking", e.Message);
    }

    /// <summary>A connection that goes silent without a reset (a dropped route) must not keep the near cache live.</summary>
    [Fact]
    public async Task A_tracking_connection_that_goes_silent_turns_the_near_cache_off_until_it_is_back()
    {
        await using var proxy = new FreezingProxy(W.Redis);
        var log = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var cache = NearCache.Start(new NearCacheConfig { MaxEntries = 10, MaxAgeMs = 60_000 }, proxy.Endpoint, new Metrics(), (m, e) => log.Enqueue(m + ": " + e));
        async Task<TimeSpan> Until(Func<bool> cond, int ms)
        {
            var sw = Stopwatch.StartNew();
            while (!cond()) { Assert.True(sw.ElapsedMilliseconds < ms, $"not within {ms} ms; log: {string.Join(" | ", log)}"); await Task.Delay(20); }
            return sw.Elapsed;
        }
        await Until(() => cache.Live, 2000);
        var key = Key("nc-silent");
        cache.Put(key, "x"u8.ToArray(), cache.Take(key));
        Assert.NotNull(cache.TryGet(key));
        proxy.Frozen = true; // bytes stop flowing both ways; no FIN, no RST
        var took = await Until(() => !cache.Live, 6000);
        Assert.Null(cache.TryGet(key)); // dropped, and nothing served while not live
        Assert.InRange(took.TotalMilliseconds, 1000, 6000);
        Assert.Contains(log, l => l.Contains("answered nothing"));
        proxy.Frozen = false;
        await Until(() => cache.Live, 6000); // reconnected through the proxy, tracking on again
    }

    /// <summary>A TCP forwarder to Redis whose traffic can be stopped without closing anything.</summary>
    sealed class FreezingProxy : IAsyncDisposable
    {
        readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        readonly IPEndPoint _target;
        readonly CancellationTokenSource _stop = new();
        readonly List<TcpClient> _open = [];
        public volatile bool Frozen;
        public string Endpoint => "127.0.0.1:" + ((IPEndPoint)_listener.LocalEndpoint).Port;

        public FreezingProxy(string redis)
        {
            var hp = redis.Split(',')[0].Split(':');
            _target = new IPEndPoint(IPAddress.Parse(hp[0] == "localhost" ? "127.0.0.1" : hp[0]), int.Parse(hp[1]));
            _listener.Start();
            _ = Task.Run(Accept);
        }

        async Task Accept()
        {
            while (!_stop.IsCancellationRequested)
            {
                TcpClient client;
                try { client = await _listener.AcceptTcpClientAsync(_stop.Token); } catch { return; }
                var upstream = new TcpClient();
                await upstream.ConnectAsync(_target);
                lock (_open) { _open.Add(client); _open.Add(upstream); }
                _ = Pump(client.GetStream(), upstream.GetStream(), client, upstream);
                _ = Pump(upstream.GetStream(), client.GetStream(), client, upstream);
            }
        }

        async Task Pump(NetworkStream from, NetworkStream to, TcpClient a, TcpClient b)
        {
            var buf = new byte[16 * 1024];
            try
            {
                while (true)
                {
                    var n = await from.ReadAsync(buf, _stop.Token);
                    if (n == 0) break;
                    while (Frozen) await Task.Delay(10, _stop.Token); // hold what was read: as if lost on the way
                    await to.WriteAsync(buf.AsMemory(0, n), _stop.Token);
                }
            }
            catch { }
            a.Dispose(); b.Dispose();
        }

        public ValueTask DisposeAsync()
        {
            _stop.Cancel();
            _listener.Stop();
            lock (_open) foreach (var c in _open) c.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
