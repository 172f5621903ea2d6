using Fed.Training.Crypto;

namespace Fed.Training.Tests;

/// <summary>Key generation is the slow part of a test; share one key per size across the test run.</summary>
static class Keys
{
    static readonly Lazy<PaillierPrivateKey> k1024 = new(() => Paillier.GenerateKeyPair(1024));
    static readonly Lazy<PaillierPrivateKey> k2048 = new(() => Paillier.GenerateKeyPair(2048));
    public static PaillierPrivateKey Paillier1024 => k1024.Value;
    public static PaillierPrivateKey Paillier2048 => k2048.Value;
}
