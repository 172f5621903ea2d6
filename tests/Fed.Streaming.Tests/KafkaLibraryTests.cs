using Confluent.Kafka;

namespace Fed.Streaming.Tests;

/// <summary>The Kafka client runs on the librdkafka bundled with Confluent.Kafka, even where Debian's is installed.</summary>
public sealed class KafkaLibraryTests
{
    [Fact]
    public void The_bundled_librdkafka_2_16_is_loaded_not_the_system_one_and_consumes_from_the_real_broker()
    {
        KafkaNative.Ensure();
        Assert.StartsWith("2.16.", Library.VersionString);
        Assert.Equal(0x0210, Library.Version >> 16); // 0xMMmmrrxx: 2.16
        // The process maps the bundle's file, and no other librdkafka (e.g. /usr/lib/x86_64-linux-gnu/librdkafka.so.1).
        var mapped = File.ReadAllLines("/proc/self/maps").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length >= 6 && f[5].Contains("librdkafka", StringComparison.Ordinal)).Select(f => f[5]).Distinct().ToList();
        var bundled = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "centos8-librdkafka.so");
        Assert.Equal([bundled], mapped);

        // A round trip through the 0.9 test broker: the first Consume is where a mismatched library used to fail
        // (EntryPointNotFoundException: rd_kafka_topic_partition_get_leader_epoch).
        var topic = TestServices.UniquePrefix("librdkafka");
        TestServices.CreateTopics(1, topic);
        using (var p = new ProducerBuilder<string, string>(new ProducerConfig(TestServices.OldBrokerKafka())).Build())
        {
            p.Produce(topic, new Message<string, string> { Key = "k", Value = "v" });
            Assert.Equal(0, p.Flush(TimeSpan.FromSeconds(10)));
        }
        var read = TestServices.ReadToEnd(topic, 1);
        Assert.Equal([("k", "v")], read.Select(r => (r.Key, r.Value)));
    }
}
