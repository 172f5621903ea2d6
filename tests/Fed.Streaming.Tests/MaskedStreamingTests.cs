using System.Text.Json;
using Fed.Converter;
using Fed.Core.Data;
using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.SparkPredict;
using Fed.TestSupport;

namespace Fed.Streaming.Tests;

/// <summary>
/// Streaming with masked partial scores (docs/privacy.md), against the real Kafka broker and Redis: every party worker
/// masks under the request (event) id, the initiator sums the ring values. Predictions are the bits of
/// `predict local --masked`; the partials topic (everything the initiator receives) is read to its end offsets.
/// </summary>
public sealed class MaskedStreamingTests : IDisposable
{
    readonly string _dir = Path.Combine(Path.GetTempPath(), "fed-maskstream-" + Guid.NewGuid().ToString("N")[..8]);

    public void Dispose() { try { Directory.Delete(_dir, true); } catch (IOException) { } }

    [Theory]
    [InlineData(3)]
    [InlineData(4)]
    public void Masked_streaming_gives_the_bits_of_predict_local_masked_and_hosts_send_only_masked_values(int parties)
    {
        var prefix = TestServices.UniquePrefix("mask" + parties);
        var fx = MultiPartyFixture.Write(_dir, parties, rows: 400, modelId: "mks_" + Guid.NewGuid().ToString("N")[..6]);
        var sig = ScoringModel.From(ModelFile.Read(fx.ModelFiles["guest"])).Signature;
        var policy = MaskingPolicy.Default(sig);
        Assert.True(policy.Enabled);
        var keys = MaskKeys.Ephemeral(policy.Maskers);
        var topics = fx.Parties.ToDictionary(p => p, p => $"{prefix}.features.{p}");
        string partials = prefix + ".partials", dlq = prefix + ".dlq";
        TestServices.CreateTopics(4, [.. topics.Values, partials, prefix + ".scores", prefix + ".status", dlq]);
        var dbs = new Dictionary<string, string>();
        foreach (var p in fx.Parties)
        {
            dbs[p] = Path.Combine(_dir, p + ".db");
            using var w = new Fed.Warehouse.Sqlite.SqliteWarehouse(dbs[p]);
            new ModelExporter(w).Export(ModelFile.Read(fx.ModelFiles[p]));
        }
        var icfg = TestServices.InitiatorConfig(dbs["guest"], prefix, windowMs: 3000);
        icfg.PartyKeys = fx.Parties.ToDictionary(p => p, p => "file:" + TestServices.KeyFile(p));
        using var initiator = Running.Initiator(icfg);
        var workers = fx.Parties.Select(p =>
        {
            var cfg = TestServices.PartyConfig(p, dbs[p], topics[p], partials, dlq, prefix + "-" + p);
            if (keys.TryGetValue(p, out var k)) { cfg.MaskKeysFile = Path.Combine(_dir, p + ".mask.json"); k.Write(cfg.MaskKeysFile); }
            return Running.Party(cfg);
        }).ToList();
        try
        {
            foreach (var p in fx.Parties)
                FeatureReplay.Run(new ReplayOptions { CsvPath = fx.Csv[p], Topic = topics[p], ModelIds = [fx.ModelId], Kafka = TestServices.OldBrokerKafka(), EventPrefix = "e-" }, null, default);

            var reference = LocalPredictor.Run(fx.ModelsDir, fx.Parties.Select(p => (p, fx.Csv[p])).ToList(), Path.Combine(_dir, "ref.csv"), masked: true);
            using var redis = TestServices.ConnectRedis();
            var db = redis.GetDatabase();
            var values = RedisCheck.WaitAll(db, reference.Predictions.Ids.Select(id => PredictionKeys.Record(fx.ModelId, 1, id)).ToList(), TimeSpan.FromSeconds(60));
            for (var i = 0; i < reference.Predictions.Count; i++)
            {
                var rec = PredictionRecord.Parse(values[PredictionKeys.Record(fx.ModelId, 1, reference.Predictions.Ids[i])], "");
                Assert.Equal(BitConverter.DoubleToInt64Bits(reference.Predictions.Values[i]), BitConverter.DoubleToInt64Bits(rec.PredictValue));
            }
            // A sample some party lacks: an explicit incomplete record naming it, never a score.
            var lacking = reference.Predictions.Missing.First();
            var inc = RedisCheck.WaitAll(db, [StreamRecords.IncompleteKey(fx.ModelId, 1, lacking.SampleId)], TimeSpan.FromSeconds(30));
            using (var doc = JsonDocument.Parse(inc.Values.Single()))
                Assert.Equal(lacking.MissingParties, doc.RootElement.GetProperty("missing").EnumerateArray().Select(e => e.GetString()!).ToArray());
            Assert.False(db.KeyExists(PredictionKeys.Record(fx.ModelId, 1, lacking.SampleId)));

            // Fresh masks: the same samples asked again under new request ids.
            FeatureReplay.Run(new ReplayOptions { CsvPath = fx.Csv["host1"], Topic = topics["host1"], ModelIds = [fx.ModelId], Kafka = TestServices.OldBrokerKafka(), EventPrefix = "r-" }, null, default);
            var truth = TranscriptStats.TrueScores(fx, "host1");
            var sent = TestServices.ReadTopic(partials, 4, l => l.Count(x => x.Key!.StartsWith("r-") && x.Value.Contains("\"host1\"")) >= truth.Count, TimeSpan.FromSeconds(30));
            var byRequest = new Dictionary<string, long>();
            foreach (var (key, value) in sent)
            {
                using var d = JsonDocument.Parse(value);
                var r = d.RootElement;
                Assert.False(r.TryGetProperty("scores", out _), value); // no party sends a clear score for a masked model
                Assert.Equal(sig.OutputCount, r.GetProperty("masked").GetArrayLength());
                if (r.GetProperty("party").GetString() == "host1") byRequest[key!] = r.GetProperty("masked")[0].GetInt64();
            }
            var ids = truth.Keys.ToArray();
            Assert.All(ids, id => Assert.NotEqual(byRequest["e-" + id], byRequest["r-" + id]));
            var corr = TranscriptStats.Pearson(ids.Select(id => (double)byRequest["e-" + id]).ToArray(), ids.Select(id => truth[id]).ToArray());
            Assert.True(Math.Abs(corr) < 4 / Math.Sqrt(ids.Length), $"r = {corr}");
            Assert.Equal(0, initiator.Metrics.DeadLetters);
        }
        finally
        {
            foreach (var w in workers) w.Dispose();
        }
    }

}
