using System.Globalization;
using System.Text;
using System.Text.Json;
using Confluent.Kafka;
using Fed.Core.Scoring;

namespace Fed.Streaming.Tests;

/// <summary>Partial scores are authenticated per party (HMAC); dead letters say why and where, never what.</summary>
public sealed class PartyAuthenticationTests : IDisposable
{
    readonly string _dir = Path.Combine(Path.GetTempPath(), "fed-stream-auth-" + Guid.NewGuid().ToString("N")[..8]);

    public void Dispose() { if (Environment.GetEnvironmentVariable("FED_TEST_KEEP") != "1") try { Directory.Delete(_dir, true); } catch (IOException) { } }

    [Fact]
    public void A_part_forged_under_another_partys_name_goes_to_dead_letters_and_no_dead_letter_holds_a_feature_value()
    {
        var prefix = TestServices.UniquePrefix("auth");
        var models = BreastCancerModels.Create(_dir, "bc_auth_" + Guid.NewGuid().ToString("N")[..6]);
        string gt = prefix + ".features.guest", ht = prefix + ".features.host";
        var icfg = TestServices.InitiatorConfig(models.GuestDb, prefix, windowMs: 2000);
        var gcfg = TestServices.PartyConfig("guest", models.GuestDb, gt, icfg.PartialsTopic, prefix + ".dlq.guest", prefix + "-guest");
        var hcfg = TestServices.PartyConfig("host", models.HostDb, ht, icfg.PartialsTopic, prefix + ".dlq.host", prefix + "-host");
        TestServices.CreateTopics(4, gt, ht, icfg.PartialsTopic, icfg.ScoresTopic, icfg.StatusTopic, icfg.DeadLetterTopic, gcfg.DeadLetterTopic, hcfg.DeadLetterTopic);
        using var initiator = Running.Initiator(icfg);
        using var guest = Running.Party(gcfg);
        using var host = Running.Party(hcfg);
        var now = FeatureEvent.Now();
        var sentValues = new List<double>();

        byte[] Event(string eventId, string id, bool isGuest)
        {
            var names = isGuest ? models.GuestFeatures : models.HostFeatures;
            var values = isGuest ? models.Guest[id] : models.Host[id];
            sentValues.AddRange(values);
            return new FeatureEvent { EventId = eventId, SampleId = id, ModelIds = [models.ModelId], EventTime = now,
                Features = names.Select((n, i) => (n, values[i])).ToDictionary(x => x.n, x => x.Item2) }.ToJson();
        }

        // Honest traffic: samples both parties hold.
        var shared = models.BothIds.Take(30).ToList();
        Produce(gt, shared.Select(id => ("h-" + id, Event("h-" + id, id, true))));
        Produce(ht, shared.Select(id => ("h-" + id, Event("h-" + id, id, false))));

        // The guest answers honestly for samples only it holds, and slips in the host's part for them: signed with the
        // guest's own key, unsigned, or signed by the host and altered on the way.
        var victims = models.Guest.Keys.Where(id => !models.Host.ContainsKey(id)).Take(3).ToList();
        Assert.Equal(3, victims.Count);
        Produce(gt, victims.Select(id => ("f-" + id, Event("f-" + id, id, true))));
        const double forgedScore = 4.2424242;
        PartialScoreMessage HostPart(string id) => new()
        {
            RequestId = "f-" + id, ModelId = models.ModelId, Version = 1, Party = "host", SampleId = id, Scores = [forgedScore], EventTime = now,
        };
        var altered = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(HostPart(victims[2]).ToSignedJson(TestServices.Key("host")))
            .Replace(forgedScore.ToString("R", CultureInfo.InvariantCulture), "4.2424243"));
        Produce(icfg.PartialsTopic, [
            ("f-" + victims[0], HostPart(victims[0]).ToSignedJson(TestServices.Key("guest"))),
            ("f-" + victims[1], HostPart(victims[1]).ToJson()),
            ("f-" + victims[2], altered),
        ]);

        // Bad feature events at each party, carrying values that must not reach a dead letter.
        double[] secrets = [17.991234, 12345.678, 77.7777];
        sentValues.AddRange(secrets);
        Produce(gt, [("b1", Encoding.UTF8.GetBytes($"{{\"event_id\":\"b1\",\"sample_id\":\"s\",\"model_ids\":[\"{models.ModelId}\"],\"features\":{{\"{models.GuestFeatures[0]}\":17.991234}},\"event_time\":\"{now}\"}}"))]);
        Produce(ht, [
            ("b2", Encoding.UTF8.GetBytes($"{{\"event_id\":\"b2\",\"sample_id\":\"s\",\"features\":{{\"{models.HostFeatures[0]}\":12345.678")),
            ("b3", Encoding.UTF8.GetBytes($"{{\"event_id\":\"b3\",\"sample_id\":\"s\",\"model_ids\":[\"{models.ModelId}\"],\"features\":{{\"{models.HostFeatures[0]}\":\"77.7777\"}},\"event_time\":\"{now}\"}}")),
        ]);

        using var redis = TestServices.ConnectRedis();
        var db = redis.GetDatabase();
        var expected = models.Expected(1);
        var got = RedisCheck.WaitAll(db, shared.Select(id => PredictionKeys.Record(models.ModelId, 1, id)).ToList(), TimeSpan.FromSeconds(60));
        foreach (var id in shared) RedisCheck.AssertBitIdentical(expected[id], PredictionRecord.Parse(got[PredictionKeys.Record(models.ModelId, 1, id)], ""), id);
        // A forged part completes nothing: each victim ends incomplete, missing the host, with no score.
        var inc = RedisCheck.WaitAll(db, victims.Select(id => StreamRecords.IncompleteKey(models.ModelId, 1, id)).ToList(), TimeSpan.FromSeconds(30));
        foreach (var id in victims)
        {
            using var doc = JsonDocument.Parse(inc[StreamRecords.IncompleteKey(models.ModelId, 1, id)]);
            Assert.Equal(["host"], doc.RootElement.GetProperty("missing").EnumerateArray().Select(e => e.GetString()));
            Assert.False(db.KeyExists(PredictionKeys.Record(models.ModelId, 1, id)), $"forged part scored sample {id}");
        }
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((initiator.Metrics.DeadLetters < 3 || guest.Metrics.DeadLetters < 1 || host.Metrics.DeadLetters < 2) && DateTime.UtcNow < deadline) Thread.Sleep(50);
        guest.Stop(); host.Stop(); initiator.Stop(); // flushed: every dead letter is in its topic

        // Each party's dead letters in its own topic, read to the end offsets.
        var byTopic = new[] { icfg.DeadLetterTopic, gcfg.DeadLetterTopic, hcfg.DeadLetterTopic }.ToDictionary(t => t, t => TestServices.ReadToEnd(t, 4));
        string Reason(string value) => JsonDocument.Parse(value).RootElement.GetProperty("reason").GetString()!;
        Assert.Equal(new Dictionary<string, string> { ["f-" + victims[0]] = "bad_signature", ["f-" + victims[1]] = "unsigned", ["f-" + victims[2]] = "bad_signature" },
            byTopic[icfg.DeadLetterTopic].ToDictionary(d => d.Key!, d => Reason(d.Value)));
        Assert.Equal([("b1", "missing_feature")], byTopic[gcfg.DeadLetterTopic].Select(d => (d.Key, Reason(d.Value))));
        Assert.Equal([("b2", "malformed"), ("b3", "malformed")], byTopic[hcfg.DeadLetterTopic].Select(d => (d.Key, Reason(d.Value))).OrderBy(x => x.Key));
        Assert.Equal(3, initiator.Metrics.DeadLetters);

        // No dead letter holds a feature value (or a forged score): only where the message is and why it was refused.
        var written = sentValues.Append(forgedScore).Select(v => v.ToString("R", CultureInfo.InvariantCulture)).Where(v => v.Contains('.')).Distinct().ToList();
        Assert.True(written.Count > 100, $"only {written.Count} distinct values to look for");
        foreach (var (_, value) in byTopic.Values.SelectMany(l => l))
        {
            using var doc = JsonDocument.Parse(value);
            Assert.Equal(["source", "reason", "error", "topic", "partition", "offset", "key"], doc.RootElement.EnumerateObject().Select(p => p.Name));
            var leaked = written.Where(value.Contains).ToList();
            Assert.True(leaked.Count == 0, $"dead letter {value} holds value(s) {string.Join(", ", leaked)}");
        }
    }

    static void Produce(string topic, IEnumerable<(string Key, byte[] Value)> messages)
    {
        KafkaNative.Ensure();
        using var p = new ProducerBuilder<string, byte[]>(new ProducerConfig(TestServices.OldBrokerKafka())).Build();
        foreach (var (k, v) in messages) p.Produce(topic, new Message<string, byte[]> { Key = k, Value = v });
        Assert.Equal(0, p.Flush(TimeSpan.FromSeconds(10)));
    }
}
