using System.Text.Json;
using Fed.Core.Scoring;

namespace Fed.Streaming.Tests;

/// <summary>Two parties and the initiator against the real Kafka 0.9 broker and the real Redis.</summary>
public sealed class StreamingEndToEndTests : IDisposable
{
    readonly string _dir = Path.Combine(Path.GetTempPath(), "fed-stream-test-" + Guid.NewGuid().ToString("N")[..8]);

    public void Dispose() { if (Environment.GetEnvironmentVariable("FED_TEST_KEEP") != "1") try { Directory.Delete(_dir, true); } catch (IOException) { } }

    sealed record Topics(string Prefix)
    {
        public string Guest => Prefix + ".features.guest";
        public string Host => Prefix + ".features.host";
        public string Partials => Prefix + ".partials";
        public string Scores => Prefix + ".scores";
        public string Status => Prefix + ".status";
        public string Dlq => Prefix + ".dlq";
        public void Create() => TestServices.CreateTopics(4, Guest, Host, Partials, Scores, Status, Dlq);
    }

    static ReplayOptions Replay(string csv, string topic, string modelId, string eventPrefix, long limit = 0) => new()
    {
        CsvPath = csv, Topic = topic, ModelIds = [modelId], Kafka = TestServices.OldBrokerKafka(), EventPrefix = eventPrefix,
        Drop = ["y"], Limit = limit,
    };

    [Fact]
    public void Two_parties_and_initiator_write_the_same_predictions_as_direct_scoring_and_incomplete_records_for_one_sided_ids()
    {
        var t = new Topics(TestServices.UniquePrefix("e2e"));
        var models = BreastCancerModels.Create(_dir, "bc_e2e_" + Guid.NewGuid().ToString("N")[..6]);
        t.Create();
        var icfg = TestServices.InitiatorConfig(models.GuestDb, t.Prefix, windowMs: 3000);
        using var initiator = Running.Initiator(icfg);
        using var guest = Running.Party(TestServices.PartyConfig("guest", models.GuestDb, t.Guest, t.Partials, t.Dlq, t.Prefix + "-guest"));
        using var host = Running.Party(TestServices.PartyConfig("host", models.HostDb, t.Host, t.Partials, t.Dlq, t.Prefix + "-host"));

        var sentGuest = FeatureReplay.Run(Replay(BreastCancerModels.GuestCsv, t.Guest, models.ModelId, "e-"), null, default);
        var sentHost = FeatureReplay.Run(Replay(BreastCancerModels.HostCsv, t.Host, models.ModelId, "e-"), null, default);
        Assert.Equal(models.Guest.Count, sentGuest);
        Assert.Equal(models.Host.Count, sentHost);

        var expected = models.Expected(1);
        Assert.True(expected.Count > 450, $"only {expected.Count} shared ids");
        using var redis = TestServices.ConnectRedis();
        var db = redis.GetDatabase();
        var keys = expected.Keys.Select(id => PredictionKeys.Record(models.ModelId, 1, id)).ToList();
        var values = RedisCheck.WaitAll(db, keys, TimeSpan.FromSeconds(60));
        foreach (var (id, pred) in expected)
        {
            var rec = PredictionRecord.Parse(values[PredictionKeys.Record(models.ModelId, 1, id)], "");
            RedisCheck.AssertBitIdentical(pred, rec, id);
            Assert.Equal("e-" + id, rec.EventId);
            Assert.Equal(["guest", "host"], rec.Parties!);
            Assert.Equal(id, rec.SampleId);
            Assert.True(db.KeyTimeToLive(PredictionKeys.Record(models.ModelId, 1, id)) is { } ttl && ttl > TimeSpan.FromMinutes(50));
        }

        // The batch path's reference, 'fed predict local', agrees to the bit as well.
        var local = models.PredictLocal(1);
        Assert.Equal(expected.Keys.Order(), local.Keys.Order());
        foreach (var (id, v) in local)
            Assert.Equal(BitConverter.DoubleToInt64Bits(v), BitConverter.DoubleToInt64Bits(PredictionRecord.Parse(values[PredictionKeys.Record(models.ModelId, 1, id)], "").PredictValue));

        // Ids only one party holds: an explicit incomplete record naming the missing party, never a score.
        var guestOnly = models.Guest.Keys.Where(id => !models.Host.ContainsKey(id)).ToList();
        var hostOnly = models.Host.Keys.Where(id => !models.Guest.ContainsKey(id)).ToList();
        Assert.NotEmpty(guestOnly);
        Assert.NotEmpty(hostOnly);
        var inc = RedisCheck.WaitAll(db, guestOnly.Concat(hostOnly).Select(id => StreamRecords.IncompleteKey(models.ModelId, 1, id)).ToList(), TimeSpan.FromSeconds(30));
        foreach (var id in guestOnly.Concat(hostOnly))
        {
            using var doc = JsonDocument.Parse(inc[StreamRecords.IncompleteKey(models.ModelId, 1, id)]);
            Assert.Equal("incomplete", doc.RootElement.GetProperty("status").GetString());
            var missing = doc.RootElement.GetProperty("missing").EnumerateArray().Select(e => e.GetString()).ToArray();
            Assert.Equal(guestOnly.Contains(id) ? ["host"] : new[] { "guest" }, missing);
            Assert.False(db.KeyExists(PredictionKeys.Record(models.ModelId, 1, id)), $"one-sided sample {id} got a score");
        }

        // Final-score events: one per request, the same prediction as in Redis.
        var scores = TestServices.ReadTopic(t.Scores, 4, l => l.Count >= expected.Count, TimeSpan.FromSeconds(20));
        Assert.Equal(expected.Count, scores.Count);
        foreach (var (key, value) in scores)
        {
            using var doc = JsonDocument.Parse(value);
            var id = doc.RootElement.GetProperty("sample_id").GetString()!;
            Assert.Equal("e-" + id, key);
            Assert.Equal(BitConverter.DoubleToInt64Bits(expected[id].Value), BitConverter.DoubleToInt64Bits(doc.RootElement.GetProperty("predict_value").GetDouble()));
        }
        var status = TestServices.ReadTopic(t.Status, 4, l => l.Count >= guestOnly.Count + hostOnly.Count, TimeSpan.FromSeconds(20));
        Assert.Equal(guestOnly.Count + hostOnly.Count, status.Count);

        guest.Stop(); host.Stop(); initiator.Stop();
        Assert.Equal(expected.Count, initiator.Metrics.EventsOut);
        Assert.Equal(0, initiator.Metrics.DeadLetters);
        Assert.Equal(guestOnly.Count + hostOnly.Count, initiator.Metrics.Incomplete);
        Assert.Equal(sentGuest, guest.Metrics.EventsIn);
        Assert.True(initiator.Metrics.Latency.Count == expected.Count);
    }

    [Fact]
    public void Malformed_events_unknown_models_and_bad_partials_reach_the_dead_letter_topic_with_the_reason()
    {
        var t = new Topics(TestServices.UniquePrefix("dlq"));
        var models = BreastCancerModels.Create(_dir, "bc_dlq_" + Guid.NewGuid().ToString("N")[..6]);
        t.Create();
        using var initiator = Running.Initiator(TestServices.InitiatorConfig(models.GuestDb, t.Prefix, windowMs: 2000));
        using var guest = Running.Party(TestServices.PartyConfig("guest", models.GuestDb, t.Guest, t.Partials, t.Dlq, t.Prefix + "-guest"));

        var good = models.Guest.First();
        var goodFeatures = string.Join(",", models.GuestFeatures.Select((f, i) => $"\"{f}\":{good.Value[i].ToString("R", System.Globalization.CultureInfo.InvariantCulture)}"));
        var now = FeatureEvent.Now();
        var bad = new (string Key, string Value, string Reason)[]
        {
            ("m1", "this is not json", "malformed"),
            ("m2", $"{{\"event_id\":\"m2\",\"sample_id\":\"s\",\"model_ids\":[\"{models.ModelId}\"],\"features\":{{\"mean_radius\":\"big\"}},\"event_time\":\"{now}\"}}", "malformed"),
            ("m3", $"{{\"event_id\":\"m3\",\"sample_id\":\"s\",\"model_ids\":[\"{models.ModelId}\"],\"features\":{{{goodFeatures}}}}}", "malformed"),
            ("m4", $"{{\"event_id\":\"m4\",\"sample_id\":\"s\",\"model_ids\":[\"no_such_model\"],\"features\":{{{goodFeatures}}},\"event_time\":\"{now}\"}}", "unknown_model"),
            ("m5", $"{{\"event_id\":\"m5\",\"sample_id\":\"s\",\"model_ids\":[\"{models.ModelId}\"],\"features\":{{\"mean_radius\":1.5}},\"event_time\":\"{now}\"}}", "missing_feature"),
        };
        string Signed(string json, string keyOf) => System.Text.Encoding.UTF8.GetString(PartSignature.Sign(System.Text.Encoding.UTF8.GetBytes(json), TestServices.Key(keyOf)));
        var badPartials = new (string Key, string Value, string Reason)[]
        {
            ("p1", Signed($"{{\"request_id\":\"p1\",\"model_id\":\"{models.ModelId}\",\"version\":1,\"party\":\"mallory\",\"sample_id\":\"s\",\"scores\":[0.5],\"event_time\":\"{now}\"}}", "guest"), "unknown_party"),
            ("p2", Signed($"{{\"request_id\":\"p2\",\"model_id\":\"{models.ModelId}\",\"version\":7,\"party\":\"host\",\"sample_id\":\"s\",\"scores\":[0.5],\"event_time\":\"{now}\"}}", "host"), "unknown_model"),
            ("p3", "{\"request_id\":\"p3\"", "malformed"),
            ("p4", $"{{\"request_id\":\"p4\",\"model_id\":\"{models.ModelId}\",\"version\":1,\"party\":\"host\",\"sample_id\":\"s\",\"scores\":[0.5],\"event_time\":\"{now}\"}}", "unsigned"),
            ("p5", Signed($"{{\"request_id\":\"p5\",\"model_id\":\"{models.ModelId}\",\"version\":1,\"party\":\"guest\",\"sample_id\":\"s\",\"scores\":[0.5,0.5],\"event_time\":\"{now}\"}}", "guest"), "bad_partial"),
        };
        var offsets = Produce(t.Guest, bad.Select(b => (b.Key, b.Value))).Concat(Produce(t.Partials, badPartials.Select(b => (b.Key, b.Value)))).ToDictionary();

        var all = bad.Concat(badPartials).ToList();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (guest.Metrics.DeadLetters + initiator.Metrics.DeadLetters < all.Count && DateTime.UtcNow < deadline) Thread.Sleep(50);
        guest.Stop(); initiator.Stop(); // flushed: every dead letter is in its topic
        var dlq = TestServices.ReadToEnd(t.Dlq, 4);
        Assert.Equal(all.Count, dlq.Count);
        foreach (var (key, value) in dlq)
        {
            using var doc = JsonDocument.Parse(value);
            var want = all.Single(b => b.Key == key);
            Assert.Equal(want.Reason, doc.RootElement.GetProperty("reason").GetString());
            Assert.False(string.IsNullOrEmpty(doc.RootElement.GetProperty("error").GetString()));
            // Where the message is, not what it says.
            var (topic, partition, offset) = offsets[key!];
            Assert.Equal(topic, doc.RootElement.GetProperty("topic").GetString());
            Assert.Equal(partition, doc.RootElement.GetProperty("partition").GetInt32());
            Assert.Equal(offset, doc.RootElement.GetProperty("offset").GetInt64());
            Assert.False(doc.RootElement.TryGetProperty("payload", out _));
        }
        Assert.Equal(bad.Length, guest.Metrics.DeadLetters);
        Assert.Equal(badPartials.Length, initiator.Metrics.DeadLetters);
        Assert.Equal(0, initiator.Metrics.EventsOut);
    }

    [Fact]
    public void A_stopped_party_yields_explicit_incomplete_records_naming_it_and_no_score()
    {
        var t = new Topics(TestServices.UniquePrefix("stopped"));
        var models = BreastCancerModels.Create(_dir, "bc_stop_" + Guid.NewGuid().ToString("N")[..6]);
        t.Create();
        using var initiator = Running.Initiator(TestServices.InitiatorConfig(models.GuestDb, t.Prefix, windowMs: 1500));
        using var guest = Running.Party(TestServices.PartyConfig("guest", models.GuestDb, t.Guest, t.Partials, t.Dlq, t.Prefix + "-guest"));
        // The host party is stopped: its events are produced but nobody scores them.
        FeatureReplay.Run(Replay(BreastCancerModels.GuestCsv, t.Guest, models.ModelId, "s-", limit: 60), null, default);
        FeatureReplay.Run(Replay(BreastCancerModels.HostCsv, t.Host, models.ModelId, "s-", limit: 60), null, default);
        var ids = models.Guest.Keys.Take(60).ToList();

        using var redis = TestServices.ConnectRedis();
        var db = redis.GetDatabase();
        var inc = RedisCheck.WaitAll(db, ids.Select(id => StreamRecords.IncompleteKey(models.ModelId, 1, id)).ToList(), TimeSpan.FromSeconds(30));
        foreach (var id in ids)
        {
            using var doc = JsonDocument.Parse(inc[StreamRecords.IncompleteKey(models.ModelId, 1, id)]);
            Assert.Equal(["host"], doc.RootElement.GetProperty("missing").EnumerateArray().Select(e => e.GetString()));
            Assert.Equal(["guest"], doc.RootElement.GetProperty("arrived").EnumerateArray().Select(e => e.GetString()));
            Assert.Equal("s-" + id, doc.RootElement.GetProperty("event_id").GetString());
            Assert.False(db.KeyExists(PredictionKeys.Record(models.ModelId, 1, id)));
        }
        var status = TestServices.ReadTopic(t.Status, 4, l => l.Count >= ids.Count, TimeSpan.FromSeconds(20));
        Assert.Equal(ids.Count, status.Count);
        Assert.All(status, s => Assert.Contains("\"missing\":[\"host\"]", s.Value));
        guest.Stop(); initiator.Stop();
        Assert.Equal(0, initiator.Metrics.EventsOut);
    }

    [Fact]
    public void A_newly_activated_version_is_picked_up_without_restarting_or_dropping_events()
    {
        var t = new Topics(TestServices.UniquePrefix("version"));
        var models = BreastCancerModels.Create(_dir, "bc_ver_" + Guid.NewGuid().ToString("N")[..6]);
        t.Create();
        using var initiator = Running.Initiator(TestServices.InitiatorConfig(models.GuestDb, t.Prefix, windowMs: 5000));
        using var guest = Running.Party(TestServices.PartyConfig("guest", models.GuestDb, t.Guest, t.Partials, t.Dlq, t.Prefix + "-guest"));
        using var host = Running.Party(TestServices.PartyConfig("host", models.HostDb, t.Host, t.Partials, t.Dlq, t.Prefix + "-host"));
        using var redis = TestServices.ConnectRedis();
        var db = redis.GetDatabase();

        FeatureReplay.Run(Replay(BreastCancerModels.GuestCsv, t.Guest, models.ModelId, "a-"), null, default);
        FeatureReplay.Run(Replay(BreastCancerModels.HostCsv, t.Host, models.ModelId, "a-"), null, default);
        var v1 = models.Expected(1);
        var got1 = RedisCheck.WaitAll(db, v1.Keys.Select(id => PredictionKeys.Record(models.ModelId, 1, id)).ToList(), TimeSpan.FromSeconds(60));

        // Activate v2 at both parties (and the initiator's registry, which is the guest's warehouse) while running.
        models.Activate(models.GuestDb, 2);
        models.Activate(models.HostDb, 2);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while ((guest.Metrics.ModelSwitches < 1 || host.Metrics.ModelSwitches < 1) && DateTime.UtcNow < deadline) Thread.Sleep(50);
        Assert.Equal(1, guest.Metrics.ModelSwitches);
        Assert.Equal(1, host.Metrics.ModelSwitches);

        FeatureReplay.Run(Replay(BreastCancerModels.GuestCsv, t.Guest, models.ModelId, "b-"), null, default);
        FeatureReplay.Run(Replay(BreastCancerModels.HostCsv, t.Host, models.ModelId, "b-"), null, default);
        var v2 = models.Expected(2);
        var got2 = RedisCheck.WaitAll(db, v2.Keys.Select(id => PredictionKeys.Record(models.ModelId, 2, id)).ToList(), TimeSpan.FromSeconds(60));
        foreach (var (id, p) in v2)
        {
            var rec = PredictionRecord.Parse(got2[PredictionKeys.Record(models.ModelId, 2, id)], "");
            RedisCheck.AssertBitIdentical(p, rec, id);
            Assert.Equal("b-" + id, rec.EventId);
            Assert.NotEqual(BitConverter.DoubleToInt64Bits(v1[id].Value), BitConverter.DoubleToInt64Bits(p.Value));
            // v1 predictions stay as they were: the version is part of the key.
            RedisCheck.AssertBitIdentical(v1[id], PredictionRecord.Parse(got1[PredictionKeys.Record(models.ModelId, 1, id)], ""), id);
        }
        guest.Stop(); host.Stop(); initiator.Stop();
        Assert.Equal(2 * v1.Count, initiator.Metrics.EventsOut);
        Assert.Equal(0, guest.Metrics.DeadLetters + host.Metrics.DeadLetters + initiator.Metrics.DeadLetters);
    }

    [Fact]
    public void When_redis_stalls_the_initiator_retries_with_backoff_pauses_consumption_and_loses_nothing()
    {
        var t = new Topics(TestServices.UniquePrefix("redis"));
        var models = BreastCancerModels.Create(_dir, "bc_redis_" + Guid.NewGuid().ToString("N")[..6]);
        t.Create();
        var icfg = TestServices.InitiatorConfig(models.GuestDb, t.Prefix, windowMs: 20000);
        icfg.RedisRetryInitialMs = 50;
        icfg.RedisRetryMaxMs = 500; // a write not answered within 1 s counts as failed and is retried
        using var initiator = Running.Initiator(icfg);
        using var guest = Running.Party(TestServices.PartyConfig("guest", models.GuestDb, t.Guest, t.Partials, t.Dlq, t.Prefix + "-guest"));
        using var host = Running.Party(TestServices.PartyConfig("host", models.HostDb, t.Host, t.Partials, t.Dlq, t.Prefix + "-host"));
        using var redis = TestServices.ConnectRedis();
        var db = redis.GetDatabase();
        var ids = models.BothIds.Take(100).ToHashSet();
        FeatureReplay.Run(Replay(BreastCancerModels.GuestCsv, t.Guest, models.ModelId, "r-", limit: 5), null, default);
        FeatureReplay.Run(Replay(BreastCancerModels.HostCsv, t.Host, models.ModelId, "r-", limit: 5), null, default);
        Thread.Sleep(3000); // the pipeline is running
        // CLIENT needs an admin connection; kept open, as closing it would wait out the pause (QUIT is paused too).
        using var admin = StackExchange.Redis.ConnectionMultiplexer.Connect(TestServices.Redis + ",allowAdmin=true");
        admin.GetDatabase().Execute("CLIENT", "PAUSE", "4000"); // Redis answers no client for 4 s
        FeatureReplay.Run(Replay(BreastCancerModels.GuestCsv, t.Guest, models.ModelId, "r-"), null, default);
        FeatureReplay.Run(Replay(BreastCancerModels.HostCsv, t.Host, models.ModelId, "r-"), null, default);
        var expected = models.Expected(1);
        var values = RedisCheck.WaitAll(db, expected.Keys.Select(id => PredictionKeys.Record(models.ModelId, 1, id)).ToList(), TimeSpan.FromSeconds(60));
        foreach (var (id, p) in expected)
            RedisCheck.AssertBitIdentical(p, PredictionRecord.Parse(values[PredictionKeys.Record(models.ModelId, 1, id)], ""), id);
        guest.Stop(); host.Stop(); initiator.Stop();
        Assert.True(initiator.Metrics.RedisRetries > 0, "the stall did not cause a retry");
        Assert.True(initiator.Metrics.Paused > 0, "consumption was not paused while Redis stalled");
        Assert.True(initiator.Metrics.EventsOut >= expected.Count);
    }

    /// <summary>Produces and returns where each message landed (by key).</summary>
    static List<KeyValuePair<string, (string Topic, int Partition, long Offset)>> Produce(string topic, IEnumerable<(string Key, string Value)> messages)
    {
        KafkaNative.Ensure();
        using var p = new Confluent.Kafka.ProducerBuilder<string, string>(new Confluent.Kafka.ProducerConfig(TestServices.OldBrokerKafka())).Build();
        var sent = messages.Select(m => (m.Key, p.ProduceAsync(topic, new Confluent.Kafka.Message<string, string> { Key = m.Key, Value = m.Value }))).ToList();
        Assert.Equal(0, p.Flush(TimeSpan.FromSeconds(10)));
        return sent.Select(s => KeyValuePair.Create(s.Key, (s.Item2.Result.Topic, s.Item2.Result.Partition.Value, s.Item2.Result.Offset.Value))).ToList();
    }
}
