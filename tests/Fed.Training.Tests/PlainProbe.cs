using Fed.Core.Model;
using Fed.Training.Train;
using Xunit.Abstractions;

namespace Fed.Training.Tests;

public class PlainProbe(ITestOutputHelper output)
{
    [Fact]
    public void Grid()
    {
        foreach (var (set, kind) in new[] { ("breast_cancer", ModelKind.Logistic), ("german_credit", ModelKind.Logistic), ("wine", ModelKind.Softmax), ("diabetes", ModelKind.Linear) })
            foreach (var (lr, bs, it) in new[] { (0.3, 0, 10), (0.3, 0, 30), (0.3, 64, 10), (0.15, 32, 10), (0.5, 0, 30), (0.1,64,20) })
                foreach (var l2 in new[] { 0.0, 0.003, 0.01 })
                {
                    var o = new TrainOptions { Kind = kind, LearningRate = lr, BatchSize = bs, MaxIter = it, L2 = l2 };
                    var parties = TrainingFixtures.Parties(set);
                    var r = PlainReference.Run(parties, "id", "y", o);
                    var dir = TrainingFixtures.TempDir();
                    var paths = r.Models.ToDictionary(m => m.PartyId, m => { var p = Path.Combine(dir, m.PartyId + ".json"); ModelFile.Write(m, p); return p; });
                    var (y, p) = TrainingFixtures.ScoreTest(paths, parties);
                    var metric = kind switch
                    {
                        ModelKind.Logistic => TrainingFixtures.Auc(y, p.Select(x => x.Value).ToArray()),
                        ModelKind.Linear => TrainingFixtures.R2(y, p.Select(x => x.Value).ToArray()),
                        _ => p.Zip(y).Count(t => r.Models[0].Classes[t.First.PredictedClass] == t.Second.ToString(System.Globalization.CultureInfo.InvariantCulture)) / (double)y.Length,
                    };
                    output.WriteLine($"{set} lr={lr} bs={bs} it={it} l2={l2}: {metric:F4} epochs={r.Train.Epochs} loss={r.Train.LossPerEpoch[^1]:F5} ({r.Train.StopReason})");
                }
    }
}
