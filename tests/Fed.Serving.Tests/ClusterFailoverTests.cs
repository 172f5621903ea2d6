using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Fed.Core.Scoring;
using Fed.TestSupport;
using Xunit.Abstractions;

namespace Fed.Serving.Tests;

/// <summary>
/// A Redis Cluster master SIGKILLed while lookups and writes run against the initiator (near cache on): its replica
/// is promoted, lookups go on, every answer is compared with direct scoring (no wrong value, ever), and writes that
/// hit the dead master are sent again (same key, same bytes) and counted. The cluster is the test's own (started by
/// scripts/services.sh in a run directory of its own), so the shared one stays whole.
/// </summary>
public sealed class ClusterFailoverTests(ITestOutputHelper output)
{
    sealed class Tally
    {
        public long Lookups, LookupHits, NotFound, Writes, WriteValues, Cached, NotCached;
        public readonly ConcurrentQueue<string> Wrong = new(), Errors = new();
    }

    [Fact]
    public async Task A_master_killed_under_load_is_replaced_lookups_go_on_no_wrong_value_is_served_and_writes_are_retried()
    {
        await using var cluster = await RedisClusterServer.Start(TestEnvironment.RepoRoot);
        await using var w = await ServingWorld.Create(cluster.Endpoints, c => c.NearCache = new NearCacheConfig { MaxEntries = 10_000, MaxAgeMs = 60_000 });
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        var ids = w.SharedIds;
        var expected = ids.ToDictionary(id => id, id => BitConverter.DoubleToInt64Bits(w.Direct(id, 2)));
        var sw = Stopwatch.StartNew();
        for (var i = 0; sw.Elapsed < TimeSpan.FromSeconds(20) && !w.Initiator.NearCacheLive; i++) await Task.Delay(100);
        Assert.True(w.Initiator.NearCacheLive, "near cache never went live on the cluster (one tracking connection per master)");

        // Every prediction computed and cached before the fault.
        foreach (var chunk in ids.Chunk(50))
        {
            var (s, body) = await ServingWorld.Send(http, HttpMethod.Post, w.Initiator.Url + "/v1/predict", "client", w.ClientKey, ServingWorld.PredictBody(w.ModelId, chunk));
            Assert.True(s == 200, body);
            foreach (var p in JsonDocument.Parse(body).RootElement.GetProperty("predictions").EnumerateArray())
                Assert.True(p.GetProperty("cached").GetBoolean(), $"{p.GetProperty("sample_id")} not cached before the fault");
        }

        var ports = cluster.Endpoints.Split(',').Select(e => int.Parse(e.Split(':')[1])).ToArray();
        var victim = Masters(ports[0]).First();
        var owners = SlotOwners(ports[0]);
        var mux = w.Initiator.Redis.Multiplexer;
        var victimIds = ids.Where(id => owners[mux.GetHashSlot(PredictionKeys.Record(w.ModelId, 2, id))] == victim).ToList();
        var victimKeys = victimIds.Count;
        Assert.True(victimKeys > 20, $"only {victimKeys} keys on the victim master");

        var t = new Tally();
        var phase = 0; // 0 before the kill, 1 during failover, 2 after the client recovered
        var byPhase = new long[3];
        var afterErrors = new ConcurrentQueue<string>();
        long afterLookups = 0;
        using var stop = new CancellationTokenSource();
        async Task Lookups(int seed)
        {
            var rnd = new Random(seed);
            while (!stop.IsCancellationRequested)
            {
                var id = ids[rnd.Next(ids.Length)];
                var ph = Volatile.Read(ref phase);
                var (s, body) = await ServingWorld.Send(http, HttpMethod.Get, w.Initiator.Url + $"/v1/predictions/{w.ModelId}/{id}", "client", w.ClientKey, null);
                Interlocked.Increment(ref t.Lookups);
                Interlocked.Increment(ref byPhase[ph]);
                if (ph == 2) Interlocked.Increment(ref afterLookups);
                if (s == 200)
                {
                    Interlocked.Increment(ref t.LookupHits);
                    var v = JsonDocument.Parse(body).RootElement.GetProperty("predict_value").GetDouble();
                    if (BitConverter.DoubleToInt64Bits(v) != expected[id]) t.Wrong.Enqueue($"lookup {id}: {v:R}");
                }
                else if (s == 404) Interlocked.Increment(ref t.NotFound);
                else { t.Errors.Enqueue($"lookup HTTP {s}"); if (ph == 2) afterErrors.Enqueue($"lookup {id}: HTTP {s}: {body}"); }
            }
        }
        async Task Writes(int seed)
        {
            var rnd = new Random(seed);
            while (!stop.IsCancellationRequested)
            {
                var batch = Enumerable.Range(0, 5).Select(_ => ids[rnd.Next(ids.Length)]).Distinct().ToArray();
                var ph = Volatile.Read(ref phase);
                var (s, body) = await ServingWorld.Send(http, HttpMethod.Post, w.Initiator.Url + "/v1/predict", "client", w.ClientKey, ServingWorld.PredictBody(w.ModelId, batch));
                Interlocked.Increment(ref t.Writes);
                if (s != 200) { t.Errors.Enqueue($"predict HTTP {s}"); if (ph == 2) afterErrors.Enqueue($"predict HTTP {s}: {body}"); continue; }
                foreach (var p in JsonDocument.Parse(body).RootElement.GetProperty("predictions").EnumerateArray())
                {
                    var id = p.GetProperty("sample_id").GetString()!;
                    Interlocked.Increment(ref t.WriteValues);
                    if (BitConverter.DoubleToInt64Bits(p.GetProperty("value").GetDouble()) != expected[id]) t.Wrong.Enqueue($"predict {id}");
                    if (p.GetProperty("cached").GetBoolean()) Interlocked.Increment(ref t.Cached);
                    else { Interlocked.Increment(ref t.NotCached); if (ph == 2) afterErrors.Enqueue($"predict {id}: not cached"); }
                }
            }
        }
        var load = new[] { Lookups(1), Lookups(2), Lookups(3), Writes(4), Writes(5) };
        await Task.Delay(1500);

        var victimPort = int.Parse(victim.Split(':')[1]);
        var survivor = ports.First(p => p != victimPort);
        Process.GetProcessById(cluster.Pid(victimPort)).Kill(); // SIGKILL
        var killedAt = sw.Elapsed;
        Volatile.Write(ref phase, 1);

        // The replica takes over the victim's slots (cluster-node-timeout 2 s, then an election).
        while (Masters(survivor).Contains(victim) || !RedisClusterServer.Cli(survivor, "cluster", "info").Contains("cluster_state:ok"))
        {
            Assert.True(sw.Elapsed - killedAt < TimeSpan.FromSeconds(30), "no replica promoted within 30 s");
            await Task.Delay(100);
        }
        var promoted = sw.Elapsed - killedAt;
        // The client follows: a lookup of a key in the victim's old slots answers again.
        var probe = victimIds[0];
        while (true)
        {
            var (s, _) = await ServingWorld.Send(http, HttpMethod.Get, w.Initiator.Url + $"/v1/predictions/{w.ModelId}/{probe}", "client", w.ClientKey, null);
            if (s is 200 or 404) break;
            Assert.True(sw.Elapsed - killedAt < TimeSpan.FromSeconds(60), "lookups of the failed master's keys did not come back within 60 s");
            await Task.Delay(100);
        }
        var recovered = sw.Elapsed - killedAt;
        await Task.Delay(1000); // the client's other connections settle
        Volatile.Write(ref phase, 2);
        await Task.Delay(3000);
        stop.Cancel();
        await Task.WhenAll(load);

        var metrics = await w.Ops(http, w.Initiator.Url);
        var retries = Counter(metrics, "fed_cache_write_retries_total");
        var cacheErrors = Counter(metrics, "fed_cache_errors_total");
        output.WriteLine($"victim {victim} ({victimKeys} of {ids.Length} keys); promoted after {promoted.TotalSeconds:F1} s, lookups back after {recovered.TotalSeconds:F1} s");
        output.WriteLine($"lookups {t.Lookups} (hits {t.LookupHits}, not found {t.NotFound}, errors {t.Errors.Count(e => e.StartsWith("lookup"))}); " +
                         $"predict calls {t.Writes} ({t.WriteValues} values, cached {t.Cached}, not cached {t.NotCached}); write retries {retries}, cache write failures {cacheErrors}; lookups by phase (before / failover / after) {string.Join(" / ", byPhase)}");

        Assert.Empty(t.Wrong); // no wrong value, ever: before, during and after the failover
        Assert.Empty(afterErrors); // after the client followed the promotion: every lookup and write succeeds
        Assert.True(afterLookups > 50, $"only {afterLookups} lookups after recovery");
        Assert.True(t.Writes > 10 && t.WriteValues > 0);
        Assert.True(retries > 0, "no cache write was retried: the writes never met the dead master");
        // After the failover every prediction reads back right (a write the dead master acknowledged but had not yet
        // replicated may be lost: then it is absent, never different).
        var lost = 0;
        foreach (var id in ids)
        {
            var (s, body) = await ServingWorld.Send(http, HttpMethod.Get, w.Initiator.Url + $"/v1/predictions/{w.ModelId}/{id}", "client", w.ClientKey, null);
            if (s == 404) { lost++; continue; }
            Assert.Equal(200, s);
            Assert.Equal(expected[id], BitConverter.DoubleToInt64Bits(JsonDocument.Parse(body).RootElement.GetProperty("predict_value").GetDouble()));
        }
        output.WriteLine($"read back after failover: {ids.Length - lost} right, {lost} absent (acknowledged by the dead master, not replicated)");
    }

    /// <summary>host:port of each master that holds slots and is not failed, as node <paramref name="port"/> sees the cluster.</summary>
    static List<string> Masters(int port) =>
        RedisClusterServer.Cli(port, "cluster", "nodes").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' '))
            .Where(f => f[2].Contains("master") && !f[2].Contains("fail") && f.Length > 8)
            .Select(f => f[1].Split('@')[0]).ToList();

    /// <summary>Slot to host:port of the master serving it, as node <paramref name="port"/> sees the cluster.</summary>
    static string[] SlotOwners(int port)
    {
        var owners = new string[16384];
        foreach (var f in RedisClusterServer.Cli(port, "cluster", "nodes").Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')))
            foreach (var range in f.Skip(8))
            {
                if (range.StartsWith('[')) continue; // a slot being migrated
                var r = range.Split('-');
                var lo = int.Parse(r[0]); var hi = r.Length > 1 ? int.Parse(r[1]) : lo;
                for (var slot = lo; slot <= hi; slot++) owners[slot] = f[1].Split('@')[0];
            }
        return owners;
    }

    static double Counter(string metrics, string name) =>
        metrics.Split('\n').Where(l => l.StartsWith(name, StringComparison.Ordinal) && !l.StartsWith('#'))
            .Select(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture)).Sum();
}
