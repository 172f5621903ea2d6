using System.Numerics;

namespace Fed.Training.Crypto;

/// <summary>
/// prod_k bases[k]^e_k mod m for many short signed exponents (Pippenger's bucket method), in Montgomery form.
/// Cost per call: windows * (count + 4 * 2^c) products with windows = ceil(bits / c), instead of about
/// 1.2 * bits products per base for one modpow each. Negative exponents go to their own buckets and
/// accumulator, and one inversion per call joins them, so no base is ever inverted.
/// One instance per thread: it owns the buckets and scratch values, reused across calls.
/// </summary>
internal sealed unsafe class MultiExp : IDisposable
{
    const int MaxWindow = 13; // 2 x 8192 buckets: 4 MB per thread at 1024-bit keys
    readonly Montgomery mont;
    readonly Montgomery.Scratch scratch;
    readonly Montgomery.Vector pos, neg, acc; // acc: running, total, accPos, accNeg
    readonly bool[] posSet, negSet;
    readonly int maxWindow;

    public MultiExp(Montgomery mont, int maxWindow = MaxWindow)
    {
        this.mont = mont;
        this.maxWindow = Math.Clamp(maxWindow, 1, MaxWindow);
        scratch = new Montgomery.Scratch(mont.Limbs);
        pos = new Montgomery.Vector(1 << this.maxWindow, mont.Limbs);
        neg = new Montgomery.Vector(1 << this.maxWindow, mont.Limbs);
        acc = new Montgomery.Vector(4, mont.Limbs);
        posSet = new bool[1 << this.maxWindow];
        negSet = new bool[1 << this.maxWindow];
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

    /// <summary>prod_k bases[offset + k]^exponents[k] mod m (bases in Montgomery form; exponents may be negative or zero).</summary>
    public BigInteger Compute(Montgomery.Vector bases, int offset, ReadOnlySpan<long> exponents)
    {
        ulong or = 0;
        foreach (var e in exponents) or |= Magnitude(e);
        if (or == 0) return BigInteger.One;
        int bits = 64 - BitOperations.LeadingZeroCount(or);
        int c = Window(exponents.Length, bits, maxWindow);
        int windows = (bits + c - 1) / c;
        ulong mask = (1UL << c) - 1;
        ulong* accP = acc[2], accN = acc[3];
        bool haveP = false, haveN = false;
        for (var w = windows - 1; w >= 0; w--)
        {
            for (var s = 0; s < c && w < windows - 1; s++)
            {
                if (haveP) mont.Mul(accP, accP, accP, scratch);
                if (haveN) mont.Mul(accN, accN, accN, scratch);
            }
            int shift = w * c;
            for (var k = 0; k < exponents.Length; k++)
            {
                var e = exponents[k];
                var digit = (int)((Magnitude(e) >> shift) & mask);
                if (digit == 0) continue;
                var (buckets, set) = e > 0 ? (pos, posSet) : (neg, negSet);
                Accumulate(buckets[digit], ref set[digit], bases[offset + k]);
            }
            Collect(pos, posSet, (int)mask, accP, ref haveP);
            Collect(neg, negSet, (int)mask, accN, ref haveN);
        }
        var p = haveP ? mont.Export(accP, scratch) : BigInteger.One;
        GC.KeepAlive(bases);
        return haveN ? BigMath.ModMul(p, BigMath.ModInverse(mont.Export(accN, scratch), mont.Modulus), mont.Modulus) : p;
    }

    static ulong Magnitude(long e) => e >= 0 ? (ulong)e : (ulong)(-(e + 1)) + 1; // long.MinValue safe

    /// <summary>target *= value, or target = value when it holds nothing yet.</summary>
    void Accumulate(ulong* target, ref bool have, ulong* value)
    {
        if (have) mont.Mul(target, target, value, scratch);
        else { new Span<ulong>(value, mont.Limbs).CopyTo(new Span<ulong>(target, mont.Limbs)); have = true; }
    }

    /// <summary>into *= prod_j bucket_j^j via running sums (2 products per bucket), and empties the buckets.</summary>
    void Collect(Montgomery.Vector buckets, bool[] set, int top, ulong* into, ref bool haveInto)
    {
        ulong* running = acc[0], total = acc[1];
        bool haveRunning = false, haveTotal = false;
        for (var j = top; j >= 1; j--)
        {
            if (set[j]) { Accumulate(running, ref haveRunning, buckets[j]); set[j] = false; }
            if (haveRunning) Accumulate(total, ref haveTotal, running);
        }
        if (haveTotal) Accumulate(into, ref haveInto, total);
    }

    public void Dispose()
    {
        scratch.Dispose(); pos.Dispose(); neg.Dispose(); acc.Dispose();
    }
}
