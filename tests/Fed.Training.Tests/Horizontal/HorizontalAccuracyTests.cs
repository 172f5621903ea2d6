using Fed.Training.Horizontal;
using Fed.Training.Transport;
using Xunit.Abstractions;

namespace Fed.Training.Tests.Horizontal;

/// <summary>
/// 6 clients under 2 aggregation servers, every role over HTTP/2 + TLS with secure aggregation: the held-out metric of
/// the written one-party model, scored by Fed.Core, against centralized scikit-learn on the union (reference.json).
/// </summary>
public class HorizontalAccuracyTests(ITestOutputHelper output)
{
    static readonly TransportTimeouts Fast = new() { Liveness = TimeSpan.FromSeconds(5), Send = TimeSpan.FromSeconds(10) };

    public static async Task<(double Metric, double Reference, HorizontalResult Result)> Train(string set, string split,
        Func<HorizontalOptions, HorizontalOptions> tweak, ITestOutputHelper output, HorizontalProbe? probe = null)
    {
        var dir = TrainingFixtures.TempDir();
        var clients = HorizontalFixtures.Split(set, split, Path.Combine(dir, "data"));
        var (metric, reference, l2) = HorizontalFixtures.Reference(set);
        var options = tweak(HorizontalFixtures.Options(set, l2));
        var r = await HorizontalLocal.RunAsync(clients, 2, options, Path.Combine(dir, "out"), timeouts: Fast, probe: probe);
        var got = HorizontalFixtures.HeldOutMetric(r.ModelPath, clients, metric);
        output.WriteLine($"{set} {split}: {metric} {got:F4} vs scikit-learn {reference:F4} (diff {got - reference:+0.0000;-0.0000}); {r.Coordinator.Rounds} rounds ({r.Coordinator.StopReason}), {r.Coordinator.SecondsPerRound.Average() * 1000:F1} ms/round");
        return (got, reference, r);
    }

    [Theory]
    [InlineData("breast_cancer", "iid")]
    [InlineData("breast_cancer", "label")]
    [InlineData("breast_cancer", "size")]
    [InlineData("german_credit", "iid")]
    [InlineData("german_credit", "label")]
    [InlineData("german_credit", "size")]
    [InlineData("diabetes", "iid")]
    [InlineData("diabetes", "label")]
    [InlineData("diabetes", "size")]
    [InlineData("wine", "iid")]
    [InlineData("wine", "label")]
    [InlineData("wine", "size")]
    public async Task Without_dp_the_held_out_metric_is_within_0_005_of_centralized_sklearn(string set, string split)
    {
        var (got, reference, r) = await Train(set, split, o => o, output);
        Assert.Equal(6, r.Clients.Count);
        Assert.All(r.Coordinator.ClientsPerRound, n => Assert.Equal(6, n));
        Assert.InRange(got, reference - 0.005, reference + 0.005);
    }

    /// <summary>Local epochs and mini-batches (client drift on non-IID data) with a smaller step still land close.</summary>
    [Theory]
    [InlineData("breast_cancer", "label")]
    [InlineData("german_credit", "label")]
    public async Task Local_epochs_and_mini_batches_stay_within_0_005(string set, string split)
    {
        var (got, reference, _) = await Train(set, split, o => o with { LocalEpochs = 2, BatchSize = 16, LearningRate = 0.05, Rounds = 200 }, output);
        Assert.InRange(got, reference - 0.005, reference + 0.005);
    }
}
