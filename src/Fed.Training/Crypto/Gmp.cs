using System.Numerics;
using System.Runtime.InteropServices;

namespace Fed.Training.Crypto;

/// <summary>
/// Thin P/Invoke layer over libgmp.so.10. Entry points are resolved once with NativeLibrary so a missing
/// library is a boolean (<see cref="Available"/>), not a crash: callers fall back to BigInteger.
/// Each thread owns a <see cref="Context"/> of reusable mpz_t handles, so hot loops do not allocate GMP state.
/// </summary>
internal static unsafe class Gmp
{
    // mpz_t is { int alloc; int size; mp_limb_t* d; }: 16 bytes on LP64.
    const int MpzSize = 16;

    static readonly delegate* unmanaged<void*, void> mpz_init;
    static readonly delegate* unmanaged<void*, void> mpz_clear;
    static readonly delegate* unmanaged<void*, void*, void*, void*, void> mpz_powm;
    static readonly delegate* unmanaged<void*, void*, void*, void*, void> mpz_powm_sec;
    static readonly delegate* unmanaged<void*, void*, void*, void> mpz_mul;
    static readonly delegate* unmanaged<void*, void*, void*, void> mpz_mod;
    static readonly delegate* unmanaged<void*, void*, void*, int> mpz_invert;
    static readonly delegate* unmanaged<void*, int, int> mpz_probab_prime_p;
    static readonly delegate* unmanaged<void*, nuint, int, nuint, int, nuint, void*, void> mpz_import;
    static readonly delegate* unmanaged<void*, nuint*, int, nuint, int, nuint, void*, void*> mpz_export;
    static readonly delegate* unmanaged<void*, int, nuint> mpz_sizeinbase;
    // mpn layer for Montgomery products (Montgomery.cs); mpn_redc_2 is exported but not in gmp.h, so it is checked
    // against BigInteger once before use (MpnAvailable).
    static readonly delegate* unmanaged<ulong*, ulong*, ulong*, nint, void> mpn_mul_n;
    static readonly delegate* unmanaged<ulong*, ulong*, nint, void> mpn_sqr;
    static readonly delegate* unmanaged<ulong*, ulong*, ulong*, nint, ulong*, ulong> mpn_redc_2;
    static readonly delegate* unmanaged<ulong*, ulong*, ulong*, nint, ulong> mpn_sub_n;

    public static bool Available { get; }

    /// <summary>The mpn entry points Montgomery needs resolved (whether they compute the right thing is Montgomery's self-test).</summary>
    internal static bool MpnResolved { get; }

    static Gmp()
    {
        if (Environment.GetEnvironmentVariable("FED_DISABLE_GMP") == "1") return;
        if (!NativeLibrary.TryLoad("libgmp.so.10", out var lib) && !NativeLibrary.TryLoad("libgmp", out lib)) return;
        try
        {
            mpz_init = (delegate* unmanaged<void*, void>)NativeLibrary.GetExport(lib, "__gmpz_init");
            mpz_clear = (delegate* unmanaged<void*, void>)NativeLibrary.GetExport(lib, "__gmpz_clear");
            mpz_powm = (delegate* unmanaged<void*, void*, void*, void*, void>)NativeLibrary.GetExport(lib, "__gmpz_powm");
            mpz_powm_sec = (delegate* unmanaged<void*, void*, void*, void*, void>)NativeLibrary.GetExport(lib, "__gmpz_powm_sec");
            mpz_mul = (delegate* unmanaged<void*, void*, void*, void>)NativeLibrary.GetExport(lib, "__gmpz_mul");
            mpz_mod = (delegate* unmanaged<void*, void*, void*, void>)NativeLibrary.GetExport(lib, "__gmpz_mod");
            mpz_invert = (delegate* unmanaged<void*, void*, void*, int>)NativeLibrary.GetExport(lib, "__gmpz_invert");
            mpz_probab_prime_p = (delegate* unmanaged<void*, int, int>)NativeLibrary.GetExport(lib, "__gmpz_probab_prime_p");
            mpz_import = (delegate* unmanaged<void*, nuint, int, nuint, int, nuint, void*, void>)NativeLibrary.GetExport(lib, "__gmpz_import");
            mpz_export = (delegate* unmanaged<void*, nuint*, int, nuint, int, nuint, void*, void*>)NativeLibrary.GetExport(lib, "__gmpz_export");
            mpz_sizeinbase = (delegate* unmanaged<void*, int, nuint>)NativeLibrary.GetExport(lib, "__gmpz_sizeinbase");
            Available = true;
            mpn_mul_n = (delegate* unmanaged<ulong*, ulong*, ulong*, nint, void>)NativeLibrary.GetExport(lib, "__gmpn_mul_n");
            mpn_sqr = (delegate* unmanaged<ulong*, ulong*, nint, void>)NativeLibrary.GetExport(lib, "__gmpn_sqr");
            mpn_redc_2 = (delegate* unmanaged<ulong*, ulong*, ulong*, nint, ulong*, ulong>)NativeLibrary.GetExport(lib, "__gmpn_redc_2");
            mpn_sub_n = (delegate* unmanaged<ulong*, ulong*, ulong*, nint, ulong>)NativeLibrary.GetExport(lib, "__gmpn_sub_n");
            MpnResolved = true;
        }
        catch (EntryPointNotFoundException) { }
    }

    [ThreadStatic] static Context? current;

    /// <summary>The calling thread's reusable handles.</summary>
    public static Context Current => current ??= new Context();

    /// <summary>Four mpz_t handles owned by one thread; freed by the finalizer when the thread dies.</summary>
    public sealed class Context
    {
        readonly void* block;
        readonly void* a, b, c, d;

        public Context()
        {
            block = NativeMemory.AllocZeroed(4 * MpzSize);
            a = block; b = (byte*)block + MpzSize; c = (byte*)block + 2 * MpzSize; d = (byte*)block + 3 * MpzSize;
            mpz_init(a); mpz_init(b); mpz_init(c); mpz_init(d);
        }

        ~Context()
        {
            mpz_clear(a); mpz_clear(b); mpz_clear(c); mpz_clear(d);
            NativeMemory.Free(block);
        }

        /// <summary>base^exp mod m, exp >= 0, m odd > 0. secret: constant-time mpz_powm_sec (exp must be > 0).</summary>
        public BigInteger ModPow(BigInteger value, BigInteger exponent, BigInteger modulus, bool secret)
        {
            Set(a, value); Set(b, exponent); Set(c, modulus);
            if (secret) mpz_powm_sec(d, a, b, c); else mpz_powm(d, a, b, c);
            return Get(d);
        }

        public BigInteger ModMul(BigInteger x, BigInteger y, BigInteger modulus)
        {
            Set(a, x); Set(b, y); Set(c, modulus);
            mpz_mul(d, a, b); mpz_mod(a, d, c);
            return Get(a);
        }

        /// <summary>x^-1 mod m, or null if gcd(x, m) != 1.</summary>
        public BigInteger? ModInverse(BigInteger x, BigInteger modulus)
        {
            Set(a, x); Set(b, modulus);
            return mpz_invert(d, a, b) != 0 ? Get(d) : null;
        }

        public bool IsProbablePrime(BigInteger x, int reps)
        {
            Set(a, x);
            return mpz_probab_prime_p(a, reps) != 0;
        }

        static void Set(void* z, BigInteger v)
        {
            if (v.Sign < 0) throw new ArgumentOutOfRangeException(nameof(v), "GMP bridge takes non-negative values");
            int len = v.GetByteCount(isUnsigned: true);
            Span<byte> buf = len <= 1024 ? stackalloc byte[len] : new byte[len];
            v.TryWriteBytes(buf, out _, isUnsigned: true, isBigEndian: false);
            fixed (byte* p = buf) mpz_import(z, (nuint)len, -1, 1, 0, 0, p);
        }

        static BigInteger Get(void* z)
        {
            int len = (int)((mpz_sizeinbase(z, 2) + 7) / 8);
            Span<byte> buf = len <= 1024 ? stackalloc byte[len] : new byte[len];
            buf.Clear();
            nuint count;
            fixed (byte* p = buf) mpz_export(p, &count, -1, 1, 0, 0, z);
            return new BigInteger(buf[..(int)count], isUnsigned: true, isBigEndian: false);
        }
    }

    /// <summary>t[0..2n) = a * b (t must not overlap a or b; a == b squares).</summary>
    internal static void MulN(ulong* t, ulong* a, ulong* b, int n)
    {
        if (a == b) mpn_sqr(t, a, n); else mpn_mul_n(t, a, b, n);
    }

    /// <summary>r = t / B^n mod m (Montgomery reduction of the 2n-limb t, clobbered), r &lt; B^n; mip = -1/m mod B^2.</summary>
    internal static void Redc(ulong* r, ulong* t, ulong* m, int n, ulong* mip)
    {
        if (mpn_redc_2(r, t, m, n, mip) != 0) mpn_sub_n(r, r, m, n);
    }
}
