using System.Diagnostics;
using System.Net;
using Fed.TestSupport;
using System.Text;
using Fed.Serving;
using Fed.Serving.Tests;
using StackExchange.Redis;

namespace Fed.Bench.Benchmarks;

/// <summary>
/// Online serving on loopback: two real party services (SQLite warehouses, breast_cancer features) and the initiator
/// with real Redis, all in this process with JSON request logs written to files, driven by a bounded load generator
/// that signs every request like a real client and checks every answer (a prediction must be complete).
/// Cold = parties compute (no cache read); warm = served from the cache: the default initiator's near cache, and
/// (an initiator configured without it) Redis on every lookup.
/// Closed loop: a fixed, small number of workers issue requests back to back (more workers only add queueing).
/// Open loop: requests at a fixed rate, latency measured from each request's scheduled time (no coordinated omission).
/// Baseline, same run: a plain Redis GET round trip (the initiator's StackExchange.Redis settings) at the same concurrency.
/// TLS figures: a second world with every hop on HTTPS with pinned client certificates (the shipped setting), against
/// the plain-HTTP cold figures of the same run; replay protection is on in both (then once with nonces shared in Redis).
/// The generator shares the 2 cores and the process with the services, so CPU per request includes the client's share.
/// Redis: FED_TEST_REDIS, or a redis-server started here on a free port.
/// </summary>
public sealed class ServingBenchmark : IBenchmark
{
    public string Name => "serving";

    /// <summary>Single-sample cold requests and warm lookups (and their Redis baseline); 100-sample requests.</summary>
    const int Workers = 8, BatchWorkers = 4;
    static readonly int[] ColdSweep = [4, 16];
    const double PacedRate = 3000;
    const string Setup = "2 party services + initiator + load generator in one process on loopback (Kestrel HTTP/1.1 keep-alive, plain HTTP " +
                         "(insecure_plaintext), HMAC-signed requests with nonces, JSON request logs to files), Redis on loopback, 2 shared cores";

    public IReadOnlyList<BenchFigure> Run(BenchContext ctx) => RunAsync(ctx).GetAwaiter().GetResult();

    /// <summary>What one load phase measured. CPU and allocation are the whole process's, per request.</summary>
    internal sealed record Load(string Kind, int Workers, double Qps, double P50Ms, double P99Ms, double P999Ms, long Requests, long Errors,
        double CpuUsPerRequest, double AllocKbPerRequest, int Gc0, int Gc1, int Gc2, double GcPauseMs)
    {
        /// <summary>Open loop only: p99 counted from each request's actual start, without the scheduler's timer lag.</summary>
        public double? P99FromSendMs { get; init; }

        public override string ToString() =>
            $"{Kind} {Workers}: {Qps:F0}/s p50 {P50Ms:F3} p99 {P99Ms:F3} p99.9 {P999Ms:F3} ms{(P99FromSendMs is { } f ? $" (p99 from send {f:F3})" : "")}, {Requests} req, {Errors} err, " +
            $"{CpuUsPerRequest:F0} us CPU/req, {AllocKbPerRequest:F1} KB/req, GC {Gc0}/{Gc1}/{Gc2} ({GcPauseMs:F1} ms)";

        public Dictionary<string, object> Details()
        {
            var d = new Dictionary<string, object>
            {
            ["load"] = Kind, ["workers"] = Workers, ["requests_per_s"] = Math.Round(Qps, 1), ["p50_ms"] = Ms(P50Ms),
            ["p99_ms"] = Ms(P99Ms), ["p999_ms"] = Ms(P999Ms), ["requests"] = Requests, ["errors"] = Errors,
            ["cpu_us_per_request"] = Math.Round(CpuUsPerRequest, 1), ["alloc_kb_per_request"] = Math.Round(AllocKbPerRequest, 2),
            ["gc_gen0_gen1_gen2"] = $"{Gc0}/{Gc1}/{Gc2}", ["gc_pause_ms"] = Math.Round(GcPauseMs, 2),
            };
            if (P99FromSendMs is { } f) d["p99_from_send_ms"] = Ms(f);
            return d;
        }

        /// <summary>JSON has no infinity: a quantile that fell on requests refused by an overloaded open loop is written as -1.</summary>
        public static double Ms(double x) => double.IsFinite(x) ? Math.Round(x, 3) : -1;
    }

    async Task<IReadOnlyList<BenchFigure>> RunAsync(BenchContext ctx)
    {
        var redis = Environment.GetEnvironmentVariable("FED_TEST_REDIS");
        await using var own = string.IsNullOrEmpty(redis) ? await RedisServer.Start() : null;
        redis = own?.Endpoint ?? redis!;
        var seconds = ctx.Quick ? 1.0 : 5.0;
        var loadBefore = LoadAverage();
        var logDir = Path.Combine(ctx.WorkDirectory, "serving-logs");
        Directory.CreateDirectory(logDir);
        await using var world = await ServingWorld.Create(redis, ic =>
        {
            ic.RateLimit = new RateLimitConfig { PermitsPerSecond = 10_000_000, Burst = 10_000_000 };
            ic.NearCache = new NearCacheConfig { MaxEntries = 0 }; // this initiator reads Redis on every lookup
            foreach (var p in ic.Parties) p.TimeoutMs = 1000;
        }, log: "file:" + Path.Combine(logDir, "{service}.log"));
        var ids = world.SharedIds;
        using var mux = InitiatorService.ConnectRedis(redis);
        var db = mux.GetDatabase();
        await db.StringSetAsync("fed:bench:plain", new string('x', 200));

        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 64, UseProxy = false, PooledConnectionLifetime = TimeSpan.FromMinutes(5) });
        var predictUri = new Uri(world.Initiator.Url + "/v1/predict");
        var healthUri = new Uri(world.Initiator.Url + "/healthz");
        var lookupUris = ids.Select(id => new Uri($"{world.Initiator.Url}/v1/predictions/{world.ModelId}/{id}")).ToArray();
        // Request bodies are built up front: the generator's own cost stays small.
        var singles = ids.Select(id => Encoding.UTF8.GetBytes(ServingWorld.PredictBody(world.ModelId, [id]))).ToArray();
        var rnd = new Random(42);
        var batchIds = Enumerable.Range(0, 64).Select(_ => ids.OrderBy(_ => rnd.Next()).Take(100).ToArray()).ToArray();
        var coldBatches = batchIds.Select(b => Encoding.UTF8.GetBytes(ServingWorld.PredictBody(world.ModelId, b))).ToArray();
        var warmBatches = batchIds.Select(b => Encoding.UTF8.GetBytes(ServingWorld.PredictBody(world.ModelId, b, useCache: true))).ToArray();
        var complete = "\"complete\":true"u8.ToArray();

        async Task<bool> Send(HttpMethod m, Uri uri, byte[]? body)
        {
            using var msg = new HttpRequestMessage(m, uri);
            if (body != null)
            {
                msg.Content = new ByteArrayContent(body);
                msg.Content.Headers.TryAddWithoutValidation("Content-Type", "application/json");
            }
            RequestSigning.Apply(msg, world.ClientKey, "client", body ?? []);
            using var resp = await http.SendAsync(msg, HttpCompletionOption.ResponseContentRead);
            var bytes = await resp.Content.ReadAsByteArrayAsync();
            // A prediction counts only when every sample got a value (never a partial answer).
            return resp.StatusCode == HttpStatusCode.OK && (body is null || bytes.AsSpan().IndexOf(complete) >= 0);
        }
        Task<bool> ColdSingle(int i) => Send(HttpMethod.Post, predictUri, singles[Pick(i, singles.Length)]);
        Task<bool> ColdBatch(int i) => Send(HttpMethod.Post, predictUri, coldBatches[i % coldBatches.Length]);
        Task<bool> WarmBatch(int i) => Send(HttpMethod.Post, predictUri, warmBatches[i % warmBatches.Length]);
        Task<bool> Lookup(int i) => Send(HttpMethod.Get, lookupUris[Pick(i, lookupUris.Length)], null);
        async Task<bool> Health(int _)
        {
            using var resp = await http.GetAsync(healthUri);
            await resp.Content.ReadAsByteArrayAsync();
            return resp.StatusCode == HttpStatusCode.OK;
        }
        async Task<bool> RedisGet(int _) { await db.StringGetAsync("fed:bench:plain"); return true; }

        // Warm-up long enough for tiered JIT to reach its optimized code (a production service runs for hours).
        var warm = ctx.Quick ? 1.0 : 3.0;
        await Drive(Workers, warm, ColdSingle);
        await Drive(BatchWorkers, warm / 3, ColdBatch);
        foreach (var chunk in ids.Chunk(100)) await Send(HttpMethod.Post, predictUri, Encoding.UTF8.GetBytes(ServingWorld.PredictBody(world.ModelId, chunk)));
        await Drive(Workers, warm / 3, Lookup);
        await Drive(BatchWorkers, warm / 3, WarmBatch);
        await Drive(4, warm / 3, RedisGet);

        var redis1 = await Drive(1, seconds, RedisGet);
        var redisBatch = await Drive(BatchWorkers, seconds, RedisGet);
        var redisConc = await Drive(Workers, seconds, RedisGet);
        ctx.Log($"   redis GET: {redis1}\n              {redisBatch}\n              {redisConc}");

        var cold = await Drive(Workers, seconds, ColdSingle);
        ctx.Log($"   cold single: {cold}");
        var paced = await Paced(PacedRate, seconds, 512, ColdSingle);
        ctx.Log($"   cold single: {paced}");
        var sweep = new List<Load>();
        foreach (var w in ColdSweep) { sweep.Add(await Drive(w, seconds, ColdSingle)); ctx.Log($"   cold single: {sweep[^1]}"); }
        var coldBatch = await Drive(BatchWorkers, seconds, ColdBatch);
        ctx.Log($"   cold batch100: {coldBatch}");
        // Make every shared id warm, then look up and answer from the cache.
        foreach (var chunk in ids.Chunk(100)) await Send(HttpMethod.Post, predictUri, Encoding.UTF8.GetBytes(ServingWorld.PredictBody(world.ModelId, chunk)));
        // The HTTP floor: an unsigned GET /healthz (Kestrel + HttpClient + the request pipeline, no signature, no Redis).
        var floor1 = await Drive(1, seconds, Health);
        var floorConc = await Drive(Workers, seconds, Health);
        ctx.Log($"   http floor: {floor1}\n               {floorConc}");
        var warm1 = await Drive(1, seconds, Lookup);
        var warmConc = await Drive(Workers, seconds, Lookup);
        ctx.Log($"   warm lookup, no near cache: {warm1}\n                               {warmConc}");
        var warmBatch = await Drive(BatchWorkers, seconds, WarmBatch);
        ctx.Log($"   warm batch100: {warmBatch}");

        // The same lookups through a second initiator with the default config, near cache on (started only now, so
        // the phases above ran exactly as before). max_age_ms 1000: every entry is re-read from Redis at least once a second.
        var nearCfg = world.InitiatorConfig(world.Parties.ToDictionary(x => x.Key, x => x.Value.Url), "file:" + Path.Combine(logDir, "initiator-near.log"));
        nearCfg.RateLimit = new RateLimitConfig { PermitsPerSecond = 10_000_000, Burst = 10_000_000 };
        nearCfg.NearCache = null;
        await using var near = new InitiatorService(nearCfg);
        await near.StartAsync();
        for (var t = 0; !near.NearCacheLive; t++)
            if (t < 100) await Task.Delay(50); else throw new InvalidOperationException("the default near cache did not come up: see initiator-near.log");
        var nearUris = ids.Select(id => new Uri($"{near.Url}/v1/predictions/{world.ModelId}/{id}")).ToArray();
        Task<bool> NearLookup(int i) => Send(HttpMethod.Get, nearUris[Pick(i, nearUris.Length)], null);
        await Drive(Workers, warm, NearLookup);
        long NearHits() => near.Metrics.Value("fed_near_cache_lookups_total", "hit");
        long NearMisses() => near.Metrics.Value("fed_near_cache_lookups_total", "miss");
        async Task<(Load Load, double HitRatio)> NearPhase(int workers)
        {
            var (h, m) = (NearHits(), NearMisses());
            var l = await Drive(workers, seconds, NearLookup);
            var (dh, dm) = (NearHits() - h, NearMisses() - m);
            return (l, dh + dm == 0 ? 0 : (double)dh / (dh + dm));
        }
        var near1 = await NearPhase(1);
        var nearConc = await NearPhase(Workers);
        ctx.Log($"   warm lookup (default, near cache): {near1.Load} (near hits {near1.HitRatio:P2})\n                      {nearConc.Load} (near hits {nearConc.HitRatio:P2})");

        // The shipped setting: every hop HTTPS with pinned client certificates (client -> initiator -> parties), replay
        // protection on (nonce memory in the process; then shared through Redis). Same data, same load, same run.
        await using var tlsWorld = await ServingWorld.Create(redis, ic =>
        {
            ic.RateLimit = new RateLimitConfig { PermitsPerSecond = 10_000_000, Burst = 10_000_000 };
            ic.NearCache = new NearCacheConfig { MaxEntries = 0 };
            foreach (var p in ic.Parties) p.TimeoutMs = 1000;
        }, log: "file:" + Path.Combine(logDir, "tls-{service}.log"), tls: true);
        using var tlsHttp = tlsWorld.ClientFor("client", maxConnections: 64); // as the plain client: handshakes stay bounded
        var tlsPredict = new Uri(tlsWorld.Initiator.Url + "/v1/predict");
        var tlsSingles = ids.Select(id => Encoding.UTF8.GetBytes(ServingWorld.PredictBody(tlsWorld.ModelId, [id]))).ToArray();
        async Task<bool> SendTo(HttpClient client, byte[] key, Uri uri, byte[] body)
        {
            using var msg = new HttpRequestMessage(HttpMethod.Post, uri) { Content = new ByteArrayContent(body) };
            msg.Content.Headers.TryAddWithoutValidation("Content-Type", "application/json");
            RequestSigning.Apply(msg, key, "client", body);
            using var resp = await client.SendAsync(msg, HttpCompletionOption.ResponseContentRead);
            var bytes = await resp.Content.ReadAsByteArrayAsync();
            return resp.StatusCode == HttpStatusCode.OK && bytes.AsSpan().IndexOf(complete) >= 0;
        }
        Task<bool> TlsColdSingle(int i) => SendTo(tlsHttp, tlsWorld.ClientKey, tlsPredict, tlsSingles[Pick(i, tlsSingles.Length)]);
        await Drive(Workers, warm, TlsColdSingle);
        var tlsCold = await Drive(Workers, seconds, TlsColdSingle);
        ctx.Log($"   TLS cold single: {tlsCold}");
        var tlsPaced = await Paced(PacedRate, seconds, 512, TlsColdSingle);
        ctx.Log($"   TLS cold single: {tlsPaced}");
        var sharedCfg = tlsWorld.InitiatorConfig(tlsWorld.Parties.ToDictionary(x => x.Key, x => x.Value.Url), "file:" + Path.Combine(logDir, "tls-initiator-redis-nonces.log"));
        sharedCfg.RateLimit = new RateLimitConfig { PermitsPerSecond = 10_000_000, Burst = 10_000_000 };
        sharedCfg.NearCache = new NearCacheConfig { MaxEntries = 0 };
        sharedCfg.Replay = new ReplayConfig { Store = "redis", KeyPrefix = "fed:bench:nonce:" };
        foreach (var p in sharedCfg.Parties) p.TimeoutMs = 1000;
        await using var shared = new InitiatorService(sharedCfg);
        await shared.StartAsync();
        var sharedPredict = new Uri(shared.Url + "/v1/predict");
        Task<bool> SharedColdSingle(int i) => SendTo(tlsHttp, tlsWorld.ClientKey, sharedPredict, tlsSingles[Pick(i, tlsSingles.Length)]);
        await Drive(Workers, warm / 3, SharedColdSingle);
        var tlsShared = await Drive(Workers, seconds, SharedColdSingle);
        ctx.Log($"   TLS cold single, nonces in Redis: {tlsShared}");

        var loadAfter = LoadAverage();
        var droppedLogLines = world.Initiator.Log.Dropped + near.Log.Dropped + world.Parties.Values.Sum(p => p.Log.Dropped);

        Dictionary<string, object> D(Load l, string? goal = null, bool ok = true, params (string, object)[] extra)
        {
            var d = l.Details();
            d["seconds"] = seconds;
            d["setup"] = Setup;
            if (goal != null) { d["goal"] = goal; d["goal_met"] = ok; }
            foreach (var (k, v) in extra) d[k] = v;
            // The 2 cores are shared with other sessions: /proc/loadavg says how much of them this run had.
            d["loadavg_before"] = loadBefore;
            d["loadavg_after"] = loadAfter;
            d["log_lines_dropped"] = droppedLogLines;
            return d;
        }
        var coldGoal = cold.Qps >= 3000 && cold.P99Ms <= 10 && cold.Errors == 0;
        var pacedGoal = paced.Qps >= 0.99 * PacedRate && paced.P99Ms <= 10 && paced.Errors == 0;
        var tlsGoal = tlsCold.Qps >= 3000 && tlsCold.P99Ms <= 10 && tlsCold.Errors == 0;
        var tlsPacedGoal = tlsPaced.Qps >= 0.99 * PacedRate && tlsPaced.P99Ms <= 10 && tlsPaced.Errors == 0;
        const string TlsSetup = "as setup, but every hop HTTPS (TLS 1.3, ECDSA P-256) with pinned client certificates; replay protection (nonce memory) on in both";
        var sweepText = string.Join("; ", sweep.Select(s => $"{s.Workers} workers: {s.Qps:F0}/s p50 {s.P50Ms:F3} p99 {s.P99Ms:F3} ms"));
        static string Base(string what, int w) => $"redis_get_{what}_{w}_worker{(w == 1 ? "" : "s")}";
        return
        [
            new BenchFigure("serving_cold_single_throughput", "predictions_per_s", "1/s", cold.Qps, Base("per_s", Workers), redisConc.Qps, cold.Requests)
                { Details = D(cold, ">= 3000 single-sample predictions/s at p99 <= 10 ms", coldGoal, ("concurrency_sweep", sweepText)) },
            new BenchFigure("serving_cold_single_p99", "p99_latency", "ms", cold.P99Ms, Base("p99_ms", Workers), redisConc.P99Ms, cold.Requests)
                { Details = D(cold, "p99 <= 10 ms at >= 3000/s", coldGoal) },
            new BenchFigure("serving_cold_single_paced_p99", "p99_latency", "ms", Load.Ms(paced.P99Ms), Base("p99_ms", 1), redis1.P99Ms, paced.Requests)
                { Details = D(paced, $"open loop at {PacedRate}/s: achieved >= 99% of it, p99 <= 10 ms, no errors", pacedGoal, ("offered_per_s", PacedRate)) },
            new BenchFigure("serving_tls_cold_single_throughput", "predictions_per_s", "1/s", tlsCold.Qps, "plain_http_cold_single_per_s", cold.Qps, tlsCold.Requests)
                { Details = D(tlsCold, ">= 3000 single-sample predictions/s at p99 <= 10 ms with TLS on", tlsGoal, ("tls", TlsSetup),
                    ("plain_p99_ms", Math.Round(cold.P99Ms, 3))) },
            new BenchFigure("serving_tls_cold_single_p99", "p99_latency", "ms", tlsCold.P99Ms, "plain_http_cold_single_p99_ms", cold.P99Ms, tlsCold.Requests)
                { Details = D(tlsCold, "p99 <= 10 ms at >= 3000/s with TLS on", tlsGoal, ("tls", TlsSetup), ("plain_per_s", Math.Round(cold.Qps, 1))) },
            new BenchFigure("serving_tls_cold_single_paced_p99", "p99_latency", "ms", Load.Ms(tlsPaced.P99Ms), "plain_http_paced_p99_ms", Load.Ms(paced.P99Ms), tlsPaced.Requests)
                { Details = D(tlsPaced, $"open loop at {PacedRate}/s with TLS on: achieved >= 99% of it, p99 <= 10 ms, no errors", tlsPacedGoal,
                    ("offered_per_s", PacedRate), ("tls", TlsSetup)) },
            new BenchFigure("serving_tls_redis_nonces_cold_single_throughput", "predictions_per_s", "1/s", tlsShared.Qps, "tls_memory_nonces_cold_single_per_s", tlsCold.Qps, tlsShared.Requests)
                { Details = D(tlsShared, extra: [("tls", TlsSetup + "; this initiator keeps its nonces in Redis (replay.store redis: one SET NX PX per request)"),
                    ("memory_nonces_p99_ms", Math.Round(tlsCold.P99Ms, 3))]) },
            new BenchFigure("serving_cold_batch100_throughput", "predictions_per_s", "1/s", coldBatch.Qps * 100, Base("per_s", BatchWorkers), redisBatch.Qps, coldBatch.Requests * 100)
                { Details = D(coldBatch) },
            new BenchFigure("serving_cold_batch100_p99", "p99_latency", "ms", coldBatch.P99Ms, Base("p99_ms", BatchWorkers), redisBatch.P99Ms, coldBatch.Requests)
                { Details = D(coldBatch) },
            new BenchFigure("serving_warm_lookup_no_near_cache_p99", "p99_latency", "ms", warm1.P99Ms, Base("p99_ms", 1), redis1.P99Ms, warm1.Requests)
                { Details = D(warm1, "p99 within 2x the plain Redis GET round trip (same concurrency)", warm1.P99Ms <= 2 * redis1.P99Ms,
                    ("redis_get_p50_ms", Math.Round(redis1.P50Ms, 3)), ("redis_get_p99_ms", Math.Round(redis1.P99Ms, 3)),
                    ("http_floor_p50_ms", Math.Round(floor1.P50Ms, 3)), ("http_floor_p99_ms", Math.Round(floor1.P99Ms, 3))) },
            new BenchFigure($"serving_warm_lookup_no_near_cache_p99_{Workers}_workers", "p99_latency", "ms", warmConc.P99Ms, Base("p99_ms", Workers), redisConc.P99Ms, warmConc.Requests)
                { Details = D(warmConc, "p99 within 2x the plain Redis GET round trip (same concurrency)", warmConc.P99Ms <= 2 * redisConc.P99Ms,
                    ("redis_get_p50_ms", Math.Round(redisConc.P50Ms, 3)), ("redis_get_p99_ms", Math.Round(redisConc.P99Ms, 3)),
                    ("http_floor_p50_ms", Math.Round(floorConc.P50Ms, 3)), ("http_floor_p99_ms", Math.Round(floorConc.P99Ms, 3))) },
            new BenchFigure("serving_warm_lookup_p99", "p99_latency", "ms", near1.Load.P99Ms, Base("p99_ms", 1), redis1.P99Ms, near1.Load.Requests)
                { Details = D(near1.Load, "p99 within 2x the plain Redis GET round trip (same concurrency)", near1.Load.P99Ms <= 2 * redis1.P99Ms,
                    ("near_cache", "default: max_entries 100000, max_age_ms 1000"), ("near_cache_hit_ratio", Math.Round(near1.HitRatio, 4)),
                    ("redis_get_p50_ms", Math.Round(redis1.P50Ms, 3)), ("redis_get_p99_ms", Math.Round(redis1.P99Ms, 3)),
                    ("http_floor_p50_ms", Math.Round(floor1.P50Ms, 3)), ("http_floor_p99_ms", Math.Round(floor1.P99Ms, 3))) },
            new BenchFigure($"serving_warm_lookup_p99_{Workers}_workers", "p99_latency", "ms", nearConc.Load.P99Ms, Base("p99_ms", Workers), redisConc.P99Ms, nearConc.Load.Requests)
                { Details = D(nearConc.Load, "p99 within 2x the plain Redis GET round trip (same concurrency)", nearConc.Load.P99Ms <= 2 * redisConc.P99Ms,
                    ("near_cache", "default: max_entries 100000, max_age_ms 1000"), ("near_cache_hit_ratio", Math.Round(nearConc.HitRatio, 4)),
                    ("redis_get_p50_ms", Math.Round(redisConc.P50Ms, 3)), ("redis_get_p99_ms", Math.Round(redisConc.P99Ms, 3)),
                    ("http_floor_p50_ms", Math.Round(floorConc.P50Ms, 3)), ("http_floor_p99_ms", Math.Round(floorConc.P99Ms, 3))) },
            new BenchFigure("serving_warm_lookup_throughput", "lookups_per_s", "1/s", nearConc.Load.Qps, Base("per_s", Workers), redisConc.Qps, nearConc.Load.Requests)
                { Details = D(nearConc.Load, extra: ("near_cache_hit_ratio", Math.Round(nearConc.HitRatio, 4))) },
            new BenchFigure("serving_warm_lookup_no_near_cache_throughput", "lookups_per_s", "1/s", warmConc.Qps, Base("per_s", Workers), redisConc.Qps, warmConc.Requests)
                { Details = D(warmConc) },
            new BenchFigure("serving_warm_batch100_throughput", "predictions_per_s", "1/s", warmBatch.Qps * 100, Base("per_s", BatchWorkers), redisBatch.Qps, warmBatch.Requests * 100)
                { Details = D(warmBatch) },
            new BenchFigure("serving_warm_batch100_p99", "p99_latency", "ms", warmBatch.P99Ms, Base("p99_ms", BatchWorkers), redisBatch.P99Ms, warmBatch.Requests)
                { Details = D(warmBatch) },
        ];
    }

    /// <summary>A well-spread, deterministic choice of the i-th request's sample.</summary>
    internal static int Pick(int i, int n) => (int)((uint)(i * 2654435761u) % (uint)n);

    /// <summary>Closed loop: <paramref name="workers"/> tasks issue requests back to back for <paramref name="seconds"/>.</summary>
    internal static async Task<Load> Drive(int workers, double seconds, Func<int, Task<bool>> op)
    {
        var until = Stopwatch.GetTimestamp() + (long)(seconds * Stopwatch.Frequency);
        var lat = new List<double>[workers];
        long errors = 0;
        var cost = Cost.Start();
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, workers).Select(wk => Task.Run(async () =>
        {
            var l = lat[wk] = new List<double>(100_000);
            var i = wk * 1_000_003;
            while (Stopwatch.GetTimestamp() < until && l.Count < 2_000_000)
            {
                var t = Stopwatch.GetTimestamp();
                var ok = await op(i++);
                l.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
                if (!ok) Interlocked.Increment(ref errors);
            }
        })));
        var elapsed = sw.Elapsed.TotalSeconds;
        return cost.Finish("closed loop", workers, lat.SelectMany(x => x).ToArray(), errors, elapsed);
    }

    /// <summary>
    /// Open loop: one scheduler thread starts request i at t0 + i/rate whatever the earlier ones did; latency counts from
    /// that scheduled time. A request that cannot start because <paramref name="maxOutstanding"/> are in flight is an
    /// error with infinite latency (it would have waited), so overload shows in p99 instead of hiding.
    /// </summary>
    static async Task<Load> Paced(double rate, double seconds, int maxOutstanding, Func<int, Task<bool>> op)
    {
        var n = (int)(rate * seconds);
        var lat = new double[n];
        var fromSend = new double[n]; // the same, counted from when the request actually started (timer lag excluded)
        var pending = new Task[n];
        long errors = 0, outstanding = 0;
        var period = Stopwatch.Frequency / rate;
        var cost = Cost.Start();
        var t0 = Stopwatch.GetTimestamp();
        async Task One(int i, long due)
        {
            bool ok;
            var sent = Stopwatch.GetTimestamp();
            try { ok = await op(i); } catch (HttpRequestException) { ok = false; }
            lat[i] = Stopwatch.GetElapsedTime(due).TotalMilliseconds;
            fromSend[i] = Stopwatch.GetElapsedTime(sent).TotalMilliseconds;
            if (!ok) Interlocked.Increment(ref errors);
            Interlocked.Decrement(ref outstanding);
        }
        var scheduler = new Thread(() =>
        {
            for (var i = 0; i < n; i++)
            {
                var due = t0 + (long)(i * period);
                while (Stopwatch.GetTimestamp() < due) Thread.Sleep(1);
                if (Interlocked.Read(ref outstanding) >= maxOutstanding)
                {
                    lat[i] = fromSend[i] = double.PositiveInfinity;
                    Interlocked.Increment(ref errors);
                    pending[i] = Task.CompletedTask;
                    continue;
                }
                Interlocked.Increment(ref outstanding);
                pending[i] = One(i, due);
            }
        }) { IsBackground = true, Name = "paced-load" };
        scheduler.Start();
        await Task.Run(scheduler.Join);
        await Task.WhenAll(pending);
        var elapsed = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        Array.Sort(fromSend);
        var load = cost.Finish($"open loop {rate}/s", 0, lat, errors, elapsed);
        return load with { P99FromSendMs = fromSend[Math.Min(n - 1, (int)(0.99 * n))] };
    }

    /// <summary>Process CPU, allocation and GC over one phase.</summary>
    sealed class Cost
    {
        TimeSpan _cpu, _pause;
        long _alloc;
        int _g0, _g1, _g2;

        public static Cost Start()
        {
            GC.Collect(); // start every phase from the same heap state
            GC.WaitForPendingFinalizers();
            return new Cost
            {
                _cpu = Process.GetCurrentProcess().TotalProcessorTime, _pause = GC.GetTotalPauseDuration(), _alloc = GC.GetTotalAllocatedBytes(),
                _g0 = GC.CollectionCount(0), _g1 = GC.CollectionCount(1), _g2 = GC.CollectionCount(2),
            };
        }

        public Load Finish(string kind, int workers, double[] latencies, long errors, double elapsed)
        {
            var cpu = (Process.GetCurrentProcess().TotalProcessorTime - _cpu).TotalMicroseconds;
            var alloc = GC.GetTotalAllocatedBytes() - _alloc;
            Array.Sort(latencies);
            var n = latencies.Length;
            double P(double q) => n == 0 ? double.NaN : latencies[Math.Min(n - 1, (int)(q * n))];
            var ok = Math.Max(1, n - errors);
            return new Load(kind, workers, (n - errors) / elapsed, P(0.50), P(0.99), P(0.999), n, errors,
                cpu / ok, alloc / 1024.0 / ok, GC.CollectionCount(0) - _g0, GC.CollectionCount(1) - _g1, GC.CollectionCount(2) - _g2,
                (GC.GetTotalPauseDuration() - _pause).TotalMilliseconds);
        }
    }

    internal static string LoadAverage() => File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "n/a";
}
