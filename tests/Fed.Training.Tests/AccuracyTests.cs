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
