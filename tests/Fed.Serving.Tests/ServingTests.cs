using System.Collections.Concurrent;
using System.Text.Json;
using Fed.Core.Scoring;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Fed.Serving.Tests;

public class WorldFixture : IAsyncLifetime
{
    public ServingWorld World { get; private set; } = null!;
    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(30) };
    protected virtual string Redis => ServingWorld.RequireRedis();
    public async Task InitializeAsync() => World = await ServingWorld.Create(Redis);
    public async Task DisposeAsync() { Http.Dispose(); if (World != null) await World.DisposeAsync(); }
}

/// <summary>The same world on the Redis Cluster of scripts/test.sh (FED_TEST_REDIS_CLUSTER: 3 masters + 3 replicas).</summary>
public sealed class ClusterWorldFixture : WorldFixture
{
    protected override string Redis => ServingWorld.RequireRedisCluster();
}

/// <summary>Real party services and initiator on loopback, real Redis (FED_TEST_REDIS), real breast_cancer data.</summary>
public sealed class ServingTests(WorldFixture f) : ServingContract(f), IClassFixture<WorldFixture>;

/// <summary>Every serving test again with the cache, nonces and lookups on a Redis Cluster.</summary>
public sealed class ServingClusterTests(ClusterWorldFixture f) : ServingContract(f), IClassFixture<ClusterWorldFixture>;

/// <summary>What serving must do whichever Redis it has (single node or cluster): the tests, run by each subclass.</summary>
public abstract class ServingContract(WorldFixture f)
{
    ServingWorld W => f.World;
    HttpClient Http => f.Http;

    Task<(int Status, string Body)> Client(HttpMethod m, string path, string? body) =>
        ServingWorld.Send(Http, m, W.Initiator.Url + path, "client", W.ClientKey, body);

    async Task<JsonElement> Predict(IEnumerable<string> ids, string mode = "realtime", bool useCache = false, string? url = null)
    {
        var (status, body) = await ServingWorld.Send(Http, HttpMethod.Post, (url ?? W.Initiator.Url) + "/v1/predict", "client", W.ClientKey,
            ServingWorld.PredictBody(W.ModelId, ids, mode, useCache));
        Assert.True(status == 200, $"HTTP {status}: {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    static void SameBits(double expected, double actual, string what) =>
        Assert.True(BitConverter.DoubleToInt64Bits(expected) == BitConverter.DoubleToInt64Bits(actual), $"{what}: expected {expected:R}, got {actual:R}");

    [Theory]
    [InlineData("realtime")]
    [InlineData("hourly")]
    [InlineData("offline")]
    public async Task Predictions_equal_direct_Fed_Core_scoring_bit_for_bit(string mode)
    {
        var ids = W.SharedIds;
        Assert.True(ids.Length > 450, "expected ~90% of 569 ids shared");
        foreach (var chunk in ids.Chunk(100))
        {
            var r = await Predict(chunk, mode);
            Assert.Equal(2, r.GetProperty("version").GetInt32());
            Assert.True(r.GetProperty("complete").GetBoolean());
            foreach (var p in r.GetProperty("parties").EnumerateArray())
            {
                Assert.Equal("ok", p.GetProperty("status").GetString());
                Assert.Equal(chunk.Length, p.GetProperty("coverage").GetProperty("rows_scored").GetInt64());
            }
            foreach (var p in r.GetProperty("predictions").EnumerateArray())
            {
                var id = p.GetProperty("sample_id").GetString()!;
                Assert.Equal("ok", p.GetProperty("status").GetString());
                SameBits(W.Direct(id, 2), p.GetProperty("value").GetDouble(), $"{mode} {id}");
            }
        }
    }

    [Fact]
    public async Task Predictions_equal_the_batch_path_fed_predict_local()
    {
        var outCsv = Path.Combine(W.Dir, "local.csv");
        var local = Fed.SparkPredict.LocalPredictor.Run(Path.Combine(W.Dir, "v2"),
            [("guest", Path.Combine(ServingWorld.DataDir, "guest.csv")), ("host", Path.Combine(ServingWorld.DataDir, "host.csv"))], outCsv);
        var expected = File.ReadAllLines(outCsv).Skip(1).Select(l => l.Split(',')).ToDictionary(a => a[0], a => double.Parse(a[1], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(W.SharedIds.Length, expected.Count);
        foreach (var chunk in W.SharedIds.Chunk(100))
            foreach (var p in (await Predict(chunk)).GetProperty("predictions").EnumerateArray())
                SameBits(expected[p.GetProperty("sample_id").GetString()!], p.GetProperty("value").GetDouble(), "vs predict local");
        Assert.Equal(W.GuestOnlyIds.Length, local.Predictions.Missing.Count(m => m.MissingParties.Contains("host")));
    }

    [Fact]
    public async Task A_sample_one_party_lacks_is_sample_not_found_without_a_value()
    {
        var missing = W.GuestOnlyIds.Take(3).ToArray();
        Assert.NotEmpty(missing);
        var r = await Predict([W.SharedIds[0], .. missing]);
        Assert.False(r.GetProperty("complete").GetBoolean());
        var preds = r.GetProperty("predictions").EnumerateArray().ToList();
        Assert.Equal("ok", preds[0].GetProperty("status").GetString());
        foreach (var p in preds.Skip(1))
        {
            Assert.Equal("sample_not_found", p.GetProperty("status").GetString());
            Assert.False(p.TryGetProperty("value", out _));
            Assert.Equal("sample_not_found", p.GetProperty("parties").GetProperty("host").GetString());
        }
    }

    [Fact]
    public async Task Party_scores_inline_features_only_from_a_permitted_caller_names_missing_ones_and_never_returns_features()
    {
        var id = W.SharedIds[5];
        var m = W.Models[("host", 2)];
        var inline = m.Features.Select((name, i) => (name, v: W.Features["host"][id][i])).ToDictionary(x => x.name, x => (double?)x.v);
        var withNull = new Dictionary<string, double?>(inline) { [m.Features[3]] = null };
        var body = JsonSerializer.Serialize(new
        {
            model_id = W.ModelId, version = 2, mode = "realtime", sample_ids = new[] { id, "inline-2" },
            features = new Dictionary<string, Dictionary<string, double?>> { [id] = inline, ["inline-2"] = withNull },
        });
        // The initiator may not choose feature values: k + 1 answers would give it the host's weights.
        var (refused, why) = await ServingWorld.Send(Http, HttpMethod.Post, W.Parties["host"].Url + "/v1/partial-scores", "initiator", W.HostKey, body);
        Assert.Equal(403, refused);
        Assert.Contains("inline_features", why);
        var (status, text) = await ServingWorld.Send(Http, HttpMethod.Post, W.Parties["host"].Url + "/v1/partial-scores", "feeder", W.FeederKey, body);
        Assert.True(status == 200, text);
        var results = JsonDocument.Parse(text).RootElement.GetProperty("results").EnumerateArray().ToList();
        var expected = new double[1];
        new PartialScorer(m).ScoreRow(W.Features["host"][id], expected);
        SameBits(expected[0], results[0].GetProperty("scores")[0].GetDouble(), "inline score");
        Assert.Equal("features_missing", results[1].GetProperty("status").GetString());
        Assert.Equal(m.Features[3], results[1].GetProperty("missing_features")[0].GetString());
        // Only partial scores leave a party: no feature value appears in the answer.
        Assert.DoesNotContain(W.Features["host"][id][0].ToString("R"), text);
        // The hand-written coverage is exactly FeatureCoverage's report.
        var party = W.Parties["host"];
        var lm = party.Models.Get(W.ModelId, 2);
        var coverage = new FeatureCoverage(lm.Model.Features);
        party.Score(lm, PartyService.ParseRequest(System.Text.Encoding.UTF8.GetBytes(body), 1000), coverage);
        Assert.Equal(1, coverage.Missing[3]);
        Assert.Equal(JsonSerializer.Serialize(coverage.ToReport()), JsonDocument.Parse(text).RootElement.GetProperty("coverage").GetRawText());
    }

    [Fact]
    public async Task Online_predictions_say_whether_Redis_acknowledged_the_write_and_are_still_answered_with_Redis_down()
    {
        var ids = W.SharedIds.Skip(300).Take(5).ToArray();
        foreach (var p in (await Predict(ids)).GetProperty("predictions").EnumerateArray())
        {
            Assert.Equal("online", p.GetProperty("source").GetString());
            Assert.True(p.GetProperty("cached").GetBoolean());
        }
        // A Redis nobody listens on: right answers, none claimed cached, the error counted.
        var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        var port = ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        var cfg = W.InitiatorConfig(W.Parties.ToDictionary(x => x.Key, x => x.Value.Url));
        cfg.Redis = $"127.0.0.1:{port},connectTimeout=300";
        await using var init = new InitiatorService(cfg);
        await init.StartAsync();
        var r = await Predict(ids, url: init.Url);
        Assert.True(r.GetProperty("complete").GetBoolean());
        foreach (var p in r.GetProperty("predictions").EnumerateArray())
        {
            SameBits(W.Direct(p.GetProperty("sample_id").GetString()!, 2), p.GetProperty("value").GetDouble(), "redis down");
            Assert.False(p.GetProperty("cached").GetBoolean());
        }
        Assert.Contains("fed_cache_errors_total 1", await W.Ops(Http, init.Url));
    }

    [Fact]
    public async Task Request_logs_are_one_JSON_object_per_line_carrying_the_request_id()
    {
        var path = Path.Combine(W.Dir, "guest-" + Guid.NewGuid().ToString("N")[..6] + ".log");
        var body = "{\"model_id\":\"" + W.ModelId + "\",\"sample_ids\":[\"" + W.SharedIds[0] + "\"],\"mode\":\"realtime\"}";
        await using (var party = new PartyService(W.PartyConfig("guest", "file:" + path)))
        {
            await party.StartAsync();
            var bytes = System.Text.Encoding.UTF8.GetBytes(body);
            using var msg = new HttpRequestMessage(HttpMethod.Post, party.Url + "/v1/partial-scores") { Content = new ByteArrayContent(bytes) };
            msg.Headers.Add("X-Request-Id", "trace-42");
            RequestSigning.Apply(msg, W.GuestKey, "initiator", bytes);
            using var resp = await Http.SendAsync(msg);
            Assert.Equal(System.Net.HttpStatusCode.OK, resp.StatusCode);
            Assert.Equal("trace-42", resp.Headers.GetValues("X-Request-Id").Single());
        }
        // Microsoft.Extensions.Logging's JSON console formatter: one object per line, the fields under "State".
        var lines = File.ReadAllLines(path).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.True(lines.Any(x => x.GetProperty("Message").GetString() == "listening"), File.ReadAllText(path));
        var line = lines.Single(x => x.GetProperty("EventId").GetInt32() == 1);
        Assert.Equal("Information", line.GetProperty("LogLevel").GetString());
        Assert.Equal("party:guest", line.GetProperty("Category").GetString());
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", line.GetProperty("Timestamp").GetString());
        var state = line.GetProperty("State");
        Assert.Equal("trace-42", state.GetProperty("request_id").GetString());
        Assert.Equal("initiator", state.GetProperty("caller").GetString());
        Assert.Equal("POST", state.GetProperty("method").GetString());
        Assert.Equal("/v1/partial-scores", state.GetProperty("route").GetString());
        Assert.Equal(200, state.GetProperty("status").GetInt32());
        Assert.True(state.GetProperty("duration_ms").GetDouble() > 0);
        Assert.StartsWith("request trace-42 initiator POST /v1/partial-scores 200 ", line.GetProperty("Message").GetString());
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task Log_lines_never_carry_a_secret_and_the_file_is_0600()
    {
        var path = Path.Combine(W.Dir, "redact-" + Guid.NewGuid().ToString("N")[..6] + ".log");
        const string pw = "hunter2-log-secret";
        await using (var log = new ServiceLog("party:t", "file:" + path))
        {
            Assert.True(log.Enabled);
            log.Write(Microsoft.Extensions.Logging.LogLevel.Warning, $"cannot reach 127.0.0.1:6379,password={pw}",
                ("error", $"odbc:dialect=postgres;Driver={{PostgreSQL Unicode}};UID=fed;PWD={pw};Port=5432"),
                ("cause", new InvalidOperationException($"redis://fed:{pw}@h:6379")), ("count", 3), ("ok", true));
        }
        Assert.Equal("0600", Fed.Core.Security.SecretFiles.Octal(File.GetUnixFileMode(path)));
        var text = File.ReadAllText(path);
        Assert.DoesNotContain(pw, text);
        var line = JsonDocument.Parse(text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Single()).RootElement;
        Assert.Equal("Warning", line.GetProperty("LogLevel").GetString());
        Assert.Equal("cannot reach 127.0.0.1:6379,password=***", line.GetProperty("Message").GetString());
        var state = line.GetProperty("State");
        Assert.Equal("odbc:dialect=postgres;Driver={PostgreSQL Unicode};UID=fed;PWD=***;Port=5432", state.GetProperty("error").GetString());
        Assert.Contains("redis://fed:***@h:6379", state.GetProperty("cause").GetString());
        Assert.Equal(3, state.GetProperty("count").GetInt32());
        Assert.True(state.GetProperty("ok").GetBoolean());
    }

    static async Task<WebApplication> FakeParty(RequestDelegate handler)
    {
        var b = WebApplication.CreateSlimBuilder();
        b.Logging.ClearProviders();
        b.WebHost.UseUrls("http://127.0.0.1:0");
        var app = b.Build();
        app.MapPost("/v1/partial-scores", handler);
        await app.StartAsync();
        return app;
    }

    [Theory]
    [InlineData("timeout")]
    [InlineData("error")]
    [InlineData("garbage")]
    public async Task A_party_timing_out_or_failing_gives_explicit_partial_failure_never_a_score(string how)
    {
        await using var fake = await FakeParty(async ctx =>
        {
            if (how == "timeout") { await Task.Delay(5000, ctx.RequestAborted); return; }
            if (how == "error") { ctx.Response.StatusCode = 500; await ctx.Response.WriteAsync("{\"error\":\"disk on fire\"}"); return; }
            await ctx.Response.WriteAsync("{\"party\":\"host\",\"model_id\":\"x\"}");
        });
        var cfg = W.InitiatorConfig(new Dictionary<string, string> { ["guest"] = W.Parties["guest"].Url, ["host"] = fake.Urls.First() });
        cfg.Parties.Single(p => p.PartyId == "host").TimeoutMs = 300;
        await using var init = new InitiatorService(cfg);
        await init.StartAsync();
        var ids = W.SharedIds.Take(10).ToArray();
        var started = DateTime.UtcNow;
        var r = await Predict(ids, url: init.Url);
        if (how == "timeout") Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(3), $"the timeout must bound the request (took {(DateTime.UtcNow - started).TotalMilliseconds:F0} ms: {r.GetProperty("parties")})");
        Assert.False(r.GetProperty("complete").GetBoolean());
        var host = r.GetProperty("parties").EnumerateArray().Single(p => p.GetProperty("party").GetString() == "host");
        Assert.Equal(how == "timeout" ? "timeout" : "error", host.GetProperty("status").GetString());
        Assert.Equal("ok", r.GetProperty("parties").EnumerateArray().Single(p => p.GetProperty("party").GetString() == "guest").GetProperty("status").GetString());
        foreach (var p in r.GetProperty("predictions").EnumerateArray())
        {
            Assert.Equal("partial_failure", p.GetProperty("status").GetString());
            Assert.False(p.TryGetProperty("value", out _));
            Assert.Equal(how == "timeout" ? "timeout" : "error", p.GetProperty("parties").GetProperty("host").GetString());
        }
        var metrics = (await ServingWorld.Send(Http, HttpMethod.Get, init.Url + "/metrics", "admin", W.AdminKey, null)).Body;
        Assert.Contains($"fed_party_requests_total{{party=\"host\",status=\"{(how == "timeout" ? "timeout" : "error")}\"}} 1", metrics);
        Assert.Contains("fed_predictions_total{status=\"partial_failure\"} 10", metrics);
    }

    [Fact]
    public async Task Unknown_model_is_404_at_initiator_and_party()
    {
        var (s1, b1) = await Client(HttpMethod.Post, "/v1/predict", ServingWorld.PredictBody("no-such-model", ["a"]));
        Assert.Equal(404, s1);
        Assert.Contains("unknown model id 'no-such-model'", b1);
        var (s2, b2) = await ServingWorld.Send(Http, HttpMethod.Post, W.Parties["guest"].Url + "/v1/partial-scores", "initiator", W.GuestKey,
            ServingWorld.PredictBody("no-such-model", ["a"]).Replace(",\"use_cache\":false", ""));
        Assert.Equal(404, s2);
        Assert.Contains("unknown model id", b2);
        var (s3, _) = await Client(HttpMethod.Post, "/v1/predict", ServingWorld.PredictBody("bad id;drop", ["a"]));
        Assert.Equal(400, s3);
    }

    [Fact]
    public async Task Unsigned_badly_signed_stale_and_unknown_caller_requests_are_refused()
    {
        var body = ServingWorld.PredictBody(W.ModelId, [W.SharedIds[0]]);
        var url = W.Initiator.Url + "/v1/predict";
        var (s1, b1) = await ServingWorld.Send(Http, HttpMethod.Post, url, "client", W.ClientKey, body, sign: false);
        Assert.Equal(401, s1);
        Assert.Contains("unsigned", b1);
        var (s2, b2) = await ServingWorld.Send(Http, HttpMethod.Post, url, "client", W.HostKey, body);
        Assert.Equal(401, s2);
        Assert.Contains("bad signature", b2);
        var (s3, b3) = await ServingWorld.Send(Http, HttpMethod.Post, url, "client", W.ClientKey, body, timestamp: DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 600);
        Assert.Equal(401, s3);
        Assert.Contains("stale", b3);
        var (s4, _) = await ServingWorld.Send(Http, HttpMethod.Post, url, "mallory", W.ClientKey, body);
        Assert.Equal(401, s4);
        // A party refuses the initiator's key for another party, and the client's key.
        var (s5, _) = await ServingWorld.Send(Http, HttpMethod.Post, W.Parties["host"].Url + "/v1/partial-scores", "initiator", W.GuestKey,
            "{\"model_id\":\"" + W.ModelId + "\",\"sample_ids\":[\"a\"],\"mode\":\"realtime\"}");
        Assert.Equal(401, s5);
        // Admin endpoints need an admin caller.
        var (s6, _) = await Client(HttpMethod.Post, $"/v1/admin/models/{W.ModelId}/rollback", "{}");
        Assert.Equal(403, s6);
    }

    [Fact]
    public void Signatures_are_the_documented_HMAC_and_only_exactly_that_verifies()
    {
        var key = W.ClientKey;
        var body = "{\"model_id\":\"m\"}"u8.ToArray();
        var ts = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var nonce = RequestSigning.NewNonce();
        foreach (var path in new[] { "/v1/predict", "/v1/predictions/m/" + new string('\u00e9', 700) + "?version=2" }) // the second exceeds the stack buffer
        {
            var canonical = $"POST\n{path}\n{ts}\n{nonce}\nclient\n{Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(body))}";
            var documented = "v2=" + Convert.ToHexStringLower(System.Security.Cryptography.HMACSHA256.HashData(key, System.Text.Encoding.UTF8.GetBytes(canonical)));
            var sig = RequestSigning.Sign(key, "POST", path, ts, nonce, "client", body);
            Assert.Equal(documented, sig);
            string? Verify(string s, byte[]? b = null, string? n = null, string? p = null) =>
                RequestSigning.Verify(_ => key, "post", p ?? path, "client", ts.ToString(), n ?? nonce, s, b ?? body, 30);
            Assert.Null(Verify(sig));
            Assert.Equal("bad signature", Verify("v2=" + sig[3..].ToUpperInvariant()));
            Assert.Equal("bad signature", Verify("v1=" + sig[3..]));
            Assert.Equal("bad signature", Verify(sig[..^1]));
            Assert.Equal("bad signature", Verify(sig + "0"));
            Assert.Equal("bad signature", Verify(sig[..^1] + (sig[^1] == '0' ? '1' : '0')));
            Assert.Equal("bad signature", Verify(sig, "{\"model_id\":\"n\"}"u8.ToArray()));
            Assert.Equal("bad signature", Verify(sig, n: RequestSigning.NewNonce())); // the nonce is signed
            Assert.Equal("bad signature", Verify(sig, p: path.ToUpperInvariant())); // so is the exact request target
            Assert.Contains("X-Fed-Nonce must be", Verify(sig, n: "short"));
        }
    }

    [Fact]
    public async Task A_replayed_request_is_refused_and_the_nonce_memory_is_bounded()
    {
        var nonce = RequestSigning.NewNonce();
        var ts = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var body = ServingWorld.PredictBody(W.ModelId, [W.SharedIds[0]]);
        var first = await ServingWorld.Send(Http, HttpMethod.Post, W.Initiator.Url + "/v1/predict", "client", W.ClientKey, body, ts, nonce: nonce);
        Assert.Equal(200, first.Status);
        var again = await ServingWorld.Send(Http, HttpMethod.Post, W.Initiator.Url + "/v1/predict", "client", W.ClientKey, body, ts, nonce: nonce);
        Assert.Equal(401, again.Status);
        Assert.Contains("replayed", again.Body);
        // The same nonce from another caller is that caller's own.
        var admin = await ServingWorld.Send(Http, HttpMethod.Post, W.Initiator.Url + "/v1/predict", "admin", W.AdminKey, body, ts, nonce: nonce);
        Assert.Equal(200, admin.Status);

        // Memory: full -> refused (fail closed); an old generation is forgotten after two windows.
        var store = new MemoryNonceStore(3, TimeSpan.FromMilliseconds(200));
        Assert.Null(await store.TryUse("c", "n1"));
        Assert.Null(await store.TryUse("c", "n2"));
        Assert.Contains("replayed", await store.TryUse("c", "n1"));
        Assert.Null(await store.TryUse("c", "n3"));
        Assert.Contains("replay memory full", await store.TryUse("c", "n4"));
        Assert.Equal(3, store.Count);
        await Task.Delay(450);
        Assert.Null(await store.TryUse("c", "n4"));
        Assert.Equal(1, store.Count);
    }

    [Fact]
    public async Task A_shared_Redis_nonce_store_refuses_a_replay_sent_to_another_initiator_and_fails_closed_without_Redis()
    {
        var prefix = "fed:test-nonce:" + Guid.NewGuid().ToString("N")[..8] + ":";
        using var a = new RedisNonceStore(W.Redis, prefix, TimeSpan.FromSeconds(61));
        using var b = new RedisNonceStore(W.Redis, prefix, TimeSpan.FromSeconds(61));
        var nonce = RequestSigning.NewNonce();
        Assert.Null(await a.TryUse("client", nonce));
        Assert.Contains("replayed", await b.TryUse("client", nonce));
        var ttl = W.Initiator.Redis.KeyTimeToLive(prefix + "client:" + nonce);
        Assert.True(ttl is { TotalSeconds: > 55 and <= 61 }, $"ttl {ttl}");
        var port = Fed.TestSupport.LoopbackPorts.Free();
        using var down = new RedisNonceStore($"127.0.0.1:{port},connectTimeout=200,syncTimeout=200", prefix, TimeSpan.FromSeconds(61));
        Assert.Contains("unavailable", await down.TryUse("client", RequestSigning.NewNonce()));
    }

    [Fact]
    public async Task Oversized_requests_and_batches_are_refused()
    {
        var big = ServingWorld.PredictBody(W.ModelId, Enumerable.Range(0, 60000).Select(i => $"sample-{i:D12}"));
        Assert.True(big.Length > 1 << 20);
        // Kestrel drops the connection rather than drain a body over the limit, so the big request goes on a connection
        // of its own (not reused by the requests below) and waits for 100-continue (not cut off while still sending).
        using (var once = new HttpClient())
        using (var msg = new HttpRequestMessage(HttpMethod.Post, W.Initiator.Url + "/v1/predict"))
        {
            var bytes = System.Text.Encoding.UTF8.GetBytes(big);
            msg.Content = new ByteArrayContent(bytes) { Headers = { ContentType = new("application/json") } };
            msg.Headers.ExpectContinue = true;
            RequestSigning.Apply(msg, W.ClientKey, "client", bytes);
            using var resp = await once.SendAsync(msg);
            Assert.Equal(413, (int)resp.StatusCode);
            Assert.Contains("exceeds the limit", await resp.Content.ReadAsStringAsync());
        }
        var (s2, b2) = await Client(HttpMethod.Post, "/v1/predict", ServingWorld.PredictBody(W.ModelId, W.SharedIds.Take(101)));
        Assert.Equal(400, s2);
        Assert.Contains("limit is 100", b2);
        var (s3, _) = await Client(HttpMethod.Post, "/v1/predict", "{\"model_id\":\"" + W.ModelId + "\",\"sample_ids\":[\"a\",\"a\"]}");
        Assert.Equal(400, s3);
        var (s4, _) = await Client(HttpMethod.Post, "/v1/predict", "{not json");
        Assert.Equal(400, s4);
    }

    [Fact]
    public async Task Rate_limit_is_per_caller()
    {
        var cfg = W.PartyConfig("guest");
        cfg.RateLimit = new RateLimitConfig { PermitsPerSecond = 1, Burst = 3 };
        await using var party = new PartyService(cfg);
        await party.StartAsync();
        var body = "{\"model_id\":\"" + W.ModelId + "\",\"sample_ids\":[\"" + W.SharedIds[0] + "\"],\"mode\":\"realtime\"}";
        // Warm up (JIT, connections) on another caller's bucket, so the five below fit well inside one refill (1 s).
        Assert.Equal(200, (await ServingWorld.Send(Http, HttpMethod.Post, party.Url + "/v1/partial-scores", "feeder", W.FeederKey, body)).Status);
        var codes = new List<int>();
        for (var i = 0; i < 5; i++) codes.Add((await ServingWorld.Send(Http, HttpMethod.Post, party.Url + "/v1/partial-scores", "initiator", W.GuestKey, body)).Status);
        Assert.Equal([200, 200, 200, 429, 429], codes);
        Assert.Equal(2, ServingWorld.Sample(await W.Ops(Http, party.Url), "fed_rate_limited_total{caller=\"initiator\"}"));
        // Another caller has its own bucket.
        Assert.Equal(200, (await ServingWorld.Send(Http, HttpMethod.Post, party.Url + "/v1/partial-scores", "admin", W.AdminKey, body)).Status);
    }

    [Fact]
    public async Task Predictions_are_cached_in_Redis_with_the_version_in_the_key_and_served_by_GET()
    {
        var ids = W.SharedIds.Skip(200).Take(20).ToArray();
        foreach (var id in ids) await W.Initiator.Redis.KeyDeleteAsync(PredictionKeys.Record(W.ModelId, 2, id));
        var (s0, _) = await Client(HttpMethod.Get, $"/v1/predictions/{W.ModelId}/{ids[0]}", null);
        Assert.Equal(404, s0);
        var r = await Predict(ids);
        foreach (var id in ids)
        {
            var raw = await W.Initiator.Redis.StringGetAsync($"fed:pred:{{{W.ModelId}:v2:{id}}}"); // the documented layout: hash tag per prediction
            Assert.True(raw.HasValue, "key fed:pred:{<model>:v<version>:<sample>} must exist");
            var rec = PredictionRecord.Parse(raw!, "k");
            SameBits(W.Direct(id, 2), rec.PredictValue, "cached " + id);
            Assert.Equal("online", rec.Source);
            Assert.Equal(2, rec.Version);
            var (s, body) = await Client(HttpMethod.Get, $"/v1/predictions/{W.ModelId}/{id}", null);
            Assert.Equal(200, s);
            SameBits(W.Direct(id, 2), JsonDocument.Parse(body).RootElement.GetProperty("predict_value").GetDouble(), "GET " + id);
        }
        var cached = await Predict(ids, useCache: true);
        Assert.All(cached.GetProperty("predictions").EnumerateArray(), p => Assert.Equal("cache", p.GetProperty("source").GetString()));
        Assert.Empty(cached.GetProperty("parties").EnumerateArray());
        // A batch-loaded record (written by another path in the shared format) is served too.
        var batch = new PredictionRecord { ModelId = W.ModelId, Version = 2, SampleId = "batch-only-sample", PredictValue = 0.125, Dt = ServingWorld.Dt, WrittenAt = "2026-11-21T00:00:00.000Z" };
        await W.Initiator.Redis.StringSetAsync(PredictionKeys.Record(W.ModelId, 2, batch.SampleId), batch.ToJson());
        var (sb, bb) = await Client(HttpMethod.Get, $"/v1/predictions/{W.ModelId}/batch-only-sample", null);
        Assert.Equal(200, sb);
        Assert.Equal(0.125, JsonDocument.Parse(bb).RootElement.GetProperty("predict_value").GetDouble());
        Assert.Equal("batch", JsonDocument.Parse(bb).RootElement.GetProperty("source").GetString());
        var metrics = await W.Ops(Http, W.Initiator.Url);
        // The gauge is computed at scrape from the two counters it summarises.
        var hit = ServingWorld.Sample(metrics, "fed_cache_lookups_total{result=\"hit\"}");
        var miss = ServingWorld.Sample(metrics, "fed_cache_lookups_total{result=\"miss\"}");
        Assert.True(hit >= ids.Length + 2, $"hits {hit}");
        Assert.Equal(hit / (hit + miss), ServingWorld.Sample(metrics, "fed_cache_hit_ratio"), 12);
    }

    [Fact]
    public async Task Rollback_mid_traffic_every_request_finishes_on_one_version_and_new_ones_use_the_rolled_back_version()
    {
        var ids = W.SharedIds;
        var responses = new ConcurrentBag<(DateTime Start, JsonElement R)>();
        DateTime rolledBackAt = DateTime.MaxValue;
        using var stop = new CancellationTokenSource();
        var workers = Enumerable.Range(0, 4).Select(wk => Task.Run(async () =>
        {
            var rnd = new Random(wk);
            while (!stop.IsCancellationRequested)
            {
                var start = DateTime.UtcNow;
                var chunk = Enumerable.Range(0, 25).Select(_ => ids[rnd.Next(ids.Length)]).Distinct().ToArray();
                responses.Add((start, await Predict(chunk)));
            }
        })).ToArray();
        try
        {
            await Task.Delay(400);
            var (status, body) = await ServingWorld.Send(Http, HttpMethod.Post, W.Initiator.Url + $"/v1/admin/models/{W.ModelId}/rollback", "admin", W.AdminKey, "{}");
            Assert.True(status == 200, body);
            rolledBackAt = DateTime.UtcNow;
            Assert.Equal(1, JsonDocument.Parse(body).RootElement.GetProperty("active_version").GetInt32());
            await Task.Delay(400);
        }
        finally
        {
            stop.Cancel();
            await Task.WhenAll(workers);
        }
        var versions = responses.GroupBy(r => r.R.GetProperty("version").GetInt32()).ToDictionary(g => g.Key, g => g.Count());
        Assert.True(versions.ContainsKey(1) && versions.ContainsKey(2), "traffic should span the rollback: " + string.Join(",", versions));
        foreach (var (start, r) in responses)
        {
            var v = r.GetProperty("version").GetInt32();
            if (start > rolledBackAt) Assert.Equal(1, v);
            Assert.True(r.GetProperty("complete").GetBoolean());
            foreach (var p in r.GetProperty("predictions").EnumerateArray())
                SameBits(W.Direct(p.GetProperty("sample_id").GetString()!, v), p.GetProperty("value").GetDouble(), $"v{v}");
        }
        // Restore v2 through the admin activate endpoint (and check it applies at once).
        var (s2, b2) = await ServingWorld.Send(Http, HttpMethod.Post, W.Initiator.Url + $"/v1/admin/models/{W.ModelId}/activate", "admin", W.AdminKey, "{\"version\":2}");
        Assert.True(s2 == 200, b2);
        Assert.Equal(2, (await Predict([ids[0]])).GetProperty("version").GetInt32());
        var (s3, _) = await ServingWorld.Send(Http, HttpMethod.Post, W.Initiator.Url + $"/v1/admin/models/{W.ModelId}/activate", "admin", W.AdminKey, "{\"version\":7}");
        Assert.Equal(404, s3);
    }

    [Fact]
    public async Task Party_feature_SQL_is_kept_for_the_last_two_versions_used_not_for_every_version_since_start()
    {
        // A copy of the host's warehouse with v3 and v4 added, so activations and rollbacks can walk four versions
        // without moving the shared world's pointers.
        var tag = Guid.NewGuid().ToString("N")[..6];
        var path = Path.Combine(W.Dir, $"host-versions-{tag}.db");
        using (var src = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + W.Warehouses["host"]))
        using (var dst = new Microsoft.Data.Sqlite.SqliteConnection("Data Source=" + path))
        {
            src.Open(); dst.Open();
            src.BackupDatabase(dst);
        }
        var models = new Dictionary<int, ScoringModel> { [1] = W.Models[("host", 1)], [2] = W.Models[("host", 2)] };
        var v2 = Fed.Core.Model.ModelFile.Read(Path.Combine(W.Dir, "v2", "host.json"));
        using (var wh = new Fed.Warehouse.Sqlite.SqliteWarehouse(path))
            foreach (var version in new[] { 3, 4 })
            {
                var pm = new Fed.Core.Model.PartialModel
                {
                    ModelId = v2.ModelId, Version = version, Kind = v2.Kind, PartyId = v2.PartyId, Role = v2.Role, Parties = v2.Parties,
                    Features = v2.Features, Weights = [v2.Weights[0].Select(x => x * version).ToArray()], Transform = v2.Transform,
                };
                var file = Path.Combine(W.Dir, $"host-v{version}-{tag}.json");
                Fed.Core.Model.ModelFile.Write(pm, file);
                var stamped = Fed.Core.Model.ModelFile.Read(file);
                new Fed.Converter.ModelExporter(wh).Export(stamped, activate: false);
                models[version] = ScoringModel.From(stamped);
            }
        var cfg = W.PartyConfig("host");
        cfg.Warehouse = "sqlite:" + path;
        await using var party = new PartyService(cfg);
        await party.StartAsync();
        var ids = W.SharedIds.Take(7).ToArray();

        // A request as the initiator sends it (version named) or without one (the party's active version); every
        // answer must be that version's partial score, whatever the cache dropped before.
        async Task<int> Score(int? version, string mode, int n)
        {
            var body = JsonSerializer.Serialize(new { model_id = W.ModelId, version, mode, sample_ids = ids[..n] });
            var (status, text) = await ServingWorld.Send(Http, HttpMethod.Post, party.Url + "/v1/partial-scores", "initiator", W.HostKey, body);
            Assert.True(status == 200, text);
            var root = JsonDocument.Parse(text).RootElement;
            var v = root.GetProperty("version").GetInt32();
            var results = root.GetProperty("results").EnumerateArray().ToList();
            Assert.Equal(n, results.Count);
            for (var i = 0; i < n; i++)
            {
                var expected = new double[1];
                new PartialScorer(models[v]).ScoreRow(W.Features["host"][ids[i]], expected);
                Assert.Equal("ok", results[i].GetProperty("status").GetString());
                SameBits(expected[0], results[i].GetProperty("scores")[0].GetDouble(), $"v{v} {mode} {ids[i]}");
            }
            return v;
        }
        async Task<int> Admin(string action, string body)
        {
            var (status, text) = await ServingWorld.Send(Http, HttpMethod.Post, party.Url + $"/v1/admin/models/{W.ModelId}/{action}", "admin", W.AdminKey, body);
            Assert.True(status == 200, text);
            return JsonDocument.Parse(text).RootElement.GetProperty("active_version").GetInt32();
        }
        int[] Cached()
        {
            var cached = party.FeatureSqlVersions();
            Assert.All(cached, c => Assert.Equal(W.ModelId, c.ModelId));
            return cached.Select(c => c.Version).Order().ToArray();
        }

        var steps = new (string Action, int Expect)[]
        {
            ("activate 1", 1), ("activate 2", 2), ("activate 3", 3), ("activate 4", 4), ("rollback", 3), ("rollback", 2),
            ("rollback", 1), ("activate 4", 4), ("rollback", 3), ("activate 1", 1),
        };
        int? previous = null;
        foreach (var (action, expect) in steps)
        {
            var active = action == "rollback" ? await Admin("rollback", "{}") : await Admin("activate", $"{{\"version\":{action[^1]}}}");
            Assert.Equal(expect, active);
            foreach (var n in new[] { 1, 3, 7 }) Assert.Equal(active, await Score(null, "realtime", n));
            Assert.Equal(active, await Score(null, "hourly", 2));
            if (previous is { } old)
            {
                // A request still in flight on the version before the swap is answered on that version.
                Assert.Equal(old, await Score(old, "realtime", 3));
                Assert.Equal(new[] { old, active }.Order().ToArray(), Cached());
            }
            else Assert.Equal([active], Cached());
            previous = active;
        }

        // The initiator's way: it names the version and the party's pointer never moves. Still at most two versions.
        foreach (var v in new[] { 2, 3, 4, 1, 4, 2 })
        {
            Assert.Equal(v, await Score(v, "realtime", 5));
            var cached = Cached();
            Assert.True(cached.Length <= 2, "cached versions: " + string.Join(",", cached));
            Assert.Contains(v, cached);
        }

        // The hot path: a cached query is found without allocating.
        var lm = party.Models.Get(W.ModelId, 4);
        using var w = new Fed.Warehouse.Sqlite.SqliteWarehouse(path);
        var sql = party.FeatureSql(w, "bc_features", false, lm, 5);
        Assert.Contains("bc_features", sql);
        var same = ReferenceEquals(sql, party.FeatureSql(w, "bc_features", false, lm, 5));
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++) same &= ReferenceEquals(sql, party.FeatureSql(w, "bc_features", false, lm, 5));
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(same, "a cached query must be returned, not rebuilt");
        Assert.Equal(0, allocated);
    }

    [Fact]
    public async Task Health_readiness_and_prometheus_metrics()
    {
        await Predict(W.SharedIds.Take(3));
        var before = await W.Ops(Http, W.Initiator.Url);
        var hostBefore = await W.Ops(Http, W.Parties["host"].Url);
        await Predict(W.SharedIds.Skip(3).Take(4));
        foreach (var url in new[] { W.Initiator.Url, W.Parties["guest"].Url, W.Parties["host"].Url })
        {
            Assert.Equal(System.Net.HttpStatusCode.OK, (await Http.GetAsync(url + "/healthz")).StatusCode);
            // /readyz and /metrics sit behind the authorization (ops.access signed) when there is no ops listener.
            Assert.Equal(System.Net.HttpStatusCode.Unauthorized, (await Http.GetAsync(url + "/readyz")).StatusCode);
            Assert.Equal(System.Net.HttpStatusCode.Unauthorized, (await Http.GetAsync(url + "/metrics")).StatusCode);
            var (ready, body) = await ServingWorld.Send(Http, HttpMethod.Get, url + "/readyz", "admin", W.AdminKey, null);
            Assert.True(ready == 200, body);
        }
        using var scrape = new HttpRequestMessage(HttpMethod.Get, W.Initiator.Url + "/metrics");
        RequestSigning.Apply(scrape, W.AdminKey, "admin", [], null, null);
        using var resp = await Http.SendAsync(scrape);
        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", resp.Content.Headers.ContentType?.ToString());
        var m = await resp.Content.ReadAsStringAsync();
        Assert.Contains("# TYPE fed_http_request_duration_seconds histogram", m);
        // One more /v1/predict (4 samples) between the two scrapes: every series moved by exactly that much.
        double Delta(string after, string earlier, string series) => ServingWorld.Sample(after, series) - ServingWorld.Sample(earlier, series);
        Assert.Equal(1, Delta(m, before, "fed_http_requests_total{route=\"/v1/predict\",code=\"200\"}"));
        Assert.Equal(1, Delta(m, before, "fed_http_request_duration_seconds_count{route=\"/v1/predict\"}"));
        Assert.Equal(1, Delta(m, before, "fed_http_request_duration_seconds_bucket{route=\"/v1/predict\",le=\"+Inf\"}"));
        Assert.Equal(1, Delta(m, before, "fed_party_requests_total{party=\"guest\",status=\"ok\"}"));
        Assert.Equal(1, Delta(m, before, "fed_party_request_duration_seconds_count{party=\"host\"}"));
        Assert.Equal(4, Delta(m, before, "fed_predictions_total{status=\"ok\"}"));
        Assert.True(ServingWorld.Sample(m, "fed_http_request_duration_seconds_sum{route=\"/v1/predict\"}") > 0);
        // Buckets are cumulative: the 0.01 s bucket never holds more than +Inf.
        Assert.True(ServingWorld.Sample(m, "fed_party_request_duration_seconds_bucket{party=\"host\",le=\"0.01\"}")
            <= ServingWorld.Sample(m, "fed_party_request_duration_seconds_bucket{party=\"host\",le=\"+Inf\"}"));
        var pm = await W.Ops(Http, W.Parties["host"].Url);
        Assert.Equal(4, Delta(pm, hostBefore, "fed_partial_scores_total{status=\"ok\"}"));
        Assert.Equal(1, Delta(pm, hostBefore, "fed_http_requests_total{route=\"/v1/partial-scores\",code=\"200\"}"));
    }

    [Fact]
    public async Task An_ops_listener_serves_health_readiness_and_metrics_only_and_the_main_listener_no_longer_does()
    {
        var cfg = W.PartyConfig("guest");
        cfg.Ops = new OpsConfig { Listen = "http://127.0.0.1:0" };
        await using var party = new PartyService(cfg);
        await party.StartAsync();
        Assert.NotNull(party.OpsUrl);
        Assert.Equal(200, (int)(await Http.GetAsync(party.OpsUrl + "/readyz")).StatusCode);
        // The ops listener's own requests (/readyz above) are counted and served without a signature.
        Assert.Equal(1, ServingWorld.Sample(await Http.GetStringAsync(party.OpsUrl + "/metrics"), "fed_http_requests_total{route=\"/readyz\",code=\"200\"}"));
        var partial = "{\"model_id\":\"" + W.ModelId + "\",\"sample_ids\":[\"a\"],\"mode\":\"realtime\"}";
        Assert.Equal(404, (await ServingWorld.Send(Http, HttpMethod.Post, party.OpsUrl + "/v1/partial-scores", "initiator", W.GuestKey, partial)).Status);
        Assert.Equal(404, (await ServingWorld.Send(Http, HttpMethod.Get, party.Url + "/metrics", "admin", W.AdminKey, null)).Status);
        Assert.Equal(401, (int)(await Http.GetAsync(party.Url + "/readyz")).StatusCode);
        Assert.Equal(200, (await ServingWorld.Send(Http, HttpMethod.Post, party.Url + "/v1/partial-scores", "initiator", W.GuestKey, partial)).Status);
    }

    [Fact]
    public void Config_files_are_validated_with_clear_messages()
    {
        var path = Path.Combine(W.Dir, "bad.json");
        File.WriteAllText(path, "{\"party_id\":\"guest\",\"warehouse\":\"sqlite:x.db\",\"listen\":\"http://127.0.0.1:0\",\"insecure_plaintext\":true,\"callers\":{}}");
        var e = Assert.Throws<Fed.Core.BadInputException>(() => ServingConfig.Load<PartyConfig>(path));
        Assert.Contains("'callers' is empty", e.Message);
        File.WriteAllText(path, "{\"party_id\":\"guest\",\"warehouse\":\"sqlite:x.db\",\"listen\":\"http://127.0.0.1:0\",\"insecure_plaintext\":true,\"callers\":{\"a\":{\"key\":\"c2hvcnQ=\"}}}");
        Assert.Contains("at least 32", Assert.Throws<Fed.Core.BadInputException>(() => ServingConfig.Load<PartyConfig>(path)).Message);
        File.WriteAllText(path, "{\"party_id\":\"guest\",\"warehouse\":\"sqlite:x.db\",\"listen\":\"http://127.0.0.1:0\",\"insecure_plaintext\":true,\"typo\":1}");
        Assert.Contains("invalid config", Assert.Throws<Fed.Core.BadInputException>(() => ServingConfig.Load<PartyConfig>(path)).Message);
    }

    [Fact]
    public void An_initiator_config_refuses_inline_features_which_only_a_party_config_honours()
    {
        var json = new JsonSerializerOptions { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull };
        var path = Path.Combine(W.Dir, "inline-" + Guid.NewGuid().ToString("N")[..6] + ".json");
        var initiator = W.InitiatorConfig(W.Parties.ToDictionary(x => x.Key, x => x.Value.Url));
        File.WriteAllText(path, JsonSerializer.Serialize(initiator, json));
        Assert.False(ServingConfig.Load<InitiatorConfig>(path).Callers["client"].InlineFeatures); // loads as is

        initiator.Callers["client"].InlineFeatures = true;
        File.WriteAllText(path, JsonSerializer.Serialize(initiator, json));
        var e = Assert.Throws<Fed.Core.BadInputException>(() => ServingConfig.Load<InitiatorConfig>(path));
        Assert.Contains("callers.client", e.Message);
        Assert.Contains("'inline_features'", e.Message);
        Assert.Contains("only to party services", e.Message);
        Assert.StartsWith(path, e.Message);
        // Validating a config built in code says the same.
        Assert.Contains("callers.client", Assert.Throws<Fed.Core.BadInputException>(() => initiator.Validate("initiator.json")).Message);

        // A party config keeps accepting it (the world's feeder caller has it).
        var party = W.PartyConfig("host");
        Assert.True(party.Callers["feeder"].InlineFeatures);
        File.WriteAllText(path, JsonSerializer.Serialize(party, json));
        Assert.True(ServingConfig.Load<PartyConfig>(path).Callers["feeder"].InlineFeatures);
    }
}

/// <summary>Limits on the party as an oracle: agreed populations (ids or PSI tokens), daily quotas, the audit log.</summary>
public sealed class OracleTests(WorldFixture f) : IClassFixture<WorldFixture>
{
    ServingWorld W => f.World;
    HttpClient Http => f.Http;

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task Outside_the_agreed_population_every_sample_gets_one_uniform_not_scored_quotas_hold_and_the_audit_log_holds_only_keyed_hashes()
    {
        var dir = Path.Combine(W.Dir, "oracle-" + Guid.NewGuid().ToString("N")[..6]);
        Directory.CreateDirectory(dir);
        var shared = W.SharedIds;
        var agreed = shared.Take(3).ToArray();
        var outside = shared.Skip(10).Take(2).ToArray();
        const string missing = "no-such-sample-42";
        File.WriteAllLines(Path.Combine(dir, "agreed.txt"), agreed);
        var tokenKey = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
        var tokenEnv = "FED_TEST_PSI_KEY_" + Guid.NewGuid().ToString("N")[..6];
        Environment.SetEnvironmentVariable(tokenEnv, Convert.ToBase64String(tokenKey));
        File.WriteAllLines(Path.Combine(dir, "tokens.txt"), agreed.Select(id => OracleLimits.Token(tokenKey, id)));
        var auditKey = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
        var auditEnv = "FED_TEST_AUDIT_KEY_" + Guid.NewGuid().ToString("N")[..6];
        Environment.SetEnvironmentVariable(auditEnv, Convert.ToBase64String(auditKey));
        var cfg = W.PartyConfig("host");
        cfg.Oracle = new OracleConfig
        {
            Populations =
            [
                new PopulationConfig { Caller = "initiator", ModelId = W.ModelId, File = Path.Combine(dir, "agreed.txt") },
                new PopulationConfig { Caller = "admin", ModelId = W.ModelId, File = Path.Combine(dir, "tokens.txt"), Format = "hmac_sha256", TokenKeyEnv = tokenEnv },
            ],
            DailyQuota = new() { ["feeder"] = 3 },
            AuditLog = "file:" + Path.Combine(dir, "audit.jsonl"), AuditKeyEnv = auditEnv,
        };
        cfg.Validate("test");
        await using var party = new PartyService(cfg);
        await party.StartAsync();
        string[] asked = [.. agreed, .. outside, missing];
        var body = JsonSerializer.Serialize(new { model_id = W.ModelId, version = 2, sample_ids = asked, mode = "realtime" });
        foreach (var (caller, key) in new[] { ("initiator", W.HostKey), ("admin", W.AdminKey) })
        {
            var (status, text) = await ServingWorld.Send(Http, HttpMethod.Post, party.Url + "/v1/partial-scores", caller, key, body);
            Assert.True(status == 200, text);
            var results = JsonDocument.Parse(text).RootElement.GetProperty("results").EnumerateArray().ToArray();
            for (var i = 0; i < agreed.Length; i++)
            {
                Assert.Equal("ok", results[i].GetProperty("status").GetString());
                var s = new double[1];
                new Fed.Core.Scoring.PartialScorer(W.Models[("host", 2)]).ScoreRow(W.Features["host"][agreed[i]], s);
                Assert.Equal(BitConverter.DoubleToInt64Bits(s[0]), BitConverter.DoubleToInt64Bits(results[i].GetProperty("scores")[0].GetDouble()));
            }
            // Outside the population (present here or not): byte-identical shape, one status.
            var shapes = results.Skip(agreed.Length).Select(r => r.GetRawText().Replace(r.GetProperty("sample_id").GetString()!, "ID")).Distinct().ToArray();
            Assert.Equal(["{\"sample_id\":\"ID\",\"status\":\"not_scored\"}"], shapes);
        }
        // Another caller without a population is answered as before (sample_not_found for the missing one).
        var (fs, ft) = await ServingWorld.Send(Http, HttpMethod.Post, party.Url + "/v1/partial-scores", "feeder", W.FeederKey,
            JsonSerializer.Serialize(new { model_id = W.ModelId, version = 2, sample_ids = new[] { outside[0], missing }, mode = "realtime" }));
        Assert.Equal(200, fs);
        Assert.Contains("\"sample_not_found\"", ft);
        // Its quota is 3 samples a day: 2 used, 2 more are refused.
        var (qs, qt) = await ServingWorld.Send(Http, HttpMethod.Post, party.Url + "/v1/partial-scores", "feeder", W.FeederKey,
            JsonSerializer.Serialize(new { model_id = W.ModelId, version = 2, sample_ids = agreed.Take(2).ToArray(), mode = "realtime" }));
        Assert.Equal(429, qs);
        Assert.Contains("daily quota", qt);

        // Through an initiator: the limited party's not_scored makes the prediction not_scored, with no value.
        var ic = W.InitiatorConfig(new Dictionary<string, string> { ["guest"] = W.Parties["guest"].Url, ["host"] = party.Url });
        await using var init = new InitiatorService(ic);
        await init.StartAsync();
        var (ps, pt) = await ServingWorld.Send(Http, HttpMethod.Post, init.Url + "/v1/predict", "client", W.ClientKey, ServingWorld.PredictBody(W.ModelId, [agreed[0], outside[0]]));
        Assert.Equal(200, ps);
        var preds = JsonDocument.Parse(pt).RootElement.GetProperty("predictions").EnumerateArray().ToArray();
        Assert.Equal("ok", preds[0].GetProperty("status").GetString());
        Assert.Equal("not_scored", preds[1].GetProperty("status").GetString());
        Assert.False(preds[1].TryGetProperty("value", out _));

        await party.DisposeAsync();
        var audit = File.ReadAllText(Path.Combine(dir, "audit.jsonl"));
        Assert.Equal("0600", Fed.Core.Security.SecretFiles.Octal(File.GetUnixFileMode(Path.Combine(dir, "audit.jsonl"))));
        var lines = audit.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(5, lines.Length); // initiator, admin, feeder x2, and the initiator's predict
        foreach (var id in asked) Assert.DoesNotContain(id, audit);
        var first = JsonDocument.Parse(lines[0]).RootElement.GetProperty("State");
        Assert.Equal("initiator", first.GetProperty("caller").GetString());
        Assert.Equal(string.Join(',', asked.Select(id => OracleLimits.Token(auditKey, id))), first.GetProperty("id_hmacs").GetString());
        Assert.NotEqual(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(asked[0]))),
            first.GetProperty("id_hmacs").GetString()![..64]);
    }
}
