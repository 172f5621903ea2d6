using System.Runtime.InteropServices;

namespace Fed.Training.Psi;

/// <summary>
/// X25519 scalar multiplication (RFC 7748): libsodium (libsodium.so.23, ~35 us) when it loads, else
/// BouncyCastle's managed Rfc7748.X25519 (~110 us). Both clamp the scalar and give identical results.
/// </summary>
internal static unsafe class Curve25519
{
    static readonly delegate* unmanaged<byte*, byte*, byte*, int> sodiumScalarMult;
    static readonly AsyncLocal<bool> forceManaged = new();

    public static bool NativeAvailable { get; }
    public static bool UsesNative => NativeAvailable && !forceManaged.Value;

    static Curve25519()
    {
        if (Environment.GetEnvironmentVariable("FED_DISABLE_SODIUM") == "1") return;
        if (!NativeLibrary.TryLoad("libsodium.so.23", out var lib) && !NativeLibrary.TryLoad("libsodium", out lib)) return;
        if (!NativeLibrary.TryGetExport(lib, "sodium_init", out var init) ||
            !NativeLibrary.TryGetExport(lib, "crypto_scalarmult_curve25519", out var mult)) return;
        if (((delegate* unmanaged<int>)init)() < 0) return;
        sodiumScalarMult = (delegate* unmanaged<byte*, byte*, byte*, int>)mult;
        NativeAvailable = true;
    }

    internal static IDisposable ForceManaged()
    {
        var previous = forceManaged.Value;
        forceManaged.Value = true;
        return new Restore(() => forceManaged.Value = previous);
    }

    sealed class Restore(Action undo) : IDisposable { public void Dispose() => undo(); }

    /// <summary>r = X25519(k, u). A low-order u gives all zeros (callers never match zero tokens).</summary>
    public static void ScalarMult(byte[] k, byte[] u, int uOffset, byte[] r, int rOffset)
    {
        if (UsesNative)
        {
            fixed (byte* pk = k, pu = &u[uOffset], pr = &r[rOffset])
                if (sodiumScalarMult(pr, pk, pu) != 0) new Span<byte>(pr, 32).Clear(); // sodium refuses zero output
        }
        else Org.BouncyCastle.Math.EC.Rfc7748.X25519.ScalarMult(k, 0, u, uOffset, r, rOffset);
    }

    /// <summary>X25519(k, each 32-byte element of input), on all cores.</summary>
    public static byte[] ScalarMultAll(byte[] k, byte[] input)
    {
        var output = new byte[input.Length];
        PsiUtil.For(input.Length / 32, (from, to) =>
        {
            for (int i = from; i < to; i++) ScalarMult(k, input, i * 32, output, i * 32);
        });
        return output;
    }
}
