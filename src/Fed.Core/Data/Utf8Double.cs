using System.Buffers.Binary;

namespace Fed.Core.Data;

/// <summary>
/// Fast, correctly rounded parsing of plain decimal numbers from UTF-8 text (Clinger's fast path).
/// <c>[+-]digits[.digits][(e|E)[+-]digits]</c> with a significand m &lt;= 2^53 and a power of ten |q| &lt;= 22 is
/// exactly <c>m * 10^q</c> or <c>m / 10^q</c>: both operands are exact doubles, so the one IEEE operation rounds
/// correctly and the result has the same bits as <see cref="double.Parse(string)"/>. Anything else (more digits,
/// larger exponents, whitespace, NaN/Infinity words, garbage) returns false and the caller falls back to double.Parse,
/// so this never decides what is valid, only how fast a valid common number is read.
/// </summary>
public static class Utf8Double
{
    static readonly double[] Pow10 =
    [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];

    const ulong MaxExact = 1UL << 53;

    /// <summary>Appends the decimal digits at <paramref name="i"/> to <paramref name="m"/>; returns how many (m is garbage past 19).</summary>
    static int Digits(ReadOnlySpan<byte> s, ref int i, ref ulong m)
    {
        var start = i;
        // Eight digits at a time (SWAR): check all eight bytes are '0'..'9', then combine them with three multiplies.
        while (i + 8 <= s.Length)
        {
            var v = BinaryPrimitives.ReadUInt64LittleEndian(s[i..]);
            if (((v & 0xF0F0F0F0F0F0F0F0) | (((v + 0x0606060606060606) & 0xF0F0F0F0F0F0F0F0) >> 4)) != 0x3333333333333333) break;
            v -= 0x3030303030303030;
            v = v * 10 + (v >> 8);
            v = ((v & 0x000000FF000000FF) * 0x000F424000000064 + ((v >> 16) & 0x000000FF000000FF) * 0x0000271000000001) >> 32;
            m = m * 100_000_000 + v;
            i += 8;
        }
        // Then four at a time (the 6-8 significant digits of typical feature text end here).
        if (i + 4 <= s.Length)
        {
            var v = BinaryPrimitives.ReadUInt32LittleEndian(s[i..]);
            if (((v & 0xF0F0F0F0) | (((v + 0x06060606) & 0xF0F0F0F0) >> 4)) == 0x33333333)
            {
                v -= 0x30303030;
                v = v * 10 + (v >> 8);                                  // pairs: byte 0 = d0d1, byte 2 = d2d3
                m = m * 10_000 + (v & 0xFF) * 100 + ((v >> 16) & 0xFF);
                i += 4;
            }
        }
        for (; i < s.Length; i++)
        {
            var d = (uint)(s[i] - '0');
            if (d > 9) break;
            m = m * 10 + d;
        }
        return i - start;
    }

    /// <summary>True with the correctly rounded value when <paramref name="s"/> is a number the fast path covers.</summary>
    public static bool TryParse(ReadOnlySpan<byte> s, out double value) => TryParsePrefix(s, out value, out var used) && used == s.Length;

    /// <summary>
    /// The same for the number at the start of <paramref name="s"/>: <paramref name="consumed"/> is where it ends
    /// (a CSV reader checks a delimiter follows). False when the prefix is not a number the fast path covers.
    /// </summary>
    public static bool TryParsePrefix(ReadOnlySpan<byte> s, out double value, out int consumed)
    {
        value = 0;
        consumed = 0;
        var i = 0;
        var negative = false;
        if (s.Length > 0 && (s[0] == '-' || s[0] == '+')) { negative = s[0] == '-'; i++; }

        // m collects every digit (leading zeros add nothing); more than 19 could overflow, so those fall back.
        ulong m = 0;
        var digits = Digits(s, ref i, ref m);
        var scale = 0; // m * 10^scale is the number before the exponent part
        if (i < s.Length && s[i] == '.')
        {
            i++;
            var fraction = Digits(s, ref i, ref m);
            digits += fraction;
            scale = -fraction;
        }
        if (digits == 0 || digits > 19) return false;
        if (i < s.Length && (s[i] | 0x20) == 'e')
        {
            i++;
            var expNegative = false;
            if (i < s.Length && (s[i] == '-' || s[i] == '+')) { expNegative = s[i] == '-'; i++; }
            var e = 0;
            var expDigits = 0;
            for (; i < s.Length; i++)
            {
                var d = (uint)(s[i] - '0');
                if (d > 9) break;
                if (++expDigits > 4) return false;
                e = e * 10 + (int)d;
            }
            if (expDigits == 0) return false;
            scale += expNegative ? -e : e;
        }
        consumed = i;

        if (m == 0) { value = negative ? -0.0 : 0.0; return true; }
        if (m > MaxExact) return false;
        double v = m;
        if (scale > 0)
        {
            if (scale > 22) return false;
            v *= Pow10[scale];
        }
        else if (scale < 0)
        {
            if (scale < -22) return false;
            v /= Pow10[-scale];
        }
        value = negative ? -v : v;
        return true;
    }
}
