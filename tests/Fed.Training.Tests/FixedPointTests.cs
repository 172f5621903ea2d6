using System.Numerics;
using Fed.Training.Crypto;

namespace Fed.Training.Tests;

public class FixedPointTests
{
    static readonly FixedPointCodec Codec = new(Keys.Paillier1024.PublicKey);

    [Fact]
    public void RoundTripIsWithinHalfUlpOfTheScale()
    {
        var rng = new Random(1);
        double tolerance = Math.ScaleB(1, -(Codec.FractionalBits + 1));
        for (int i = 0; i < 20000; i++)
        {
            double x = (rng.NextDouble() - 0.5) * Math.Pow(10, rng.Next(-20, 30));
            double back = Codec.Decode(Codec.Encode(x));
            Assert.True(Math.Abs(back - x) <= tolerance, $"{x} -> {back}");
        }
    }

    [Fact]
    public void ExactForDyadicValuesAndEdges()
    {
        double[] exact = [0, 1, -1, 0.5, -0.375, 1e280, -1e280, Math.ScaleB(1, 960), 123456789.0625, Math.ScaleB(1, -53), -Math.ScaleB(3, -53)];
        foreach (var x in exact) Assert.Equal(x, Codec.Decode(Codec.Encode(x)));
        Assert.Equal(BigInteger.Zero, Codec.Encode(Math.ScaleB(1, -60))); // below the precision rounds to 0
        Assert.Equal(Codec.N - 1, Codec.Encode(-Math.ScaleB(1, -53)));    // negatives are n - |v|
        Assert.Equal(BigInteger.One, Codec.Encode(Math.ScaleB(3, -55)));   // 0.75 ulp -> 1 (round to nearest)
        Assert.Equal(BigInteger.Zero, Codec.Encode(Math.ScaleB(1, -54)));  // tie -> even
        Assert.Equal(new BigInteger(2), Codec.Encode(Math.ScaleB(3, -54))); // tie 1.5 -> 2
    }

    [Fact]
    public void RejectsNonFiniteAndOutOfRange()
    {
        Assert.Throws<ArgumentException>(() => Codec.Encode(double.NaN));
        Assert.Throws<ArgumentException>(() => Codec.Encode(double.PositiveInfinity));
        var small = new FixedPointCodec(Keys.Paillier1024.PublicKey, fractionalBits: 400);
        Assert.Throws<OverflowException>(() => small.Encode(1e200)); // 2^664 * 2^400 > n/3
    }

    [Fact]
    public void DecodeDetectsOverflowIntoTheMiddleThird()
    {
        var n = Codec.N;
        Assert.Throws<OverflowException>(() => Codec.Decode(n / 2));
        Assert.Throws<OverflowException>(() => Codec.Decode(Codec.MaxMagnitude + 1));
        Assert.Equal(-Codec.Decode(Codec.MaxMagnitude), Codec.Decode(n - Codec.MaxMagnitude));
        Assert.Throws<ArgumentOutOfRangeException>(() => Codec.Decode(n));
    }

    [Fact]
    public void ProductHasDoubledScale()
    {
        var n = Codec.N;
        double x = -3.75, y = 1.2e-3;
        var product = BigMath.Mod(Codec.Encode(x) * Codec.Encode(y), n);
        // Error = x * (encoding error of y) <= 3.75 * 2^-54.
        Assert.Equal(x * y, Codec.Decode(product, 2 * Codec.FractionalBits), 3.75 * Math.ScaleB(1, -54));
        Assert.Equal(42.0, Codec.Decode(Codec.EncodeInteger(42), 0));
        Assert.Equal(-42.0, Codec.Decode(Codec.EncodeInteger(-42), 0));
    }
}
