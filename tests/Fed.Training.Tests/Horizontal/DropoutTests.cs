using Fed.Training.Horizontal;
using Fed.Training.Protocol;
using Fed.Training.Transport;
using Xunit.Abstractions;

namespace Fed.Training.Tests.Horizontal;

/// <summary>A client dies mid-round (its HTTP/2 endpoint disappears without a word): its aggregation server notices,
/// re-runs the round with the survivors (fresh masks), and training completes with a model.</summary>
public class DropoutTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Killing_a_client_mid_round_is_survived_and_training_completes()
    {
        var dir = TrainingFixtures.TempDir();
        var clients = HorizontalFixtures.Split("breast_cancer", "iid", Path.Combine(dir, "data"));
        var (metric, reference, l2) = HorizontalFixtures.Reference("breast_cancer");
        var endpoints = new Dictionary<string, IMessenger>();
        var killed = false;
        var probe = new HorizontalProbe
        {
            Started = (name, net) => { lock (endpoints) endpoints[name] = net; },
            BeforeUpdate = async (client, round) =>
            {
                if (client != "client2" || round != 3) return;
                killed = true;
                await endpoints[client].DisposeAsync();  // the process "dies": its endpoint is gone, no abort sent ...
                throw new OperationCanceledException("client2 killed"); // ... and its work stops mid-round
            },
        };
        var timeouts = new TransportTimeouts { Liveness = TimeSpan.FromSeconds(3), Send = TimeSpan.FromSeconds(5) };
        var r = await HorizontalLocal.RunAsync(clients, 2, HorizontalFixtures.Options("breast_cancer", l2) with { Rounds = 60 },
            Path.Combine(dir, "out"), log: output.WriteLine, timeouts: timeouts, probe: probe);
        Assert.True(killed);
        Assert.Equal([("client2", "round-3")], r.Aggregators[0].Dropped);
        Assert.Empty(r.Aggregators[1].Dropped);
        Assert.Equal([6, 6, 5], r.Coordinator.ClientsPerRound.Take(3));
        Assert.All(r.Coordinator.ClientsPerRound.Skip(2), n => Assert.Equal(5, n));
        Assert.Equal(60, r.Coordinator.Rounds);
        Assert.Equal(5, r.Clients.Count);
        Assert.DoesNotContain(r.Clients, c => c.Client == "client2");
        var auc = HorizontalFixtures.HeldOutMetric(r.ModelPath, clients, metric);
        output.WriteLine($"AUC without client2 from round 3: {auc:F4} (reference on all data {reference:F4})");
        Assert.InRange(auc, reference - 0.02, 1.0);
    }
}
