using System.Text.Json;
using Fed.Core.Scoring;

namespace Fed.Streaming.Tests;

/// <summary>
/// Scale-out: each party runs K = 2 workers in one consumer group and the initiator J = 2, over topics of P = 4
/// partitions, all as `fed stream` child processes. Mid-stream one worker of every role is killed with SIGKILL and,
/// later, one worker per role is added. Every event's outcome is counted from the outputs read to their end offsets:
/// scored (scores topic), explicit incomplete (status topic) or dead-lettered; none may be lost, none may get two
/// different outcomes or two different values.
/// </summary>
public sealed class ConsumerGroupTests : IDisposable
{
    readonly string _dir = Path.Combine(Path.GetTempPath(), "fed-stream-group-" + Guid.NewGuid().ToString("N")[..8]);

    public void Dispose() { if (Environment.GetEnvironmentVariable("FED_TEST_KEEP") != "1") try { Directory.Delete(_dir, true); } catch (IOException) { } }

    const int Partitions = 4;

    [Fact]
    public void Killing_a_worker_of_each_role_and_adding_one_rebalances_with_no_lost_event_and_no_conflicting_prediction()
    {
        var prefix = TestServices.UniquePrefix("group");
        string guestTopic = prefix + ".features.guest", hostTopic = prefix + ".features.host", partials = prefix + ".partials";
        var models = BreastCancerModels.Create(_dir, "bc_group_" + Guid.NewGuid().ToString("N")[..6]);
        // The window outlasts a rebalance after a SIGKILL (session.timeout.ms 6 s, then the join), so a request whose
        // parts were delayed by it still completes; a one-sided request expires into an incomplete record.
        var icfg = TestServices.InitiatorConfig(models.GuestDb, prefix, windowMs: 20000);
        icfg.MetricsIntervalMs = 1000;
        TestServices.CreateTopics(Partitions, guestTopic, hostTopic, partials, icfg.ScoresTopic, icfg.StatusTopic, icfg.DeadLetterTopic);
        var gcfg = TestServices.PartyConfig("guest", models.GuestDb, guestTopic, partials, icfg.DeadLetterTopic, prefix + "-guest");
        var hcfg = TestServices.PartyConfig("host", models.HostDb, hostTopic, partials, icfg.DeadLetterTopic, prefix + "-host");
        string Write(string name, StreamConfigBase c) { var p = Path.Combine(_dir, name); File.WriteAllText(p, c.ToJson()); return p; }
        var paths = new Dictionary<string, string> { ["initiator"] = Write("initiator.json", icfg), ["guest"] = Write("guest.json", gcfg), ["host"] = Write("host.json", hcfg) };
        var logs = new List<string>();
        FedProcess Worker(string role)
        {
            var log = Path.Combine(_dir, $"{role}-{logs.Count}.log");
            logs.Add(log);
            return FedProcess.Start(log, "stream", role == "initiator" ? "initiator" : "party", "--config", paths[role]);
        }

        var workers = new Dictionary<string, List<FedProcess>>();
        foreach (var role in (string[])["initiator", "guest", "host"]) workers[role] = [Worker(role), Worker(role)];
        try
        {
            ReplayOptions Replay(string csv, string topic) => new()
            {
                CsvPath = csv, Topic = topic, ModelIds = [models.ModelId], Kafka = TestServices.OldBrokerKafka(), EventPrefix = "g-", Drop = ["y"], Rate = 60,
            };
            long sentGuest = 0, sentHost = 0;
            var rg = new Thread(() => sentGuest = FeatureReplay.Run(Replay(BreastCancerModels.GuestCsv, guestTopic), null, default));
            var rh = new Thread(() => sentHost = FeatureReplay.Run(Replay(BreastCancerModels.HostCsv, hostTopic), null, default));
            rg.Start(); rh.Start();
            // ~9 s of events: both groups settle, then one worker of each role dies mid-stream (its partitions, and an
            // initiator's open joins, go to the survivor), then one worker per role joins (another rebalance).
            Thread.Sleep(3000);
            foreach (var role in workers.Keys) workers[role][0].KillHard();
            Thread.Sleep(2500);
            foreach (var role in workers.Keys) workers[role].Add(Worker(role));
            rg.Join(); rh.Join();
            Assert.Equal(models.Guest.Count, sentGuest);
            Assert.Equal(models.Host.Count, sentHost);

            // Every event sent, by request id; two-sided ones must be scored with direct scoring's bits, one-sided ones
            // must end incomplete.
            var expected = models.Expected(1);
            var requests = models.Guest.Keys.Concat(models.Host.Keys).Distinct().ToDictionary(id => "g-" + id, id => id);
            var oneSided = requests.Values.Where(id => !expected.ContainsKey(id)).ToHashSet();
            Assert.NotEmpty(oneSided);

            // Outputs read to their end offsets, again until every request has an outcome (or 90 s pass).
            var sw = System.Diagnostics.Stopwatch.StartNew();
            List<(string? Key, string Value)> scores, status, dlq;
            while (true)
            {
                scores = TestServices.ReadToEnd(icfg.ScoresTopic, Partitions);
                status = TestServices.ReadToEnd(icfg.StatusTopic, Partitions);
                dlq = TestServices.ReadToEnd(icfg.DeadLetterTopic, Partitions);
                var done = scores.Select(s => s.Key).Concat(status.Select(s => s.Key)).Concat(dlq.Select(s => s.Key)).ToHashSet();
                if (requests.Keys.All(done.Contains) || sw.Elapsed > TimeSpan.FromSeconds(90)) break;
                Thread.Sleep(1000);
            }

            var scored = scores.GroupBy(s => s.Key!).ToDictionary(g => g.Key, g => g.Select(s => JsonDocument.Parse(s.Value).RootElement.GetProperty("predict_value").GetDouble()).ToList());
            var incomplete = status.Select(s => s.Key!).ToHashSet();
            var deadLettered = dlq.Select(s => s.Key!).ToHashSet();
            var lost = requests.Keys.Where(r => !scored.ContainsKey(r) && !incomplete.Contains(r) && !deadLettered.Contains(r)).ToList();
            var both = scored.Keys.Where(incomplete.Contains).ToList();
            var conflicting = scored.Where(s => s.Value.Distinct().Count() > 1).Select(s => s.Key).ToList();
            Console.Error.WriteLine($"consumer groups: {requests.Count} requests: scored {scored.Count} ({scores.Count} events), incomplete {incomplete.Count} ({status.Count} events), " +
                                    $"dead-lettered {deadLettered.Count}, lost {lost.Count}, scored and incomplete {both.Count}, conflicting {conflicting.Count}");
            Assert.True(lost.Count == 0, $"lost: {string.Join(", ", lost.Take(10))}");
            Assert.True(both.Count == 0, $"scored and incomplete: {string.Join(", ", both.Take(10))}");
            Assert.True(conflicting.Count == 0, $"two different values: {string.Join(", ", conflicting.Take(10))}");
            Assert.True(dlq.Count == 0, "dead letters: " + string.Join("\n", dlq.Take(5).Select(d => d.Value)));
            foreach (var (rid, id) in requests)
            {
                if (oneSided.Contains(id)) { Assert.True(incomplete.Contains(rid), $"one-sided {rid} not incomplete"); continue; }
                Assert.True(scored.TryGetValue(rid, out var values), $"{rid} not scored");
                Assert.All(values, v => Assert.Equal(BitConverter.DoubleToInt64Bits(expected[id].Value), BitConverter.DoubleToInt64Bits(v)));
            }
            // Redis holds the same: every two-sided prediction, and no incomplete record for any of them.
            using var redis = TestServices.ConnectRedis();
            var db = redis.GetDatabase();
            var stored = RedisCheck.WaitAll(db, expected.Keys.Select(id => PredictionKeys.Record(models.ModelId, 1, id)).ToList(), TimeSpan.FromSeconds(30));
            foreach (var (id, p) in expected)
                RedisCheck.AssertBitIdentical(p, PredictionRecord.Parse(stored[PredictionKeys.Record(models.ModelId, 1, id)], ""), id);
            Assert.DoesNotContain(expected.Keys, id => db.KeyExists(StreamRecords.IncompleteKey(models.ModelId, 1, id)));

            // The survivors and the added workers stop cleanly (SIGTERM: drain, commit, leave the group, exit 0).
            foreach (var role in workers.Keys)
                foreach (var p in workers[role].Skip(1)) Assert.Equal(0, p.Terminate(TimeSpan.FromSeconds(30)));
        }
        catch
        {
            foreach (var f in logs) Console.Error.WriteLine($"==== {f}\n" + (File.Exists(f) ? File.ReadAllText(f) : "(none)"));
            throw;
        }
        finally
        {
            foreach (var p in workers.Values.SelectMany(x => x)) p.Dispose();
        }
    }
}
