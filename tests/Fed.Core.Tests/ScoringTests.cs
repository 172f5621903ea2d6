using Fed.Core.Model;
using Fed.Core.Scoring;

namespace Fed.Core.Tests;

public class ScoringTests
{
    static double[][] RandomColumns(int k, int rows, int seed, double missingRate = 0)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, k).Select(_ => Enumerable.Range(0, rows)
            .Select(_ => rng.NextDouble() < missingRate ? double.NaN : (rng.NextDouble() - 0.5) * Math.Pow(10, rng.Next(-3, 4))).ToArray()).ToArray();
    }

    [Theory]
    [InlineData(ModelKind.Logistic, 1)]
    [InlineData(ModelKind.Logistic, 1003)]
    [InlineData(ModelKind.Softmax, 517)]
    [InlineData(ModelKind.OneVsRest, 517)]
    public void BatchAndRowScoringAgreeToTheBit(ModelKind kind, int rows)
    {
        var m = ScoringModel.From(TestModels.Make(k: 13, kind: kind, transform: new FeatureTransform(TransformKind.Standardize,
            Enumerable.Range(0, 13).Select(i => i * 0.7).ToArray(), Enumerable.Range(0, 13).Select(i => 1.0 + i).ToArray())));
        var scorer = new PartialScorer(m);
        var cols = RandomColumns(13, rows, 7);
        var scores = Enumerable.Range(0, m.OutputCount).Select(_ => new double[rows]).ToArray();
        var miss = new int[rows];
        scorer.ScoreBatch(cols, rows, scores, miss, new FeatureCoverage(m.Features));
        var one = new double[m.OutputCount];
        for (var r = 0; r < rows; r++)
        {
            scorer.ScoreRow(cols.Select(c => c[r]).ToArray(), one);
            for (var c = 0; c < m.OutputCount; c++)
                Assert.Equal(BitConverter.DoubleToInt64Bits(one[c]), BitConverter.DoubleToInt64Bits(scores[c][r]));
            // and the order is exactly constant + w1*x1 + w2*x2 + ... (what the generated SQL computes)
            var expect = m.Constants[0];
            for (var f = 0; f < 13; f++) expect += m.Weights[0][f] * cols[f][r];
            Assert.Equal(BitConverter.DoubleToInt64Bits(expect), BitConverter.DoubleToInt64Bits(scores[0][r]));
        }
    }

    [Fact]
    public void RangesAcrossBlocksScoreLikeRowsToTheBit()
    {
        // More rows than one accumulator block, 50 features (12 four-feature passes + 2 single ones), missing values, ranges at odd offsets.
        const int k = 50, rows = 2 * 16_384 + 37;
        var m = ScoringModel.From(TestModels.Make(k: k, kind: ModelKind.Softmax));
        var scorer = new PartialScorer(m);
        var cols = RandomColumns(k, rows, 11, missingRate: 0.0005);
        var scores = Enumerable.Range(0, m.OutputCount).Select(_ => new double[rows]).ToArray();
        var miss = new int[rows];
        var cov = new FeatureCoverage(m.Features);
        var rejected = scorer.ScoreRange(cols, 0, 5, scores, miss, cov) + scorer.ScoreRange(cols, 5, 20_001, scores, miss, cov)
                       + scorer.ScoreRange(cols, 20_006, rows - 20_006, scores, miss, cov);
        Assert.True(rejected > 0);
        Assert.Equal(rows, cov.RowsSeen);
        var one = new double[m.OutputCount];
        for (var r = 0; r < rows; r++)
        {
            var x = cols.Select(c => c[r]).ToArray();
            if (x.Any(double.IsNaN)) { Assert.Equal(Array.FindIndex(x, double.IsNaN), miss[r]); continue; }
            Assert.Equal(-1, miss[r]);
            scorer.ScoreRow(x, one);
            for (var c = 0; c < m.OutputCount; c++)
                Assert.Equal(BitConverter.DoubleToInt64Bits(one[c]), BitConverter.DoubleToInt64Bits(scores[c][r]));
        }
    }

    [Fact]
    public void CoverageWrittenDirectlyIsExactlyTheSerializedReport()
    {
        var c = new FeatureCoverage(["a", "b \"quoted\"", "c"]) { RowsSeen = 7, RowsScored = 5, RowsRejected = 2 };
        c.Missing[1] = 3; c.Defaulted[1] = 1; c.Missing[2] = 1;
        var buf = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new System.Text.Json.Utf8JsonWriter(buf)) c.WriteJson(w);
        Assert.Equal(System.Text.Json.JsonSerializer.Serialize(c.ToReport()), System.Text.Encoding.UTF8.GetString(buf.WrittenSpan));
    }

    [Fact]
    public void FoldedStandardizationMatchesTheTransformedDotProduct()
    {
        var mean = new[] { 1.5, -2.0, 10.0 };
        var std = new[] { 0.5, 3.0, 7.0 };
        var pm = TestModels.Make(k: 3, transform: new FeatureTransform(TransformKind.Standardize, mean, std));
        var m = ScoringModel.From(pm);
        var x = new[] { 2.0, 1.0, -4.0 };
        var expected = pm.Intercepts[0];
        for (var f = 0; f < 3; f++) expected += pm.Weights[0][f] * (x[f] - mean[f]) / std[f];
        var s = new double[1];
        new PartialScorer(m).ScoreRow(x, s);
        Assert.Equal(expected, s[0], 1e-12);
    }

    [Fact]
    public void MissingFeatureUnderRejectPolicyIsNamedAndNeverScored()
    {
        var m = ScoringModel.From(TestModels.Make(k: 4));
        var scorer = new PartialScorer(m);
        var e = Assert.Throws<MissingFeatureException>(() => scorer.ScoreRow([1, double.NaN, 3, double.NaN], new double[1]));
        Assert.Equal(["guest_f1", "guest_f3"], e.Features);
        Assert.Contains("'guest_f1'", e.Message);

        var cols = RandomColumns(4, 100, 3, missingRate: 0.05);
        var scores = new[] { new double[100] };
        var miss = new int[100];
        var cov = new FeatureCoverage(m.Features);
        var rejected = scorer.ScoreBatch(cols, 100, scores, miss, cov);
        Assert.True(rejected > 0);
        Assert.Equal(rejected, cov.RowsRejected);
        Assert.Equal(100 - rejected, cov.RowsScored);
        for (var r = 0; r < 100; r++)
        {
            var firstMissing = Enumerable.Range(0, 4).FirstOrDefault(f => double.IsNaN(cols[f][r]), -1);
            Assert.Equal(firstMissing, miss[r]);
            Assert.Equal(firstMissing >= 0, double.IsNaN(scores[0][r]));
        }
        Assert.Equal(Enumerable.Range(0, 4).Select(f => (long)cols[f].Count(double.IsNaN)), cov.Missing);
    }

    [Fact]
    public void MissingFeatureUnderDefaultPolicyUsesTheRecordedDefault()
    {
        var m = ScoringModel.From(TestModels.Make(k: 3, missing: new MissingPolicy(MissingPolicyKind.Default, [10, 20, 30])));
        var scorer = new PartialScorer(m);
        var withDefault = new double[1];
        var explicitValue = new double[1];
        var cov = new FeatureCoverage(m.Features);
        scorer.ScoreRow([1, double.NaN, 3], withDefault, cov);
        scorer.ScoreRow([1, 20, 3], explicitValue);
        Assert.Equal(explicitValue[0], withDefault[0]);
        Assert.Equal(1, cov.Defaulted[1]);

        var cols = new[] { new[] { 1.0, 1 }, new[] { double.NaN, 20 }, new[] { 3.0, 3 } };
        var scores = new[] { new double[2] };
        scorer.ScoreBatch(cols, 2, scores, new int[2], new FeatureCoverage(m.Features));
        Assert.Equal(scores[0][1], scores[0][0]);
        Assert.Equal(explicitValue[0], scores[0][0]);
    }

    [Fact]
    public void CombinerRefusesAnIncompleteSetAndNamesTheMissingParty()
    {
        var sig = new ModelSignature("m1", 3, ModelKind.Logistic, [], ["guest", "bank", "telco"]);
        var e = Assert.Throws<IncompletePartiesException>(() =>
            Combiner.Combine(sig, new Dictionary<string, double[]> { ["guest"] = [0.1], ["bank"] = [0.2] }, "s42"));
        Assert.Equal(["telco"], e.MissingParties);
        Assert.Contains("'telco'", e.Message);
        Assert.Contains("s42", e.Message);
        Assert.Throws<BadInputException>(() => Combiner.Combine(sig,
            new Dictionary<string, double[]> { ["guest"] = [0.1], ["bank"] = [0.2], ["telco"] = [0.3], ["eve"] = [0.0] }));
        Assert.Throws<BadInputException>(() => Combiner.Combine(sig,
            new Dictionary<string, double[]> { ["guest"] = [0.1], ["bank"] = [double.NaN], ["telco"] = [0.3] }));
    }

    [Fact]
    public void CombineOrderIsTheModelsPartyOrderWhateverTheArrivalOrder()
    {
        var sig = new ModelSignature("m1", 1, ModelKind.Linear, [], ["guest", "h1", "h2"]);
        var a = Combiner.Combine(sig, new Dictionary<string, double[]> { ["h2"] = [1e-16], ["h1"] = [1.0], ["guest"] = [1e-16] });
        var b = Combiner.Combine(sig, new Dictionary<string, double[]> { ["guest"] = [1e-16], ["h1"] = [1.0], ["h2"] = [1e-16] });
        Assert.Equal(BitConverter.DoubleToInt64Bits(a.Value), BitConverter.DoubleToInt64Bits(b.Value));
        Assert.Equal((1e-16 + 1.0) + 1e-16, a.Value);

        var batch = new double[1];
        Combiner.CombineBatch(sig, [[[1e-16]], [[1.0]], [[1e-16]]], 1, batch);
        Assert.Equal(BitConverter.DoubleToInt64Bits(a.Value), BitConverter.DoubleToInt64Bits(batch[0]));
    }

    [Fact]
    public void LinksAreNumericallyStable()
    {
        Assert.Equal(1.0, Combiner.Sigmoid(800));
        Assert.True(Combiner.Sigmoid(-800) >= 0 && Combiner.Sigmoid(-800) < 1e-300);
        Assert.Equal(0.5, Combiner.Sigmoid(0));
        Assert.Equal(1.0, Combiner.Sigmoid(3) + Combiner.Sigmoid(-3), 15);
        var p = new double[3];
        Combiner.Softmax([1000, 1001, 999], p);
        Assert.All(p, v => Assert.True(double.IsFinite(v)));
        Assert.Equal(1.0, p.Sum(), 14);
        var sig = new ModelSignature("m", 1, ModelKind.Softmax, ["x", "y", "z"], ["guest"]);
        var pred = Combiner.Combine(sig, new Dictionary<string, double[]> { ["guest"] = [1000, 1001, 999] });
        Assert.Equal(1, pred.PredictedClass);
        Assert.Equal(p[1], pred.Value);
    }

    [Fact]
    public void OneVsRestIsASigmoidPerClassAndTheFirstHighestClassWins()
    {
        var sig = new ModelSignature("m", 1, ModelKind.OneVsRest, ["x", "y", "z"], ["guest", "host"]);
        var pred = Combiner.Combine(sig, new Dictionary<string, double[]> { ["guest"] = [0.25, -1, 2], ["host"] = [0.5, 1.5, -1] });
        Assert.Equal([Combiner.Sigmoid(0.75), Combiner.Sigmoid(0.5), Combiner.Sigmoid(1.0)], pred.Probabilities!);
        Assert.Equal(2, pred.PredictedClass);
        Assert.Equal(Combiner.Sigmoid(1.0), pred.Value);
        // Not normalised: FATE's one-vs-rest probabilities need not sum to 1.
        Assert.NotEqual(1.0, pred.Probabilities!.Sum(), 6);
        // 40 and 50 both saturate to 1.0: FATE compares probabilities, so the first class wins, not the larger score.
        var tie = Combiner.Combine(sig, new Dictionary<string, double[]> { ["guest"] = [40, 50, -3], ["host"] = [0, 0, 0] });
        Assert.Equal(0, tie.PredictedClass);
        Assert.Equal(1.0, tie.Value);
    }
}
