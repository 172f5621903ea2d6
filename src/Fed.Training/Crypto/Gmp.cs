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
    static readonly delegate* unmanaged<void*, nuint, void> mpz_init2;
    static readonly delegate* unmanaged<void*, void*, void> mpz_set;

    public static bool Available { get; }

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
            mpz_init2 = (delegate* unmanaged<void*, nuint, void>)NativeLibrary.GetExport(lib, "__gmpz_init2");
            mpz_set = (delegate* unmanaged<void*, void*, void>)NativeLibrary.GetExport(lib, "__gmpz_set");
            Available = true;
        }
        catch (EntryPointNotFoundException) { Available = false; }
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

        internal static void Set(void* z, BigInteger v)
        {
            if (v.Sign < 0) throw new ArgumentOutOfRangeException(nameof(v), "GMP bridge takes non-negative values");
            int len = v.GetByteCount(isUnsigned: true);
            Span<byte> buf = len <= 1024 ? stackalloc byte[len] : new byte[len];
            v.TryWriteBytes(buf, out _, isUnsigned: true, isBigEndian: false);
            fixed (byte* p = buf) mpz_import(z, (nuint)len, -1, 1, 0, 0, p);
        }

        internal static BigInteger Get(void* z)
        {
            int len = (int)((mpz_sizeinbase(z, 2) + 7) / 8);
            Span<byte> buf = len <= 1024 ? stackalloc byte[len] : new byte[len];
            buf.Clear();
            nuint count;
            fixed (byte* p = buf) mpz_export(p, &count, -1, 1, 0, 0, z);
            return new BigInteger(buf[..(int)count], isUnsigned: true, isBigEndian: false);
        }
    }

    /// <summary>r = a * b mod m through tmp (r may alias a or b; tmp must not alias anything).</summary>
    internal static void MulMod(void* r, void* a, void* b, void* m, void* tmp)
    {
        mpz_mul(tmp, a, b);
        mpz_mod(r, tmp, m);
    }

    internal static void Copy(void* r, void* a) => mpz_set(r, a);

    /// <summary>r = a^-1 mod m; false if not invertible.</summary>
    internal static bool Invert(void* r, void* a, void* m) => mpz_invert(r, a, m) != 0;

    /// <summary>r = a^e mod m for a public exponent (not constant time).</summary>
    internal static void Pow(void* r, void* a, void* e, void* m) => mpz_powm(r, a, e, m);

    /// <summary>
    /// A fixed-size array of mpz_t living in native memory, each pre-sized to <c>bits</c> so hot loops do not
    /// reallocate. Values are imported from BigInteger once and exported once: the loops in between stay in GMP.
    /// Not thread-safe for writes; concurrent reads are fine.
    /// </summary>
    internal sealed class Vector : IDisposable
    {
        byte* block;
        public int Count { get; }

        public Vector(int count, long bits)
        {
            Count = count;
            block = (byte*)NativeMemory.AllocZeroed((nuint)Math.Max(1, count) * MpzSize);
            for (var i = 0; i < count; i++) mpz_init2(block + (long)i * MpzSize, (nuint)Math.Max(64, bits));
        }

        public static Vector From(ReadOnlySpan<BigInteger> values, long bits)
        {
            var v = new Vector(values.Length, bits);
            for (var i = 0; i < values.Length; i++) v.Set(i, values[i]);
            return v;
        }

        /// <summary>The i-th mpz_t; valid while this vector is alive (callers keep a reference).</summary>
        public void* this[int i]
        {
            get
            {
                if ((uint)i >= (uint)Count || block == null) throw new IndexOutOfRangeException();
                return block + (long)i * MpzSize;
            }
        }

        public void Set(int i, BigInteger value) { Context.Set(this[i], value); GC.KeepAlive(this); }

        public BigInteger Get(int i) { var r = Context.Get(this[i]); GC.KeepAlive(this); return r; }

        public void Dispose() { Free(); GC.SuppressFinalize(this); }

        ~Vector() => Free();

        void Free()
        {
            if (block == null) return;
            for (var i = 0; i < Count; i++) mpz_clear(block + (long)i * MpzSize);
            NativeMemory.Free(block);
            block = null;
        }
    }
}
