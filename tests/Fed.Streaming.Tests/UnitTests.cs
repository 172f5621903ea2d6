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
            File.WriteAllText(ok, "{\"party\":\"guest\",\"group_id\":\"g\",\"input_topic\":\"in\",\"kafka\":{\"bootstrap.servers\":\"h:9092\"}}");
            var cfg = PartyConfig.Load(ok).BuildConsumerConfig();
            Assert.Null(cfg.ApiVersionRequest);
            Assert.Equal("false", cfg.Get("enable.auto.offset.store"));
            var bad = Path.Combine(dir, "b.json");
            File.WriteAllText(bad, "{\"party\":\"guest\",\"group_id\":\"g\",\"input_topic\":\"in\",\"kafka\":{\"bootstrap.servers\":\"h\"},\"windw_ms\":5}");
            Assert.Contains("windw_ms", Assert.Throws<Fed.Core.BadInputException>(() => PartyConfig.Load(bad)).Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void A_missing_server_variable_fails_with_a_message_saying_to_run_scripts_test_sh()
    {
        var e = Assert.Throws<InvalidOperationException>(() => TestServices.Require("FED_TEST_NO_SUCH_SERVER"));
        Assert.Contains("scripts/test.sh", e.Message);
    }
}
