using System.Numerics;

namespace Fed.Training.Crypto;

/// <summary>
/// prod_k bases[k]^e_k mod m for many short signed exponents (Pippenger's bucket method), all in GMP.
/// Cost per call: windows * (count + 4 * 2^c) multiplications with windows = ceil(bits / c), instead of about
/// 1.2 * bits multiplications per base for one modpow each. Negative exponents go to their own buckets and
/// accumulator, and one inversion per call joins them, so no base is ever inverted.
/// One instance per thread: it owns the buckets and scratch values, reused across calls.
/// </summary>
internal sealed unsafe class MultiExp : IDisposable
{
    const int MaxWindow = 13; // 2 x 8192 buckets: 9 MB per thread at 1024-bit keys
    readonly Gmp.Vector modulus, scratch, pos, neg;
    readonly bool[] posSet, negSet;
    readonly int capacity;

    public MultiExp(BigInteger m, int maxWindow = MaxWindow)
    {
        var bits = m.GetBitLength() + 64;
        capacity = 1 << Math.Clamp(maxWindow, 1, MaxWindow);
        modulus = Gmp.Vector.From([m], bits);
        scratch = new Gmp.Vector(6, 2 * bits); // tmp (a double-length product), running, total, accPos, accNeg, inverse
        pos = new Gmp.Vector(capacity, bits);
        neg = new Gmp.Vector(capacity, bits);
        posSet = new bool[capacity];
        negSet = new bool[capacity];
    }

    /// <summary>The window c minimizing ceil(bits/c) * (count + 4 * 2^c): the bucket sums cost 2 per bucket and sign.</summary>
    internal static int Window(int count, int bits, int max = MaxWindow)
    {
        int best = 1; double bestCost = double.MaxValue;
        for (var c = 1; c <= max; c++)
        {
            double cost = Math.Ceiling(bits / (double)c) * (count + 4.0 * (1 << c)) + 2.0 * bits;
            if (cost < bestCost) { best = c; bestCost = cost; }
        }
        return best;
    }

    /// <summary>prod_k bases[offset + k]^exponents[k] mod m (exponents may be negative or zero).</summary>
    public BigInteger Compute(Gmp.Vector bases, int offset, ReadOnlySpan<long> exponents)
    {
        ulong or = 0;
        foreach (var e in exponents) or |= Magnitude(e);
        if (or == 0) return BigInteger.One;
        int bits = 64 - BitOperations.LeadingZeroCount(or);
        int c = Window(exponents.Length, bits, BitOperations.Log2((uint)capacity));
        int windows = (bits + c - 1) / c;
        ulong mask = (1UL << c) - 1;
        void* m = modulus[0], tmp = scratch[0], running = scratch[1], total = scratch[2], accP = scratch[3], accN = scratch[4];
        bool haveP = false, haveN = false;
        for (var w = windows - 1; w >= 0; w--)
        {
            for (var s = 0; s < c && w < windows - 1; s++)
            {
                if (haveP) Gmp.MulMod(accP, accP, accP, m, tmp);
                if (haveN) Gmp.MulMod(accN, accN, accN, m, tmp);
            }
            int shift = w * c;
            for (var k = 0; k < exponents.Length; k++)
            {
                var e = exponents[k];
                var digit = (int)((Magnitude(e) >> shift) & mask);
                if (digit == 0) continue;
                var (buckets, set) = e > 0 ? (pos, posSet) : (neg, negSet);
                if (set[digit]) Gmp.MulMod(buckets[digit], buckets[digit], bases[offset + k], m, tmp);
                else { Gmp.Copy(buckets[digit], bases[offset + k]); set[digit] = true; }
            }
            Collect(pos, posSet, (int)mask, accP, ref haveP, running, total, m, tmp);
            Collect(neg, negSet, (int)mask, accN, ref haveN, running, total, m, tmp);
        }
        BigInteger result;
        if (!haveN) result = haveP ? scratch.Get(3) : BigInteger.One;
        else
        {
            if (!Gmp.Invert(scratch[5], accN, m)) throw new ArithmeticException("a base is not invertible modulo m");
            if (haveP) Gmp.MulMod(scratch[5], scratch[5], accP, m, tmp);
            result = scratch.Get(5);
        }
        GC.KeepAlive(bases); GC.KeepAlive(this);
        return result;
    }

    static ulong Magnitude(long e) => e >= 0 ? (ulong)e : (ulong)(-(e + 1)) + 1; // long.MinValue safe

    /// <summary>acc *= prod_j bucket_j^j via running sums (2 multiplications per bucket), and empties the buckets.</summary>
    static void Collect(Gmp.Vector buckets, bool[] set, int top, void* acc, ref bool haveAcc, void* running, void* total, void* m, void* tmp)
    {
        bool haveRunning = false, haveTotal = false;
        for (var j = top; j >= 1; j--)
        {
            if (set[j])
            {
                if (haveRunning) Gmp.MulMod(running, running, buckets[j], m, tmp);
                else { Gmp.Copy(running, buckets[j]); haveRunning = true; }
                set[j] = false;
            }
            if (!haveRunning) continue;
            if (haveTotal) Gmp.MulMod(total, total, running, m, tmp);
            else { Gmp.Copy(total, running); haveTotal = true; }
        }
        if (!haveTotal) return;
        if (haveAcc) Gmp.MulMod(acc, acc, total, m, tmp);
        else { Gmp.Copy(acc, total); haveAcc = true; }
    }

    public void Dispose()
    {
        modulus.Dispose(); scratch.Dispose(); pos.Dispose(); neg.Dispose();
    }
}
