using System.Numerics;
using Fed.Core.Model;
using Fed.Training.Crypto;
using Fed.Training.Protocol;
using Fed.Training.Train;

namespace Fed.Training.Tests;

/// <summary>The Fourier sigmoid/softplus (the documented error bound) and its encrypted evaluation on masked inputs.</summary>
public class SigmoidSeriesTests
{
    static double Sigmoid(double z) => 1 / (1 + Math.Exp(-z));
    static double Softplus(double z) => Math.Max(z, 0) + Math.Log(1 + Math.Exp(-Math.Abs(z)));

    static double MaxError(Func<double, double> a, Func<double, double> b, double range)
    {
        var worst = 0.0;
        for (var z = -range; z <= range; z += 0.001) worst = Math.Max(worst, Math.Abs(a(z) - b(z)));
        return worst;
    }

    [Fact]
    public void ErrorBoundsAsDocumented()
    {
        Assert.InRange(MaxError(SigmoidSeries.Sigmoid, Sigmoid, 38), 1e-3, 5.5e-3);
        Assert.InRange(MaxError(SigmoidSeries.Softplus, Softplus, 38), 1e-3, 3.2e-3);
        Assert.True(MaxError(SigmoidSeries.Sigmoid, Sigmoid, 40) <= 2.1e-2);
        // beyond, the staircase: the documented limit is real
        Assert.True(MaxError(SigmoidSeries.Sigmoid, Sigmoid, 44) > 0.1);
        // the softplus series is the sigmoid series' antiderivative: the loss and the residual are one function
        for (var z = -38.0; z <= 38; z += 0.37)
            Assert.Equal(SigmoidSeries.Sigmoid(z), (SigmoidSeries.Softplus(z + 1e-5) - SigmoidSeries.Softplus(z - 1e-5)) / 2e-5, 6);
    }

    [Fact]
    public void EncryptedResidualAndLossMatchTheSeries()
    {
        var sk = Keys.Paillier1024; var key = sk.PublicKey;
        var rng = new Random(7);
        const int rows = 40;
        var zg = Enumerable.Range(0, rows).Select(_ => rng.NextDouble() * 20 - 10).ToArray();
        var Zh = Enumerable.Range(0, rows).Select(_ => rng.NextDouble() * 40 - 20).ToArray();
        var y = Enumerable.Range(0, rows).Select(_ => (double)rng.Next(2)).ToArray();
        using var enc = new PaillierEncryptor(key, new FixedPointCodec(key, 53));
        var Z = enc.EncryptBatch(Zh);
        // guest -> arbiter: masked; arbiter: trig values of x; guest: residual
        var mask = Residuals.Masks(rows);
        var masked = Homomorphic.Mask(key, Z, mask.Select(m => m.Full).ToArray());
        var seen = masked.Select(c => sk.Decrypt(c)).ToArray();
        var values = new double[rows * Residuals.Width];
        for (var i = 0; i < rows; i++) Residuals.TrigValues(seen[i], values.AsSpan(i * Residuals.Width, Residuals.Width));
        using var encT = new PaillierEncryptor(key, new FixedPointCodec(key, Residuals.TrigBits));
        var trig = new Residuals.Trig(encT.EncryptBatch(values), Enumerable.Range(0, rows).Select(i => zg[i] - mask[i].Shift).ToArray());
        var bits = Residuals.Bits(ModelKind.Logistic);
        var codec = new FixedPointCodec(key, bits);
        using var encR = new PaillierEncryptor(key, codec);
        var res = Residuals.Sigmoid(key, trig, Z, encR.EncryptBatch(Enumerable.Range(0, rows).Select(i => Residuals.SigmoidOffset(zg[i], y[i])).ToArray()));
        for (var i = 0; i < rows; i++)
        {
            var d = codec.Decode(sk.Decrypt(res[i]), bits);
            Assert.InRange(d - (SigmoidSeries.Sigmoid(zg[i] + Zh[i]) - y[i]), -1e-6, 1e-6); // guest scalars at 24 bits
            // what the arbiter saw is far from any small number: Z hides under a mask of ~190 bits
            Assert.True(seen[i].GetBitLength() > 150);
        }
        var sum = new FixedPointCodec(key, 106).Decode(sk.Decrypt(Residuals.SoftplusSum(key, trig, 1.0 / rows, 106)), 106);
        var expected = Enumerable.Range(0, rows).Sum(i =>
        {
            var z = zg[i] + Zh[i];
            return (SigmoidSeries.Softplus(z) - z / 2 - z * z / (2 * SigmoidSeries.Period) - SigmoidSeries.SoftplusConstant) / rows;
        });
        Assert.Equal(expected, sum, 9);
    }
}
