using System.Text.Json;
using Fed.Core.Scoring;

namespace Fed.Streaming.Tests;

/// <summary>SIGKILL and restart of each consumer (both parties and the initiator, as child processes) while events flow.</summary>
public sealed class KillRestartTests : IDisposable
{
    readonly string _dir = Path.Combine(Path.GetTempPath(), "fed-stream-kill-" + Guid.NewGuid().ToString("N")[..8]);

    public void Dispose() { if (Environment.GetEnvironmentVariable("FED_TEST_KEEP") != "1") try { Directory.Delete(_dir, true); } catch (IOException) { } }

    [Fact]
    public void Killing_and_restarting_each_consumer_loses_no_event_and_writes_no_wrong_or_conflicting_score()
    {
        var prefix = TestServices.UniquePrefix("kill");
        string guestTopic = prefix + ".features.guest", hostTopic = prefix + ".features.host", partials = prefix + ".partials";
        var models = BreastCancerModels.Create(_dir, "bc_kill_" + Guid.NewGuid().ToString("N")[..6]);
        var icfg = TestServices.InitiatorConfig(models.GuestDb, prefix, windowMs: 15000);
        icfg.MetricsIntervalMs = 1000;
        TestServices.CreateTopics(4, guestTopic, hostTopic, partials, icfg.ScoresTopic, icfg.StatusTopic, icfg.DeadLetterTopic);
        var gcfg = TestServices.PartyConfig("guest", models.GuestDb, guestTopic, partials, icfg.DeadLetterTopic, prefix + "-guest");
        var hcfg = TestServices.PartyConfig("host", models.HostDb, hostTopic, partials, icfg.DeadLetterTopic, prefix + "-host");
        string Write(string name, StreamConfigBase c) { var p = Path.Combine(_dir, name); File.WriteAllText(p, c.ToJson()); return p; }
        var ipath = Write("initiator.json", icfg);
        var gpath = Write("guest.json", gcfg);
        var hpath = Write("host.json", hcfg);
        FedProcess Initiator() => FedProcess.Start(Path.Combine(_dir, "initiator.log"), "stream", "initiator", "--config", ipath);
        FedProcess Guest() => FedProcess.Start(Path.Combine(_dir, "guest.log"), "stream", "party", "--config", gpath);
        FedProcess Host() => FedProcess.Start(Path.Combine(_dir, "host.log"), "stream", "party", "--config", hpath);

        var procs = new List<FedProcess> { Initiator(), Guest(), Host() };
        try
        {
            // Events flow for ~5 s while each consumer is killed (SIGKILL) and restarted in turn.
            ReplayOptions Replay(string csv, string topic) => new()
            {
                CsvPath = csv, Topic = topic, ModelIds = [models.ModelId], Kafka = TestServices.OldBrokerKafka(), EventPrefix = "k-", Drop = ["y"], Rate = 110,
            };
            var rg = new Thread(() => FeatureReplay.Run(Replay(BreastCancerModels.GuestCsv, guestTopic), null, default));
            var rh = new Thread(() => FeatureReplay.Run(Replay(BreastCancerModels.HostCsv, hostTopic), null, default));
            rg.Start(); rh.Start();
            Thread.Sleep(3000);
            procs[1].KillHard(); procs[1] = Guest();
            Thread.Sleep(1000);
            procs[0].KillHard(); procs[0] = Initiator();
            Thread.Sleep(1000);
            procs[2].KillHard(); procs[2] = Host();
            rg.Join(); rh.Join();

            var expected = models.Expected(1);
            using var redis = TestServices.ConnectRedis();
            var db = redis.GetDatabase();
            var values = RedisCheck.WaitAll(db, expected.Keys.Select(id => PredictionKeys.Record(models.ModelId, 1, id)).ToList(), TimeSpan.FromSeconds(90));
            foreach (var (id, p) in expected)
                RedisCheck.AssertBitIdentical(p, PredictionRecord.Parse(values[PredictionKeys.Record(models.ModelId, 1, id)], ""), id);

            // One-sided ids end as incomplete records; no request that both parties answered does.
            var oneSided = models.Guest.Keys.Concat(models.Host.Keys).Where(id => !expected.ContainsKey(id)).Distinct().ToList();
            RedisCheck.WaitAll(db, oneSided.Select(id => StreamRecords.IncompleteKey(models.ModelId, 1, id)).ToList(), TimeSpan.FromSeconds(60));
            var wrongIncomplete = expected.Keys.Where(id => db.KeyExists(StreamRecords.IncompleteKey(models.ModelId, 1, id))).ToList();
            Assert.True(wrongIncomplete.Count == 0, $"incomplete records for answered requests: {string.Join(", ", wrongIncomplete.Take(10))}");

            // At least once: every request has a final-score event; replays may repeat one, never with another value.
            var scores = TestServices.ReadTopic(icfg.ScoresTopic, 4, l => l.Select(x => x.Key).Distinct().Count() >= expected.Count, TimeSpan.FromSeconds(30));
            var bySample = scores.Select(s => JsonDocument.Parse(s.Value).RootElement)
                .GroupBy(e => e.GetProperty("sample_id").GetString()!).ToDictionary(g => g.Key, g => g.Select(e => e.GetProperty("predict_value").GetDouble()).ToList());
            Assert.Equal(expected.Count, bySample.Count);
            foreach (var (id, preds) in bySample)
                Assert.All(preds, v => Assert.Equal(BitConverter.DoubleToInt64Bits(expected[id].Value), BitConverter.DoubleToInt64Bits(v)));
            var dlq = TestServices.ReadToEnd(icfg.DeadLetterTopic, 4); // to the end offsets: an empty list is a proof
            Assert.True(dlq.Count == 0, "dead letters: " + string.Join("\n", dlq.Select(d => d.Value)));

            // Clean shutdown on SIGTERM: exit 0 after committing.
            foreach (var p in procs) Assert.Equal(0, p.Terminate(TimeSpan.FromSeconds(30)));
            Assert.Contains("fed_stream_metrics", File.ReadAllText(Path.Combine(_dir, "initiator.log")));
        }
        catch
        {
            foreach (var f in new[] { "initiator.log", "guest.log", "host.log" })
                Console.Error.WriteLine($"==== {f}\n" + (File.Exists(Path.Combine(_dir, f)) ? File.ReadAllText(Path.Combine(_dir, f)) : "(none)"));
            throw;
        }
        finally
        {
            foreach (var p in procs) p.Dispose();
        }
    }
}
