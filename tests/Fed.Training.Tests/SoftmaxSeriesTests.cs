using System.Numerics;
using Fed.Training.Crypto;
using Fed.Training.Protocol;
using Fed.Training.Train;
using Xunit.Abstractions;

namespace Fed.Training.Tests;

/// <summary>The multinomial series (<see cref="SoftmaxSeries"/>): documented error bounds, probabilities that are the
/// loss's gradient, and its encrypted evaluation on masked score differences.</summary>
public class SoftmaxSeriesTests(ITestOutputHelper output)
{
    [Fact]
    public void ErrorBoundsAsDocumented()
    {
        var s = SoftmaxSeries.For(3);
        var pe = s.ProbabilityError(s.Range); var le = s.LossError(s.Range);
        output.WriteLine($"P={s.Period} J={s.Terms} R={s.Range}, {s.Width} ciphertexts per row; probability error {pe:E2}, loss error {le:E2}");
        Assert.InRange(pe, 1e-3, 1.2e-2);
        Assert.InRange(le, 1e-3, 6.1e-3);
        Assert.True(s.ProbabilityError(s.Range + 4) > 2e-2); // the range is real
    }

    [Fact]
    public void ProbabilitiesSumToOneAndAreTheLossGradient()
    {
        var s = SoftmaxSeries.For(3);
        var rng = new Random(5);
        Span<double> p = stackalloc double[3];
        for (var t = 0; t < 200; t++)
        {
            double[] d = [rng.NextDouble() * 2 * s.Range - s.Range, rng.NextDouble() * 2 * s.Range - s.Range];
            s.Probabilities(d, p);
            Assert.Equal(1.0, p[0] + p[1] + p[2], 12);
            for (var k = 0; k < 2; k++)
            {
                var hi = (double[])d.Clone(); hi[k] += 1e-5;
                var lo = (double[])d.Clone(); lo[k] -= 1e-5;
                Assert.Equal(p[1 + k], (s.Value(hi) - s.Value(lo)) / 2e-5, 6);
            }
        }
    }

    [Fact]
    public void OtherThanThreeClassesIsAClearError()
    {
        Assert.Contains("3", Assert.Throws<Fed.Core.BadInputException>(() => LabelEncoding.For(Fed.Core.Model.ModelKind.Softmax, [0, 1, 2, 3], "labels.csv")).Message);
        Assert.Contains("--kind logistic", Assert.Throws<Fed.Core.BadInputException>(() => LabelEncoding.For(Fed.Core.Model.ModelKind.Softmax, [0, 1, 1], "labels.csv")).Message);
    }

    [Fact]
    public void EncryptedResidualAndLossMatchTheSeries()
    {
        var sk = Keys.Paillier1024; var key = sk.PublicKey;
        var series = SoftmaxSeries.For(3);
        var rng = new Random(9);
        const int m = 25, K = 3;
        var zg = Enumerable.Range(0, K * m).Select(_ => rng.NextDouble() * 6 - 3).ToArray();
        var zh = Enumerable.Range(0, K * m).Select(_ => rng.NextDouble() * 6 - 3).ToArray();
        var labels = Enumerable.Range(0, m).Select(_ => rng.Next(K)).ToArray();
        var targets = Enumerable.Range(0, K).Select(c => labels.Select(l => l == c ? 1.0 : 0.0).ToArray()).ToArray();
        var batch = Enumerable.Range(0, m).ToArray();
        using var enc = new PaillierEncryptor(key, new FixedPointCodec(key, 53));
        var Z = enc.EncryptBatch(zh);
        var diff = Residuals.Differences(key, Z, K, m);
        var masks = Residuals.SoftmaxMasks(series, diff.Length);
        var seen = Homomorphic.Mask(key, diff, masks.Select(r => r.Full).ToArray()).Select(c => sk.Decrypt(c)).ToArray();
        Assert.All(seen, v => Assert.True(v.GetBitLength() > 150)); // the arbiter sees Delta under a ~190-bit mask
        var values = new double[m * series.Width];
        for (var i = 0; i < m; i++) Residuals.SoftmaxTrigValues(series, seen, m, i, values.AsSpan(i * series.Width, series.Width));
        using var encT = new PaillierEncryptor(sk, new FixedPointCodec(key, Residuals.TrigBits));
        var trig = encT.EncryptBatch(values);
        var u = Residuals.SoftmaxShifts(zg, masks, K, m);
        var bits = Residuals.Bits(Fed.Core.Model.ModelKind.Softmax);
        var codec = new FixedPointCodec(key, bits);
        using var encR = new PaillierEncryptor(key, codec);
        var res = Residuals.Softmax(key, series, trig, u, encR.EncryptBatch(Enumerable.Range(0, K * m).Select(i => Residuals.SoftmaxOffset(series, i / m, targets[i / m][i % m])).ToArray()));
        var expectedLoss = 0.0;
        Span<double> p = stackalloc double[K];
        for (var i = 0; i < m; i++)
        {
            double[] delta = [zg[m + i] + zh[m + i] - zg[i] - zh[i], zg[2 * m + i] + zh[2 * m + i] - zg[i] - zh[i]];
            series.Probabilities(delta, p);
            // the guest's scalars are rounded to 24 bits: 168 terms keep the residual within 1e-5 (the series' error is 1e-2)
            for (var c = 0; c < K; c++) Assert.InRange(codec.Decode(sk.Decrypt(res[c * m + i]), bits) - (p[c] - targets[c][i]), -1e-5, 1e-5);
            expectedLoss += (series.Value(delta) - (labels[i] == 0 ? 0 : delta[labels[i] - 1])) / m;
        }
        var plain = Enumerable.Range(0, m).Sum(i => Residuals.SoftmaxLossConstant(series, zg, targets, batch, m, i) / m);
        var enc2 = new FixedPointCodec(key, 106);
        var sum = enc2.Decode(sk.Decrypt(Residuals.SoftmaxLossSum(key, series, trig, u, diff, targets, batch, 1.0 / m, 106)), 106);
        Assert.Equal(expectedLoss, plain + sum, 9);
    }
}
