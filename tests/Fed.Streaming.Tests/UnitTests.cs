using System.Text;
using Confluent.Kafka;
using Fed.Core.Scoring;

namespace Fed.Streaming.Tests;

/// <summary>Pieces that need no server.</summary>
public sealed class UnitTests
{
    [Fact]
    public void Offsets_are_committable_only_up_to_the_lowest_message_still_in_work()
    {
        var t = new OffsetTracker();
        var tp = new TopicPartition("x", 0);
        foreach (var o in new long[] { 10, 11, 12 }) t.Begin(tp, o);
        t.Done(tp, 11);
        Assert.Equal(10, Assert.Single(t.Advance()).Offset.Value);
        t.Done(tp, 10);
        Assert.Equal(12, Assert.Single(t.Advance()).Offset.Value);
        t.Done(tp, 12);
        Assert.Equal(13, Assert.Single(t.Advance()).Offset.Value);
        Assert.Empty(t.Advance());
    }

    [Fact]
    public void Prediction_keys_and_values_are_the_shared_deterministic_format()
    {
        Assert.Equal("fed:pred:bc:v3:s-1", PredictionKeys.Record("bc", 3, "s-1"));
        Assert.Equal("fed:incomplete:bc:v3:s-1", StreamRecords.IncompleteKey("bc", 3, "s-1"));
        var sig = new ModelSignature("bc", 3, Fed.Core.Model.ModelKind.Logistic, [], ["guest", "host"]);
        var json = StreamRecords.Prediction(sig, "s-1", "e-1", new Prediction(0.1 + 0.2, 1, null), "2026-01-01T00:00:00Z").ToJson();
        Assert.Equal(json, StreamRecords.Prediction(sig, "s-1", "e-1", new Prediction(0.1 + 0.2, 1, null), "2026-01-01T00:00:00Z").ToJson());
        var back = PredictionRecord.Parse(json, "k");
        Assert.Equal(BitConverter.DoubleToInt64Bits(0.1 + 0.2), BitConverter.DoubleToInt64Bits(back.PredictValue));
        Assert.Equal("e-1", back.EventId);
        Assert.Equal("streaming", back.Source);
        Assert.Equal(["guest", "host"], back.Parties!);
    }

    [Fact]
    public void One_vs_rest_predictions_carry_the_class_label_and_every_class_probability()
    {
        var sig = new ModelSignature("ovr", 1, Fed.Core.Model.ModelKind.OneVsRest, ["setosa", "versicolor", "virginica"], ["guest", "host"]);
        var p = Combiner.Combine(sig, new Dictionary<string, double[]> { ["guest"] = [-1, 0.5, 0.25], ["host"] = [0, 0.5, -0.25] });
        var back = PredictionRecord.Parse(StreamRecords.Prediction(sig, "s-1", "e-1", p, "2026-01-01T00:00:00Z").ToJson(), "k");
        Assert.Equal("versicolor", back.PredictedClass);
        Assert.Equal(Combiner.Sigmoid(1.0), back.PredictValue);
        Assert.Equal(Combiner.Sigmoid(0.0), back.Probabilities!["virginica"]);
        Assert.Equal(Combiner.Sigmoid(-1.0), back.Probabilities!["setosa"]);
    }

    [Theory]
    [InlineData("{", "malformed")]
    [InlineData("{\"event_id\":\"e\",\"sample_id\":\"s\",\"model_ids\":[],\"features\":{},\"event_time\":\"2026-01-01T00:00:00Z\"}", "model_ids")]
    [InlineData("{\"event_id\":\"e\",\"sample_id\":\"s\",\"model_ids\":[\"m\"],\"features\":{\"a\":\"1\"},\"event_time\":\"2026-01-01T00:00:00Z\"}", "features.a")]
    [InlineData("{\"event_id\":\"e\",\"sample_id\":\"s\",\"model_ids\":[\"m\"],\"features\":{},\"event_time\":\"yesterday\"}", "event_time")]
    [InlineData("{\"event_id\":\"\",\"sample_id\":\"s\",\"model_ids\":[\"m\"],\"features\":{},\"event_time\":\"2026-01-01T00:00:00Z\"}", "event_id")]
    public void Malformed_feature_events_are_refused_with_the_field_named(string json, string field)
    {
        var e = Assert.Throws<MalformedMessageException>(() => FeatureEvent.Parse(Encoding.UTF8.GetBytes(json)));
        Assert.Contains(field, e.Message + e.Reason);
    }

    [Theory]
    [InlineData("{\"event_id\":\"e\",\"sample_id\":\"s\",\"model_ids\":[\"m\"],\"features\":{},\"event_time\":\"2026-01-01T00:00:00Z\"} x", "not valid JSON")]
    [InlineData("[1]", "expected a JSON object")]
    [InlineData("{\"event_id\":\"e\",\"sample_id\":\"s\",\"model_ids\":[\"m\"],\"features\":{\"a\":1,\"a\":2},\"event_time\":\"2026-01-01T00:00:00Z\"}", "features.a: given twice")]
    [InlineData("{\"event_id\":\"e\",\"sample_id\":7,\"model_ids\":[\"m\"],\"features\":{},\"event_time\":\"2026-01-01T00:00:00Z\"}", "sample_id: expected a string")]
    [InlineData("{\"event_id\":\"e\",\"sample_id\":\"s\",\"model_ids\":[\"m\",3],\"features\":{},\"event_time\":\"2026-01-01T00:00:00Z\"}", "model_ids[1]: expected a string")]
    [InlineData("{\"event_id\":\"e\",\"sample_id\":\"s\",\"model_ids\":[\"m\"],\"features\":{\"a\":[1]},\"event_time\":\"2026-01-01T00:00:00Z\"}", "features.a: expected a finite number or null, got Array")]
    public void The_event_reader_checks_the_whole_message_and_names_the_field(string json, string message)
    {
        var e = Assert.Throws<MalformedMessageException>(() => new FeatureEventReader().Read(Encoding.UTF8.GetBytes(json)));
        Assert.Equal("malformed", e.Reason);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void One_reader_reads_many_events_with_escaped_names_and_reuses_the_model_ids()
    {
        var r = new FeatureEventReader();
        r.Read("{\"event_id\":\"e1\",\"sample_id\":\"s\",\"extra\":{\"x\":[1,2]},\"model_ids\":[\"m\"],\"features\":{\"a\\u00e9\":1.5,\"b\":null},\"event_time\":\"2026-01-01T00:00:00Z\"}"u8);
        var models = r.ModelIds;
        Assert.Equal(2, r.FeatureCount);
        Assert.Equal("a\u00e9", r.FeatureName(0).ToString());
        Assert.Equal(1.5, r.FeatureValue(0));
        Assert.True(double.IsNaN(r.FeatureValue(1)));
        r.Read("{\"event_id\":\"e2\",\"sample_id\":\"s2\",\"model_ids\":[\"m\"],\"features\":{\"c\":2},\"event_time\":\"2026-01-01T00:00:00Z\"}"u8);
        Assert.Equal(("e2", "s2", 1, "c"), (r.EventId, r.SampleId, r.FeatureCount, r.FeatureName(0).ToString()));
        Assert.Same(models, r.ModelIds);
    }

    [Theory]
    [InlineData("{\"request_id\":\"r\",\"model_id\":\"m\",\"version\":1,\"party\":\"p\",\"sample_id\":\"s\",\"scores\":[1,\"x\"]}", "bad_partial", "scores[1]")]
    [InlineData("{\"request_id\":\"r\",\"model_id\":\"m\",\"version\":0,\"party\":\"p\",\"sample_id\":\"s\",\"scores\":[1]}", "malformed", "version")]
    [InlineData("{\"request_id\":\"r\",\"model_id\":\"m\",\"version\":1,\"sample_id\":\"s\",\"scores\":[]}", "malformed", "party")]
    [InlineData("{\"request_id\":\"r\",\"model_id\":\"m\",\"version\":1,\"party\":\"p\",\"sample_id\":\"s\",\"scores\":[]}", "malformed", "scores")]
    public void Bad_partial_scores_are_refused_with_the_reason_and_the_field(string json, string reason, string field)
    {
        var e = Assert.Throws<MalformedMessageException>(() => new PartialScoreReader().Read(Encoding.UTF8.GetBytes(json)));
        Assert.Equal(reason, e.Reason);
        Assert.Contains(field, e.Message);
    }

    [Fact]
    public void Partial_scores_round_trip_bit_for_bit()
    {
        var m = new PartialScoreMessage { RequestId = "r", ModelId = "m", Version = 2, Party = "host", SampleId = "s",
            Scores = [0.1 + 0.2, -1e-300, 123456789.123456789], EventTime = "2026-01-01T00:00:00Z", Checksum = "sha256:ab" };
        var reader = new PartialScoreReader();
        for (var i = 0; i < 2; i++)
        {
            var back = reader.Read(m.ToJson());
            Assert.Equal((m.RequestId, m.ModelId, m.Version, m.Party, m.SampleId, m.EventTime, m.Checksum),
                (back.RequestId, back.ModelId, back.Version, back.Party, back.SampleId, back.EventTime, back.Checksum));
            Assert.Equal(m.Scores.Select(BitConverter.DoubleToInt64Bits), back.Scores.Select(BitConverter.DoubleToInt64Bits));
        }
    }

    [Fact]
    public void Feature_events_round_trip_numbers_bit_for_bit_and_null_is_missing()
    {
        var e = new FeatureEvent { EventId = "e", SampleId = "s", ModelIds = ["m"], EventTime = FeatureEvent.Now(),
            Features = new() { ["a"] = 0.1 + 0.2, ["b"] = double.NaN, ["c"] = -1e-300 } };
        var back = FeatureEvent.Parse(e.ToJson());
        Assert.Equal(BitConverter.DoubleToInt64Bits(0.1 + 0.2), BitConverter.DoubleToInt64Bits(back.Features["a"]));
        Assert.True(double.IsNaN(back.Features["b"]));
        Assert.Equal(-1e-300, back.Features["c"]);
    }

    [Fact]
    public void Production_config_defaults_to_a_modern_broker_and_refuses_unknown_options()
    {
        var dir = Path.Combine(Path.GetTempPath(), "fed-cfg-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            var ok = Path.Combine(dir, "p.json");
            var key = "file:" + TestServices.KeyFile("guest");
            File.WriteAllText(ok, "{\"party\":\"guest\",\"group_id\":\"g\",\"input_topic\":\"in\",\"kafka\":{\"bootstrap.servers\":\"h:9092\"},\"signing_key\":\"" + key + "\"}");
            var party = PartyConfig.Load(ok);
            var cfg = party.BuildConsumerConfig();
            Assert.Null(cfg.ApiVersionRequest);
            Assert.Null(cfg.BrokerVersionFallback);
            Assert.Equal("false", cfg.Get("enable.auto.offset.store"));
            // Dead letters per party by default; the config shows where the key is, never the key.
            Assert.Equal("fed.deadletter.guest", party.DeadLetterTopic);
            Assert.Contains(key, party.ToJson());
            Assert.DoesNotContain(File.ReadAllText(TestServices.KeyFile("guest")).Trim(), party.ToJson());
            var bad = Path.Combine(dir, "b.json");
            File.WriteAllText(bad, "{\"party\":\"guest\",\"group_id\":\"g\",\"input_topic\":\"in\",\"kafka\":{\"bootstrap.servers\":\"h\"},\"windw_ms\":5}");
            Assert.Contains("windw_ms", Assert.Throws<Fed.Core.BadInputException>(() => PartyConfig.Load(bad)).Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Party_keys_are_required_given_by_reference_owner_only_and_long_enough()
    {
        if (!OperatingSystem.IsLinux()) throw new PlatformNotSupportedException("Fed's tests run on Linux (Debian 12)");
        var dir = Path.Combine(Path.GetTempPath(), "fed-keys-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            PartyConfig Party(string signingKey) => new()
            {
                Party = "guest", GroupId = "g", InputTopic = "in", Kafka = new() { ["bootstrap.servers"] = "h:9092" }, SigningKey = signingKey,
            };
            Assert.Contains("signing_key is required", Assert.Throws<Fed.Core.BadInputException>(() => Party("").Check()).Message);
            var secret = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
            var e = Assert.Throws<Fed.Core.BadInputException>(() => Party(secret).Check());
            Assert.Contains("file:PATH", e.Message);
            Assert.DoesNotContain(secret, e.Message);
            var open = Path.Combine(dir, "open.key");
            File.WriteAllText(open, secret);
            File.SetUnixFileMode(open, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            Assert.Contains("chmod 600", Assert.Throws<Fed.Core.BadInputException>(() => Party("file:" + open).Check()).Message);
            File.SetUnixFileMode(open, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            Party("file:" + open).Check();
            var shortKey = Path.Combine(dir, "short.key");
            File.WriteAllText(shortKey, Convert.ToBase64String(new byte[16]));
            File.SetUnixFileMode(shortKey, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            Assert.Contains("at least 32", Assert.Throws<Fed.Core.BadInputException>(() => Party("file:" + shortKey).Check()).Message);
            Assert.Contains("FED_NO_SUCH_KEY", Assert.Throws<Fed.Core.BadInputException>(() => Party("env:FED_NO_SUCH_KEY").Check()).Message);
            var init = new InitiatorConfig { GroupId = "i", Kafka = new() { ["bootstrap.servers"] = "h:9092" }, Redis = "r:6379" };
            Assert.Contains("party_keys is required", Assert.Throws<Fed.Core.BadInputException>(() => init.Check()).Message);
            init.PartyKeys["guest"] = "file:" + open;
            init.Check();
            Assert.Equal("fed.deadletter.initiator", init.DeadLetterTopic);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void A_signed_partial_verifies_only_under_its_key_and_unaltered()
    {
        var m = new PartialScoreMessage { RequestId = "r", ModelId = "m", Version = 2, Party = "host", SampleId = "s",
            Scores = [0.1 + 0.2], EventTime = "2026-01-01T00:00:00Z", Checksum = "sha256:ab" };
        var key = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
        var other = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
        var signed = m.ToSignedJson(key);
        Assert.True(PartSignature.Verify(signed, key));
        Assert.False(PartSignature.Verify(signed, other));
        Assert.False(PartSignature.Verify(m.ToJson(), key));
        Assert.False(PartSignature.IsSigned(m.ToJson()));
        // The signed message is still one JSON object that the reader reads as before.
        var back = new PartialScoreReader().Read(signed);
        Assert.Equal(BitConverter.DoubleToInt64Bits(0.1 + 0.2), BitConverter.DoubleToInt64Bits(back.Scores[0]));
        // Any altered byte (here every byte in turn) breaks the MAC.
        for (var i = 0; i < signed.Length; i++)
        {
            var x = (byte[])signed.Clone();
            x[i] ^= 0x01;
            Assert.False(PartSignature.Verify(x, key), $"byte {i} altered and still verified");
        }
        // A forged party name under a valid MAC for another name fails too.
        var renamed = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(signed).Replace("\"party\":\"host\"", "\"party\":\"gues\""));
        Assert.False(PartSignature.Verify(renamed, key));
    }

    [Fact]
    public void A_dead_letter_names_the_source_and_reason_and_carries_no_payload_or_json_parser_quote()
    {
        var json = Encoding.UTF8.GetString(OutputMessages.DeadLetter("party:guest", "malformed", "e", "t", 3, 42, "k"));
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        Assert.Equal(["source", "reason", "error", "topic", "partition", "offset", "key"], doc.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal(42, doc.RootElement.GetProperty("offset").GetInt64());
        // System.Text.Json's own message quotes bytes of the input; the reader's error does not.
        var e = Assert.Throws<MalformedMessageException>(() => new FeatureEventReader().Read("{\"features\": {\"a\": 17.99123x}}"u8));
        Assert.DoesNotContain("17.99", e.Message);
        Assert.DoesNotContain("x", e.Message.Replace("byte", ""));
    }

    [Fact]
    public void A_missing_server_variable_fails_with_a_message_saying_to_run_scripts_test_sh()
    {
        var e = Assert.Throws<InvalidOperationException>(() => TestServices.Require("FED_TEST_NO_SUCH_SERVER"));
        Assert.Contains("scripts/test.sh", e.Message);
    }
}
