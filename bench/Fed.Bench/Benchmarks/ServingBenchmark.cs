using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Fed.Serving;
using Fed.Serving.Tests;
using StackExchange.Redis;

namespace Fed.Bench.Benchmarks;

/// <summary>
/// Online serving on loopback: two real party services (SQLite warehouses, breast_cancer features) and the initiator
/// with real Redis, all in this process, driven by a bounded closed-loop load generator (fixed workers, fixed duration)
/// that signs every request like a real client. Cold = parties compute (no cache read); warm = served from Redis.
/// Baseline, same run: a plain Redis GET round trip (StackExchange.Redis, same machine, same concurrency).
/// Redis: FED_TEST_REDIS, or a redis-server started here on a free port.
/// </summary>
public sealed class ServingBenchmark : IBenchmark
{
    public string Name => "serving";

    public IReadOnlyList<BenchFigure> Run(BenchContext ctx) => RunAsync(ctx).GetAwaiter().GetResult();

    sealed record Load(double Qps, double P50Ms, double P99Ms, long Requests, long Errors);

    async Task<IReadOnlyList<BenchFigure>> RunAsync(BenchContext ctx)
    {
        Process? redisProc = null;
        var redis = Environment.GetEnvironmentVariable("FED_TEST_REDIS");
        if (string.IsNullOrEmpty(redis))
        {
            var port = FreePort();
            redisProc = Process.Start(new ProcessStartInfo("redis-server", ["--port", port.ToString(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                { RedirectStandardOutput = true, UseShellExecute = false })!;
            redis = "127.0.0.1:" + port;
            await Task.Delay(300);
        }
        var seconds = ctx.Quick ? 1.0 : 5.0;
        var loadBefore = LoadAverage();
        try
        {
            await using var world = await ServingWorld.Create(redis, ic =>
            {
                ic.RateLimit = new RateLimitConfig { PermitsPerSecond = 10_000_000, Burst = 10_000_000 };
                foreach (var p in ic.Parties) p.TimeoutMs = 1000;
            });
            var ids = world.SharedIds;
            using var mux = ConnectionMultiplexer.Connect(redis);
            var db = mux.GetDatabase();
            await db.StringSetAsync("fed:bench:plain", new string('x', 200));

            using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 64, UseProxy = false, PooledConnectionLifetime = TimeSpan.FromMinutes(5) });
            var url = world.Initiator.Url;
            async Task<bool> Send(HttpMethod m, string path, string? body)
            {
                var (status, _) = await ServingWorld.Send(http, m, url + path, "client", world.ClientKey, body);
                return status == 200;
            }
            string Single(Random r) => ServingWorld.PredictBody(world.ModelId, [ids[r.Next(ids.Length)]]);
            string Batch(Random r, bool cache) => ServingWorld.PredictBody(world.ModelId, Enumerable.Range(0, 100).Select(_ => ids[r.Next(ids.Length)]).Distinct().Take(100), useCache: cache);

            // Warm-up: JIT, connection pools, model caches.
            await Drive(8, 1.0, r => Send(HttpMethod.Post, "/v1/predict", Single(r)));
            await Drive(4, 0.5, async _ => { await db.StringGetAsync("fed:bench:plain"); return true; });

            const int conc = 16;
            var redisSeq = await Drive(1, seconds, async _ => { await db.StringGetAsync("fed:bench:plain"); return true; });
            var redisConc = await Drive(conc, seconds, async _ => { await db.StringGetAsync("fed:bench:plain"); return true; });
            ctx.Log($"   redis GET: 1 worker p50 {redisSeq.P50Ms:F3} ms p99 {redisSeq.P99Ms:F3} ms; {conc} workers {redisConc.Qps:F0}/s");

            var coldSingle = await Drive(conc, seconds, r => Send(HttpMethod.Post, "/v1/predict", Single(r)));
            ctx.Log($"   cold single: {coldSingle}");
            var coldBatch = await Drive(4, seconds, r => Send(HttpMethod.Post, "/v1/predict", Batch(r, false)));
            ctx.Log($"   cold batch100: {coldBatch}");
            // Make every shared id warm, then look up.
            foreach (var chunk in ids.Chunk(100)) await Send(HttpMethod.Post, "/v1/predict", ServingWorld.PredictBody(world.ModelId, chunk));
            var warmSeq = await Drive(1, seconds, r => Send(HttpMethod.Get, $"/v1/predictions/{world.ModelId}/{ids[r.Next(ids.Length)]}", null));
            var warmConc = await Drive(conc, seconds, r => Send(HttpMethod.Get, $"/v1/predictions/{world.ModelId}/{ids[r.Next(ids.Length)]}", null));
            ctx.Log($"   warm lookup: 1 worker {warmSeq}; {conc} workers {warmConc}");
            var warmBatch = await Drive(4, seconds, r => Send(HttpMethod.Post, "/v1/predict", Batch(r, true)));
            ctx.Log($"   warm batch100: {warmBatch}");

            Dictionary<string, object> D(Load l, int workers, string? goal = null, bool ok = true)
            {
                var d = new Dictionary<string, object>
                {
                    ["requests_per_s"] = Math.Round(l.Qps, 1), ["p50_ms"] = Math.Round(l.P50Ms, 3), ["p99_ms"] = Math.Round(l.P99Ms, 3),
                    ["requests"] = l.Requests, ["errors"] = l.Errors, ["workers"] = workers, ["seconds"] = seconds,
                    ["setup"] = "2 party services + initiator + load generator in one process on loopback (Kestrel HTTP/1.1 keep-alive, signed requests), Redis on loopback, 2 shared cores",
                };
                if (goal != null) { d["goal"] = goal; d["goal_met"] = ok; }
                // The 2 cores are shared with other builds: the 1-minute load average says how much CPU this run had.
                d["load_average_1m_before"] = loadBefore;
                d["load_average_1m_after"] = LoadAverage();
                return d;
            }
            return
            [
                new BenchFigure("serving_cold_single_throughput", "predictions_per_s", "1/s", coldSingle.Qps, $"redis_get_per_s_{conc}_workers", redisConc.Qps, coldSingle.Requests)
                    { Details = D(coldSingle, conc, ">= 3000 single-sample predictions/s at p99 <= 10 ms", coldSingle.Qps >= 3000 && coldSingle.P99Ms <= 10) },
                new BenchFigure("serving_cold_single_p99", "p99_latency", "ms", coldSingle.P99Ms, "redis_get_p99_ms_1_worker", redisSeq.P99Ms, coldSingle.Requests)
                    { Details = D(coldSingle, conc, "p99 <= 10 ms", coldSingle.P99Ms <= 10) },
                new BenchFigure("serving_cold_batch100_throughput", "predictions_per_s", "1/s", coldBatch.Qps * 100, $"redis_get_per_s_{conc}_workers", redisConc.Qps, coldBatch.Requests * 100)
                    { Details = D(coldBatch, 4) },
                new BenchFigure("serving_warm_lookup_p99", "p99_latency", "ms", warmSeq.P99Ms, "redis_get_p99_ms_1_worker", redisSeq.P99Ms, warmSeq.Requests)
                    { Details = new Dictionary<string, object>(D(warmSeq, 1, "p99 within 2x the plain Redis GET round trip", warmSeq.P99Ms <= 2 * redisSeq.P99Ms))
                        { ["redis_get_p50_ms"] = Math.Round(redisSeq.P50Ms, 3), ["redis_get_p99_ms"] = Math.Round(redisSeq.P99Ms, 3) } },
                new BenchFigure("serving_warm_lookup_throughput", "lookups_per_s", "1/s", warmConc.Qps, $"redis_get_per_s_{conc}_workers", redisConc.Qps, warmConc.Requests)
                    { Details = D(warmConc, conc) },
                new BenchFigure("serving_warm_batch100_throughput", "predictions_per_s", "1/s", warmBatch.Qps * 100, $"redis_get_per_s_{conc}_workers", redisConc.Qps, warmBatch.Requests * 100)
                    { Details = D(warmBatch, 4) },
            ];
        }
        finally
        {
            if (redisProc != null) { redisProc.Kill(); redisProc.WaitForExit(); redisProc.Dispose(); }
        }
    }

    /// <summary>Closed loop: <paramref name="workers"/> tasks issue requests back to back for <paramref name="seconds"/>.</summary>
    static async Task<Load> Drive(int workers, double seconds, Func<Random, Task<bool>> op)
    {
        var until = Stopwatch.GetTimestamp() + (long)(seconds * Stopwatch.Frequency);
        var lat = new List<double>[workers];
        long errors = 0;
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, workers).Select(wk => Task.Run(async () =>
        {
            var r = new Random(wk * 7919 + 1);
            var l = lat[wk] = new List<double>(100_000);
            while (Stopwatch.GetTimestamp() < until && l.Count < 2_000_000)
            {
                var t = Stopwatch.GetTimestamp();
                var ok = await op(r);
                l.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
                if (!ok) Interlocked.Increment(ref errors);
            }
        })));
        var elapsed = sw.Elapsed.TotalSeconds;
        var all = lat.SelectMany(x => x).Order().ToArray();
        double P(double q) => all.Length == 0 ? double.NaN : all[Math.Min(all.Length - 1, (int)(q * all.Length))];
        return new Load(all.Length / elapsed, P(0.50), P(0.99), all.Length, errors);
    }

    static string LoadAverage() => File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "n/a";

    static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }
}
