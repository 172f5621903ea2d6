using System.Text.Json;
using Fed.Core;
using Fed.Core.Model;
using Fed.Training.Data;
using Fed.Training.Protocol;
using Fed.Training.Train;
using Xunit.Abstractions;

namespace Fed.Training.Tests;

public class SplitAndDataTests
{
    [Fact]
    public void Crc32MatchesZlib()
    {
        Assert.Equal(0xCBF43926u, Crc32.Compute("123456789"));
        Assert.Equal(0u, Crc32.Compute(""));
        Assert.Equal(0x414FA339u, Crc32.Compute("The quick brown fox jumps over the lazy dog"));
    }

    [Fact]
    public void MissingLabelColumnIsAClearError()
    {
        var p = TrainingFixtures.Parties("breast_cancer");
        var e = Assert.Throws<BadInputException>(() => LocalTraining.Roles(p, "label"));
        Assert.Contains("missing label column", e.Message);
    }

    [Fact]
    public void NonNumericValueIsAClearError()
    {
        var dir = TrainingFixtures.TempDir();
        var f = Path.Combine(dir, "g.csv");
        File.WriteAllText(f, "id,y,a\nx1,1,0.5\nx2,0,abc\n");
        var e = Assert.Throws<BadInputException>(() => PartyTable.Load(f, "id", "y"));
        Assert.Contains("'abc' is not a finite number", e.Message);
    }

    [Fact]
    public void LogisticRejectsNonBinaryLabels()
    {
        var e = Assert.Throws<BadInputException>(() => LabelEncoding.For(ModelKind.Logistic, [0, 1, 2], "g.csv"));
        Assert.Contains("--kind softmax", e.Message);
    }
}

public class FederatedTrainingTests(ITestOutputHelper output)
{
    internal static async Task<(LocalTrainingResult Fed, PlainReference.Result Plain, double Metric, double PlainMetric)> Run(
        string set, TrainOptions o, Action<string> log, string psi = "ecdh", MessageTap? tap = null)
    {
        var parties = TrainingFixtures.Parties(set);
        var dir = TrainingFixtures.TempDir();
        var fed = await LocalTraining.RunAsync(parties, "id", "y", o, psi, dir, log, tap);
        var plain = PlainReference.Run(parties, "id", "y", o);
        var plainPaths = plain.Models.ToDictionary(m => m.PartyId, m => { var p = Path.Combine(dir, "plain-" + m.PartyId + ".json"); ModelFile.Write(m, p); return p; });
        double Metric(IReadOnlyDictionary<string, string> paths)
        {
            var (y, p) = TrainingFixtures.ScoreTest(paths, parties);
            return o.Kind switch
            {
                ModelKind.Logistic => TrainingFixtures.Auc(y, p.Select(x => x.Value).ToArray()),
                ModelKind.Linear => TrainingFixtures.R2(y, p.Select(x => x.Value).ToArray()),
                _ => p.Zip(y).Count(t => plain.Models[0].Classes[t.First.PredictedClass] == t.Second.ToString(System.Globalization.CultureInfo.InvariantCulture)) / (double)y.Length,
            };
        }
        var m = Metric(fed.ModelPaths); var pm = Metric(plainPaths);
        log($"{set}: federated {m:F4}, plaintext reference {pm:F4}, intersection {fed.Guest.Intersection}, epochs {fed.Guest.Losses.Count}");
        log("seconds: " + JsonSerializer.Serialize(fed.Summary["seconds"]));
        Assert.True(File.Exists(Path.Combine(dir, "report.json")));
        Assert.True(File.Exists(Path.Combine(dir, "loss_curve.svg")));
        Assert.Equal(plain.Intersection, fed.Guest.Intersection);
        AssertAgree(fed, plain, 1e-3);
        return (fed, plain, m, pm);
    }

    /// <summary>Federated weights (standardized space) agree with the plaintext trainer's to a relative tolerance.</summary>
    static void AssertAgree(LocalTrainingResult fed, PlainReference.Result plain, double rel)
    {
        var fw = fed.Outcomes.Where(o => o.Weights != null).SelectMany(o => o.Weights!.W.SelectMany(r => r).Concat(o.Weights.Intercepts)).ToArray();
        var pw = plain.Train.Parties.SelectMany(p => p.W.SelectMany(r => r).Concat(p.Intercepts)).ToArray();
        Assert.Equal(pw.Length, fw.Length);
        var scale = pw.Max(Math.Abs);
        for (var i = 0; i < fw.Length; i++)
            Assert.True(Math.Abs(fw[i] - pw[i]) <= rel * Math.Max(Math.Abs(pw[i]), 1e-2 * scale), $"weight {i}: federated {fw[i]} vs plain {pw[i]}");
        Assert.Equal(plain.Train.LossPerEpoch.Count, fed.Guest.Losses.Count);
        for (var e = 0; e < plain.Train.LossPerEpoch.Count; e++)
            Assert.True(Math.Abs(fed.Guest.Losses[e] - plain.Train.LossPerEpoch[e]) <= rel * Math.Abs(plain.Train.LossPerEpoch[e]), $"loss of epoch {e + 1}");
    }

    [Fact]
    public async Task BreastCancerAucWithinReference()
    {
        var (_, _, auc, _) = await Run("breast_cancer", new TrainOptions { KeyBits = 1024, InsecureTestKeyBits = true, MaxIter = 10 }, output.WriteLine);
        Assert.InRange(auc, 0.986 - 0.01, 1.0);
    }

    [Fact]
    public async Task GermanCreditThreePartiesAucWithinReference()
    {
        var (fed, _, auc, _) = await Run("german_credit", new TrainOptions { KeyBits = 1024, InsecureTestKeyBits = true, MaxIter = 10 }, output.WriteLine, psi: "rsa");
        Assert.Equal(3, fed.ModelPaths.Count);
        Assert.InRange(auc, 0.768 - 0.01, 0.768 + 0.01);
    }

    [Fact]
    public async Task WineSoftmaxAccuracy()
    {
        var (_, _, acc, _) = await Run("wine", new TrainOptions { Kind = ModelKind.Softmax, KeyBits = 1024, InsecureTestKeyBits = true, MaxIter = 10, BatchSize = 64 }, output.WriteLine);
        Assert.True(acc >= 0.95, $"accuracy {acc}");
    }

    [Fact]
    public async Task DiabetesLinearR2WithinReference()
    {
        var (_, _, r2, _) = await Run("diabetes", new TrainOptions { Kind = ModelKind.Linear, KeyBits = 1024, InsecureTestKeyBits = true, MaxIter = 10 }, output.WriteLine);
        Assert.InRange(r2, 0.533 - 0.03, 0.533 + 0.03);
    }

    [Fact]
    public async Task Agreement2048BitKeys()
    {
        // 2048-bit keys (the production default); few epochs keep it quick. Run() asserts 1e-3 relative agreement.
        await Run("breast_cancer", new TrainOptions { KeyBits = 2048, MaxIter = 3 }, output.WriteLine);
    }

    [Fact]
    public async Task EmptyIntersectionIsAClearErrorAndNoModel()
    {
        var dir = TrainingFixtures.TempDir();
        var g = Path.Combine(dir, "g.csv"); var h = Path.Combine(dir, "h.csv");
        File.WriteAllText(g, "id,y,a\nx1,1,0.5\nx2,0,0.7\n");
        File.WriteAllText(h, "id,b\nz1,1\nz2,2\n");
        var e = await Assert.ThrowsAsync<BadInputException>(() => LocalTraining.RunAsync(
            [new("guest", g), new("host", h)], "id", "y", new TrainOptions { KeyBits = 1024, InsecureTestKeyBits = true }, "ecdh", Path.Combine(dir, "out")));
        Assert.Contains("empty intersection", e.Message);
        Assert.False(Directory.Exists(Path.Combine(dir, "out")) && Directory.GetFiles(Path.Combine(dir, "out"), "*.model.json").Length > 0);
    }
}
