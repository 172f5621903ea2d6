using Confluent.Kafka;

namespace Fed.Streaming.Tests;

/// <summary>The delivery tickets of <see cref="BatchProducer"/> against the real broker.</summary>
public sealed class DeliveryTests
{
    [Fact]
    public void A_batch_is_released_only_when_every_message_is_acknowledged_and_a_failed_one_keeps_it_open()
    {
        var topic = TestServices.UniquePrefix("delivery");
        TestServices.CreateTopics(1, topic);
        var cfg = new ProducerConfig(TestServices.OldBrokerKafka()) { MessageMaxBytes = 4_000_000, LingerMs = 1 };
        var log = new StringWriter();
        using var p = new BatchProducer(cfg, TextWriter.Synchronized(log), timeoutMs: 1000);
        var tp = new TopicPartition(topic, 0);

        p.Add(topic, "ok", "{}"u8.ToArray());
        p.Open.Offsets.Add((tp, 1));
        p.Seal();
        // The broker refuses messages above its message.max.bytes (1 MB): delivery fails every time it is retried.
        p.Add(topic, "too-big", new byte[1_500_000]);
        p.Open.Offsets.Add((tp, 2));
        p.Seal();

        var released = new List<long>();
        p.Drain(done => released.AddRange(done.SelectMany(t => t.Offsets).Select(o => o.Offset)), TimeSpan.FromSeconds(4));
        Assert.Equal([1L], released);
        Assert.Equal(1, p.InFlight);
        Assert.Contains("failed delivery", log.ToString());
    }
}
