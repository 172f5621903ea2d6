using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.Training.Protocol;
using Fed.Training.Train;
using Xunit.Abstractions;

namespace Fed.Training.Tests;

/// <summary>
/// Issue 13's done-when: `fed train local` with DEFAULT options (only the key is a 1024-bit test key: key size does not
/// change the arithmetic) against centralized scikit-learn on the same rows, standardization and L2
/// (reference/sklearn_reference.json, from reference/sklearn_reference.py).
/// </summary>
public class AccuracyTests(ITestOutputHelper output)
{
    static readonly TrainOptions Defaults = new() { KeyBits = 1024, InsecureTestKeyBits = true };

    async Task<(LocalTrainingResult Fed, List<LocalParty> Parties)> Train(string set, ModelKind kind)
    {
        var parties = TrainingFixtures.Parties(set);
        var dir = TrainingFixtures.TempDir();
        var fed = await LocalTraining.RunAsync(parties, "id", "y", Defaults with { Kind = kind }, "ecdh", dir, output.WriteLine);
        output.WriteLine($"{set}: {fed.Guest.Losses.Count} epochs, {fed.Guest.StopReason}, held-out {fed.Guest.Holdout}");
        Assert.Equal("converged", fed.Guest.StopReason);
        Assert.Empty((string[])fed.Summary["warnings"]!);
        return (fed, parties);
    }

    /// <summary>Mean log-loss of the written models on the training rows (Fed.Core scorer and combiner).</summary>
    static double TrainLogLoss(LocalTrainingResult fed, List<LocalParty> parties)
    {
        var (y, p) = TrainingFixtures.ScoreTest(fed.ModelPaths, parties, trainRows: true);
        return y.Zip(p).Average(t => -Math.Log(t.First == 1 ? t.Second.Value : 1 - t.Second.Value));
    }

    [Theory]
    [InlineData("breast_cancer")]
    [InlineData("german_credit")]
    public async Task LogisticMatchesScikitLearnWithDefaults(string set)
    {
        var reference = TrainingFixtures.Reference(set);
        var (fed, parties) = await Train(set, ModelKind.Logistic);
        var h = fed.Guest.Holdout!;
        Assert.Equal(reference.GetProperty("test_rows").GetInt32(), h.Rows);
        // the guest's federated held-out evaluation equals scoring the written files with Fed.Core
        var (y, p) = TrainingFixtures.ScoreTest(fed.ModelPaths, parties);
        Assert.Equal(TrainingFixtures.Auc(y, p.Select(x => x.Value).ToArray()), h.Auc!.Value, 12);
        var auc = reference.GetProperty("test_auc").GetDouble();
        var ll = reference.GetProperty("train_log_loss").GetDouble();
        var trainLl = TrainLogLoss(fed, parties);
        output.WriteLine($"AUC {h.Auc:F4} (sklearn {auc:F4}), train log-loss {trainLl:F4} (sklearn {ll:F4}), KS {h.Ks:F4}, accuracy {h.Accuracy:F4}, held-out log-loss {h.LogLoss:F4}");
        Assert.InRange(h.Auc!.Value, auc - 0.005, auc + 0.005);
        Assert.InRange(trainLl, ll - 0.005, ll + 0.005);
        Assert.InRange(h.Ks!.Value, 0, 1);
        Assert.InRange(h.LogLoss!.Value, reference.GetProperty("test_log_loss").GetDouble() - 0.05, reference.GetProperty("test_log_loss").GetDouble() + 0.05);
    }

    /// <summary>The plaintext reference of the same pipeline (objective, series, optimizer, batches) with default options:
    /// seconds instead of the federated run's minutes; FederatedTrainingTests hold the federated run to it (1e-3).</summary>
    [Theory]
    [InlineData("breast_cancer")]
    [InlineData("german_credit")]
    public void PlainReferenceOfTheProtocolMatchesScikitLearnWithDefaults(string set)
    {
        var reference = TrainingFixtures.Reference(set);
        var parties = TrainingFixtures.Parties(set);
        var plain = PlainReference.Run(parties, "id", "y", Defaults);
        Assert.Equal("converged", plain.Train.StopReason);
        var dir = TrainingFixtures.TempDir();
        var paths = plain.Models.ToDictionary(m => m.PartyId, m => { var p = Path.Combine(dir, m.PartyId + ".json"); ModelFile.Write(m, p); return p; });
        var (y, p) = TrainingFixtures.ScoreTest(paths, parties);
        var auc = TrainingFixtures.Auc(y, p.Select(x => x.Value).ToArray());
        var (ty, tp) = TrainingFixtures.ScoreTest(paths, parties, trainRows: true);
        var trainLl = ty.Zip(tp).Average(t => -Math.Log(t.First == 1 ? t.Second.Value : 1 - t.Second.Value));
        output.WriteLine($"{set}: {plain.Train.Epochs} epochs ({plain.Train.StopReason}), AUC {auc:F4} (sklearn {reference.GetProperty("test_auc").GetDouble():F4}), " +
            $"train log-loss {trainLl:F4} (sklearn {reference.GetProperty("train_log_loss").GetDouble():F4}), objective {plain.Train.LossPerEpoch[^1]:F5} (sklearn {reference.GetProperty("train_objective").GetDouble():F5})");
        Assert.InRange(plain.Train.Epochs, 2, 99);
        Assert.InRange(auc, reference.GetProperty("test_auc").GetDouble() - 0.005, reference.GetProperty("test_auc").GetDouble() + 0.005);
        Assert.InRange(trainLl, reference.GetProperty("train_log_loss").GetDouble() - 0.005, reference.GetProperty("train_log_loss").GetDouble() + 0.005);
        // the objective the optimizer reports is sklearn's (the series' error is far below this tolerance)
        Assert.InRange(plain.Train.LossPerEpoch[^1], reference.GetProperty("train_objective").GetDouble() - 1e-4, reference.GetProperty("train_objective").GetDouble() + 1e-3);
    }

    /// <summary>Mean cross-entropy of the written models on the training rows (Fed.Core scorer and softmax combiner),
    /// and the largest gap between the combiner's probabilities and the trained series' (<see cref="SoftmaxSeries"/>)
    /// at the same scores, over the rows whose score differences lie in the series' range (and how many do not).</summary>
    static (double LogLoss, double MaxGap, int Outside) SoftmaxTrainFit(IReadOnlyDictionary<string, string> paths, List<LocalParty> parties, string[] classes)
    {
        var (y, p) = TrainingFixtures.ScoreTest(paths, parties, trainRows: true);
        var series = SoftmaxSeries.For(classes.Length);
        var gap = 0.0; var outside = 0;
        var q = new double[classes.Length];
        foreach (var pr in p)
        {
            // softmax is shift-invariant: ln p_c - ln p_0 are the score differences the series sees
            var delta = Enumerable.Range(1, classes.Length - 1).Select(c => Math.Log(pr.Probabilities![c]) - Math.Log(pr.Probabilities![0])).ToArray();
            if (delta.Any(v => Math.Abs(v) > series.Range)) { outside++; continue; }
            series.Probabilities(delta, q);
            for (var c = 0; c < classes.Length; c++) gap = Math.Max(gap, Math.Abs(q[c] - pr.Probabilities![c]));
        }
        var ll = y.Zip(p).Average(t => -Math.Log(t.Second.Probabilities![Array.IndexOf(classes, t.First.ToString(System.Globalization.CultureInfo.InvariantCulture))]));
        return (ll, gap, outside);
    }

    [Fact]
    public void PlainReferenceOfTheProtocolMatchesMultinomialScikitLearnOnWine()
    {
        var reference = TrainingFixtures.Reference("wine");
        var parties = TrainingFixtures.Parties("wine");
        var plain = PlainReference.Run(parties, "id", "y", Defaults with { Kind = ModelKind.Softmax });
        Assert.Equal("converged", plain.Train.StopReason);
        var dir = TrainingFixtures.TempDir();
        var paths = plain.Models.ToDictionary(m => m.PartyId, m => { var p = Path.Combine(dir, m.PartyId + ".json"); ModelFile.Write(m, p); return p; });
        var (ll, gap, outside) = SoftmaxTrainFit(paths, parties, plain.Models[0].Classes);
        var (y, p) = TrainingFixtures.ScoreTest(paths, parties);
        var classes = plain.Models[0].Classes;
        var acc = y.Zip(p).Count(t => classes[t.Second.PredictedClass] == t.First.ToString(System.Globalization.CultureInfo.InvariantCulture)) / (double)y.Length;
        output.WriteLine($"wine: {plain.Train.Epochs} epochs, held-out accuracy {acc:F4} (sklearn {reference.GetProperty("test_accuracy").GetDouble():F4}), " +
            $"train log-loss {ll:F4} (sklearn {reference.GetProperty("train_log_loss").GetDouble():F4}), objective {plain.Train.LossPerEpoch[^1]:F5} " +
            $"(sklearn {reference.GetProperty("train_objective").GetDouble():F5}), combiner vs series probability gap {gap:E2} ({outside} rows outside the series' range)");
        AssertMultinomialMatches(reference, acc, ll, plain.Train.LossPerEpoch[^1], gap, outside);
    }

    /// <summary>Wine's done-when: accuracy >= 0.95, training log-loss within 0.02 of multinomial sklearn's; the reported
    /// loss is the multinomial objective up to the series' error; the combiner reproduces the trained probabilities.</summary>
    static void AssertMultinomialMatches(System.Text.Json.JsonElement reference, double accuracy, double trainLogLoss, double finalLoss, double gap, int outside)
    {
        Assert.True(accuracy >= 0.95, $"accuracy {accuracy}");
        Assert.InRange(trainLogLoss, reference.GetProperty("train_log_loss").GetDouble() - 0.02, reference.GetProperty("train_log_loss").GetDouble() + 0.02);
        Assert.InRange(finalLoss, reference.GetProperty("train_objective").GetDouble() - 0.02, reference.GetProperty("train_objective").GetDouble() + 0.02);
        // within the series' range the combiner's softmax is the trained model's probability up to the documented error
        Assert.True(gap <= 1.2e-2, $"the combiner's softmax and the trained series differ by {gap}");
        Assert.True(outside < reference.GetProperty("train_rows").GetInt32() / 4, $"{outside} training rows outside the series' range");
    }

    [Fact]
    public async Task SoftmaxMatchesMultinomialScikitLearnWithDefaults()
    {
        var reference = TrainingFixtures.Reference("wine");
        var (fed, parties) = await Train("wine", ModelKind.Softmax);
        var h = fed.Guest.Holdout!;
        var classes = ModelFile.Read(fed.ModelPaths["guest"]).Classes;
        var (ll, gap, outside) = SoftmaxTrainFit(fed.ModelPaths, parties, classes);
        output.WriteLine($"wine: held-out accuracy {h.Accuracy:F4} (sklearn {reference.GetProperty("test_accuracy").GetDouble():F4}), held-out log-loss {h.LogLoss:F4} " +
            $"(sklearn {reference.GetProperty("test_log_loss").GetDouble():F4}), train log-loss {ll:F4} (sklearn {reference.GetProperty("train_log_loss").GetDouble():F4}), " +
            $"final loss {fed.Guest.Losses[^1]:F5} (sklearn objective {reference.GetProperty("train_objective").GetDouble():F5}), probability gap {gap:E2} ({outside} rows outside the series' range)");
        AssertMultinomialMatches(reference, h.Accuracy!.Value, ll, fed.Guest.Losses[^1], gap, outside);
        Assert.InRange(h.LogLoss!.Value, reference.GetProperty("test_log_loss").GetDouble() - 0.02, reference.GetProperty("test_log_loss").GetDouble() + 0.02);
    }

    [Fact]
    public async Task LinearMatchesRidgeWithDefaults()
    {
        var reference = TrainingFixtures.Reference("diabetes");
        var (fed, _) = await Train("diabetes", ModelKind.Linear);
        var h = fed.Guest.Holdout!;
        output.WriteLine($"R2 {h.R2:F4} (sklearn {reference.GetProperty("test_r2").GetDouble():F4}), RMSE {h.Rmse:F3} (sklearn {reference.GetProperty("test_rmse").GetDouble():F3})");
        Assert.InRange(h.R2!.Value, reference.GetProperty("test_r2").GetDouble() - 0.01, reference.GetProperty("test_r2").GetDouble() + 0.01);
        Assert.InRange(h.Rmse!.Value, reference.GetProperty("test_rmse").GetDouble() * 0.98, reference.GetProperty("test_rmse").GetDouble() * 1.02);
    }
}
