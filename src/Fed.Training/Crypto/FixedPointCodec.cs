using System.Numerics;

namespace Fed.Training.Crypto;

/// <summary>
/// Fixed-point encoding of doubles as Paillier plaintexts: x -> round(x * 2^F) mod n, negatives as n - |v|.
///
/// Ranges (n = the Paillier modulus, F = <see cref="FractionalBits"/>, default 53 so |error| &lt;= 2^-54):
/// - An encoded value is signed and valid when |v| &lt;= <see cref="MaxMagnitude"/> = floor(n/3); residues in
///   (n/3, 2n/3) are treated as overflow by <see cref="Decode(BigInteger, int)"/> (a sum or product that wrapped).
/// - Encode: |x| * 2^F must be &lt;= n/3: with 1024-bit n and F = 53, |x| up to ~2^968, i.e. every finite double
///   below 2^968. Rounding is to nearest, ties to even; |x| &lt; 2^-(F+1) encodes as 0.
/// - Sums keep scale F; a ciphertext times an encoded plaintext (<see cref="PaillierPublicKey.Multiply"/>) has
///   scale 2F: decode it with Decode(v, 2 * FractionalBits). The caller must keep |sum of products| * 2^(2F)
///   below n/3 (with 1024-bit n: |result| &lt; 2^915, far beyond any gradient).
/// - Decoding is correctly rounded for |v| &lt; 2^1000 and within 1 ulp above.
/// </summary>
public sealed class FixedPointCodec
{
    public BigInteger N { get; }
    public int FractionalBits { get; }
    /// <summary>floor(n/3): the largest magnitude a valid encoding may have.</summary>
    public BigInteger MaxMagnitude { get; }

    public FixedPointCodec(BigInteger n, int fractionalBits = 53)
    {
        if (fractionalBits is < 0 or > 1000) throw new ArgumentOutOfRangeException(nameof(fractionalBits));
        N = n;
        FractionalBits = fractionalBits;
        MaxMagnitude = n / 3;
        if (MaxMagnitude.GetBitLength() <= 2 * fractionalBits + 64)
            throw new ArgumentException("n is too small for products at this precision", nameof(n));
    }

    public FixedPointCodec(PaillierPublicKey key, int fractionalBits = 53) : this(key.N, fractionalBits) { }

    /// <summary>round(x * 2^F) as a residue mod n.</summary>
    public BigInteger Encode(double x)
    {
        var v = ScaleRound(x, FractionalBits);
        if (BigInteger.Abs(v) > MaxMagnitude) throw new OverflowException($"{x} exceeds the encodable range");
        return v.Sign < 0 ? v + N : v;
    }

    /// <summary>Encodes an integer exactly at scale 0 (e.g. counts); same range rule.</summary>
    public BigInteger EncodeInteger(BigInteger x)
    {
        if (BigInteger.Abs(x) > MaxMagnitude) throw new OverflowException("integer exceeds the encodable range");
        return x.Sign < 0 ? x + N : x;
    }

    /// <summary>Decodes a residue at scale F.</summary>
    public double Decode(BigInteger encoded) => Decode(encoded, FractionalBits);

    /// <summary>Decodes a residue whose scale is 2^-<paramref name="scaleBits"/> (2F after one multiplication).</summary>
    public double Decode(BigInteger encoded, int scaleBits)
    {
        var v = ToSigned(encoded);
        return ToDouble(v, scaleBits);
    }

    /// <summary>The signed integer a residue stands for; throws on overflow (value in the middle third).</summary>
    public BigInteger ToSigned(BigInteger encoded)
    {
        if (encoded.Sign < 0 || encoded >= N) throw new ArgumentOutOfRangeException(nameof(encoded), "not a residue mod n");
        if (encoded <= MaxMagnitude) return encoded;
        if (encoded >= N - MaxMagnitude) return encoded - N;
        throw new OverflowException("decoded value overflowed the signed range (|v| > n/3)");
    }

    /// <summary>Exact x * 2^shift rounded to the nearest integer (ties to even).</summary>
    internal static BigInteger ScaleRound(double x, int shift)
    {
        if (!double.IsFinite(x)) throw new ArgumentException("cannot encode NaN or infinity", nameof(x));
        long bits = BitConverter.DoubleToInt64Bits(x);
        bool negative = bits < 0;
        int exponent = (int)((bits >> 52) & 0x7FF);
        ulong mantissa = (ulong)bits & 0xF_FFFF_FFFF_FFFFUL;
        if (exponent == 0) exponent = 1; else mantissa |= 1UL << 52; // subnormal / normal
        int e = exponent - 1075 + shift; // |x| * 2^shift = mantissa * 2^e
        BigInteger v;
        if (e >= 0) v = (BigInteger)mantissa << e;
        else if (e < -54) v = 0; // mantissa < 2^53 <= half of 2^-e
        else
        {
            int s = -e;
            ulong q = mantissa >> s, rem = mantissa & ((1UL << s) - 1), half = 1UL << (s - 1);
            if (rem > half || (rem == half && (q & 1) == 1)) q++;
            v = q;
        }
        return negative ? -v : v;
    }

    /// <summary>v * 2^-scaleBits as a double.</summary>
    internal static double ToDouble(BigInteger v, int scaleBits)
    {
        long length = BigInteger.Abs(v).GetBitLength();
        int drop = length > 1000 ? (int)(length - 64) : 0; // keep (double) conversion finite
        double d = (double)(drop > 0 ? v >> drop : v);
        var result = Math.ScaleB(d, drop - scaleBits);
        if (!double.IsFinite(result)) throw new OverflowException("decoded value exceeds the double range");
        return result;
    }
}
