using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Fed.Converter;
using Fed.Core.Data;
using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.Serving;
using Fed.SparkPredict;
using Fed.TestSupport;
using Fed.Warehouse;

namespace Fed.Serving.Tests;

/// <summary>
/// Online serving with masked partial scores (docs/privacy.md): N party services (guest + hosts, one SQLite warehouse
/// and one mask key file each) and an initiator over real HTTP, Redis for the cache and the replay store. The
/// predictions are the bits of `predict local --masked`; what a host sends is checked as the initiator receives it.
/// </summary>
public sealed class MaskedWorld : IAsyncDisposable
{
    public const string Dt = "2026-12-03";
    public required string Dir { get; init; }
    public required MultiPartyFixture Fx { get; init; }
    public Dictionary<string, PartyService> Parties { get; } = new();
    public InitiatorService Initiator { get; private set; } = null!;
    public byte[] Key { get; } = RandomNumberGenerator.GetBytes(32);
    public byte[] ClientKey { get; } = RandomNumberGenerator.GetBytes(32);
    public MaskingPolicy Policy { get; private set; } = null!;
    public HttpClient Http { get; } = new(new SocketsHttpHandler { UseProxy = false });

    public static async Task<MaskedWorld> Create(int parties, string? initiator = null, int rows = 300)
    {
        var redis = ServingWorld.RequireRedis();
        var dir = Directory.CreateTempSubdirectory("fed-maskserve-").FullName;
        var fx = MultiPartyFixture.Write(dir, parties, rows: rows, modelId: "mk-" + Guid.NewGuid().ToString("N")[..8]);
        var world = new MaskedWorld { Dir = dir, Fx = fx };
        var sig = ScoringModel.From(ModelFile.Read(fx.ModelFiles["guest"])).Signature;
        world.Policy = MaskingPolicy.For(sig, initiator, true);
        var keys = MaskKeys.Ephemeral(world.Policy.Maskers);
        foreach (var p in fx.Parties)
        {
            var wh = Path.Combine(dir, p + ".db");
            using (var w = new Fed.Warehouse.Sqlite.SqliteWarehouse(wh))
            {
                new ModelExporter(w).Export(ModelFile.Read(fx.ModelFiles[p]));
                if (initiator != null) new MaskingRegistry(w).Set(sig, true, initiator);
                FeatureLoader.Load(w, fx.Csv[p], "feat", Partition.Parse(Dt, null), labelColumn: null);
            }
            string? keyFile = null;
            if (keys.TryGetValue(p, out var k)) { keyFile = Path.Combine(dir, p + ".mask.json"); k.Write(keyFile); }
            var svc = new PartyService(new PartyConfig
            {
                PartyId = p, Warehouse = "sqlite:" + wh, FeatureTable = "feat", Listen = "http://127.0.0.1:0", InsecurePlaintext = true,
                Callers = new() { ["initiator"] = new CallerConfig { Key = Convert.ToBase64String(world.Key) } }, Log = "none", MaskKeys = keyFile,
                Replay = new ReplayConfig { Store = "redis", Redis = redis, KeyPrefix = "fed:test:" + fx.ModelId + ":" + p + ":" },
            });
            await svc.StartAsync();
            world.Parties[p] = svc;
        }
        world.Initiator = new InitiatorService(new InitiatorConfig
        {
            PartyId = "guest", CallerId = "initiator", Warehouse = "sqlite:" + Path.Combine(dir, "guest.db"), Redis = redis,
            Listen = "http://127.0.0.1:0", InsecurePlaintext = true, Log = "none",
            Parties = world.Parties.Select(x => new PartyEndpoint { PartyId = x.Key, Url = x.Value.Url, Key = Convert.ToBase64String(world.Key), TimeoutMs = 3000 }).ToList(),
            Callers = new() { ["client"] = new CallerConfig { Key = Convert.ToBase64String(world.ClientKey) } },
        });
        await world.Initiator.StartAsync();
        return world;
    }

    public async Task<JsonElement> Predict(IEnumerable<string> ids)
    {
        var (status, body) = await ServingWorld.Send(Http, HttpMethod.Post, Initiator.Url + "/v1/predict", "client", ClientKey, ServingWorld.PredictBody(Fx.ModelId, ids));
        Assert.True(status == 200, $"HTTP {status}: {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    /// <summary>What the initiator receives from <paramref name="party"/> for one request (sent as the initiator does).</summary>
    public async Task<(int Status, string Body)> AskParty(string party, string[] ids, string? maskId, string? nonce = null)
    {
        var body = JsonSerializer.Serialize(maskId is null
            ? (object)new { model_id = Fx.ModelId, version = 1, mode = "realtime", sample_ids = ids }
            : new { model_id = Fx.ModelId, version = 1, mode = "realtime", mask_id = maskId, sample_ids = ids });
        return await ServingWorld.Send(Http, HttpMethod.Post, Parties[party].Url + "/v1/partial-scores", "initiator", Key, body, nonce: nonce);
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        if (Initiator != null) await Initiator.DisposeAsync();
        foreach (var p in Parties.Values) await p.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try { Directory.Delete(Dir, true); } catch (IOException) { }
    }
}

public class MaskedServingTests
{
    [Theory]
    [InlineData(3, null)]
    [InlineData(4, null)]
    [InlineData(4, "external")]
    public async Task Online_masked_predictions_are_the_bits_of_predict_local_masked(int parties, string? initiator)
    {
        await using var w = await MaskedWorld.Create(parties, initiator);
        var reference = LocalPredictor.Run(w.Fx.ModelsDir, w.Fx.Parties.Select(p => (p, w.Fx.Csv[p])).ToList(), Path.Combine(w.Dir, "ref.csv"), masked: true, initiator: initiator);
        var expected = Enumerable.Range(0, reference.Predictions.Count).ToDictionary(i => reference.Predictions.Ids[i], i => reference.Predictions.Values[i]);
        Assert.True(expected.Count > 200);
        var checkedCount = 0;
        foreach (var chunk in expected.Keys.Chunk(100))
        {
            var r = await w.Predict(chunk);
            Assert.True(r.GetProperty("complete").GetBoolean(), r.ToString());
            foreach (var p in r.GetProperty("predictions").EnumerateArray())
            {
                var id = p.GetProperty("sample_id").GetString()!;
                Assert.Equal(BitConverter.DoubleToInt64Bits(expected[id]), BitConverter.DoubleToInt64Bits(p.GetProperty("value").GetDouble()));
                checkedCount++;
            }
        }
        Assert.Equal(expected.Count, checkedCount);
        // A sample one party lacks gets no value.
        var lacking = reference.Predictions.Missing.First().SampleId;
        var one = (await w.Predict([lacking])).GetProperty("predictions")[0];
        Assert.False(one.TryGetProperty("value", out _));
    }

    /// <summary>
    /// The transcript of one host, as the initiator receives it. Statistics: over 200 requests for one sample every
    /// masked value differs; over all samples of one request, Pearson |r| between masked values and the host's true
    /// partial scores &lt; 4/sqrt(n); decoding one host's value alone is not within 1.0 of its score for more than 2% of
    /// samples. A reused mask id is refused (400), a verbatim replay (same nonce) is refused (401), a masked model
    /// refuses a request without mask id, and a fresh request draws fresh masks.
    /// </summary>
    [Fact]
    public async Task What_a_host_sends_is_uniform_unrecoverable_and_never_masked_twice_under_one_id()
    {
        await using var w = await MaskedWorld.Create(3, rows: 1500);
        var truth = TranscriptStats.TrueScores(w.Fx, "host1");
        var ids = truth.Keys.Take(1000).ToArray();
        var (status, body) = await w.AskParty("host1", ids, MaskIds.New());
        Assert.True(status == 200, body);
        var sent = JsonDocument.Parse(body).RootElement.GetProperty("results").EnumerateArray()
            .ToDictionary(x => x.GetProperty("sample_id").GetString()!, x => x.GetProperty("masked")[0].GetInt64());
        Assert.DoesNotContain("\"scores\"", body);
        var r = TranscriptStats.Pearson(ids.Select(i => (double)sent[i]).ToArray(), ids.Select(i => truth[i]).ToArray());
        Assert.True(Math.Abs(r) < 4 / Math.Sqrt(ids.Length), $"r = {r}");
        var near = ids.Count(i => Math.Abs(FixedPoint.Decode(sent[i]) - truth[i]) < 1.0);
        Assert.True(near < ids.Length / 50, $"{near} of {ids.Length}");

        var seen = new HashSet<long>();
        for (var i = 0; i < 200; i++)
        {
            var (st, b) = await w.AskParty("host1", [ids[0]], MaskIds.New());
            Assert.Equal(200, st);
            Assert.True(seen.Add(JsonDocument.Parse(b).RootElement.GetProperty("results")[0].GetProperty("masked")[0].GetInt64()));
        }
        var id = MaskIds.New();
        Assert.Equal(200, (await w.AskParty("host1", [ids[1]], id)).Status);
        var reused = await w.AskParty("host1", [ids[1]], id);
        Assert.Equal(400, reused.Status);
        Assert.Contains("already used", reused.Body);
        Assert.Equal(400, (await w.AskParty("host1", [ids[1]], null)).Status);
        var stale = (DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 3600).ToString(CultureInfo.InvariantCulture) + "." + new string('a', 32);
        Assert.Equal(400, (await w.AskParty("host1", [ids[1]], stale)).Status);
        var nonce = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        Assert.Equal(200, (await w.AskParty("host1", [ids[2]], MaskIds.New(), nonce)).Status);
        Assert.Equal(401, (await w.AskParty("host1", [ids[2]], MaskIds.New(), nonce)).Status);
        // Through the initiator: the same question twice gives the same prediction (the masks cancel) from fresh masks.
        var a = await w.Predict([ids[3]]);
        var b2 = await w.Predict([ids[3]]);
        Assert.Equal(a.GetProperty("predictions")[0].GetProperty("value").GetDouble(), b2.GetProperty("predictions")[0].GetProperty("value").GetDouble());
    }

    [Fact]
    public async Task A_host_that_is_down_gives_an_explicit_partial_failure_and_no_value()
    {
        await using var w = await MaskedWorld.Create(3);
        var ids = File.ReadLines(w.Fx.Csv["guest"]).Skip(1).Take(5).Select(l => l.Split(',')[0]).ToArray();
        await w.Parties["host2"].StopAsync();
        var r = await w.Predict(ids);
        Assert.False(r.GetProperty("complete").GetBoolean());
        foreach (var p in r.GetProperty("predictions").EnumerateArray())
        {
            Assert.Equal("partial_failure", p.GetProperty("status").GetString());
            Assert.False(p.TryGetProperty("value", out _));
            Assert.True(p.GetProperty("parties").TryGetProperty("host2", out _));
        }
    }
}
