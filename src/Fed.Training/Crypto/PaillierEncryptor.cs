using System.Collections.Concurrent;
using System.Numerics;

namespace Fed.Training.Crypto;

/// <summary>
/// Batch encryption/decryption of doubles on all cores, with a pool of precomputed obfuscators r^n mod n^2.
/// The obfuscator is ~99.9% of an encryption's cost and does not depend on the plaintext, so it can be computed
/// ahead of time (between training rounds, <see cref="StartPrecompute"/>) and the hot path becomes one
/// multiplication mod n^2. Obfuscators come from the fixed-base DJN table (<see cref="FixedBaseObfuscator"/>); given
/// the private key, from the same table split by CRT (<see cref="CrtFixedBaseObfuscator"/>, about 4x cheaper); with
/// <see cref="Textbook"/>, r^n for uniform r (by CRT for the key holder).
/// Thread-safe.
/// </summary>
public sealed class PaillierEncryptor : IDisposable
{
    readonly PaillierPrivateKey? privateKey;
    readonly ConcurrentQueue<BigInteger> pool = new();
    readonly CancellationTokenSource stop = new();
    Task? filler;

    public PaillierPublicKey PublicKey { get; }
    public FixedPointCodec Codec { get; }
    /// <summary>Degree of parallelism of the batch calls (default: all cores).</summary>
    public int Parallelism { get; init; } = Environment.ProcessorCount;
    /// <summary>r^n for uniform r (textbook) instead of the fixed-base DJN obfuscator (the default; see
    /// <see cref="FixedBaseObfuscator"/> for its security assumption).</summary>
    public bool Textbook { get; init; }

    /// <summary>Encrypts under someone else's public key (no CRT).</summary>
    public PaillierEncryptor(PaillierPublicKey publicKey, FixedPointCodec? codec = null)
    {
        PublicKey = publicKey;
        Codec = codec ?? new FixedPointCodec(publicKey);
    }

    /// <summary>Key holder: encrypts and decrypts with CRT.</summary>
    public PaillierEncryptor(PaillierPrivateKey privateKey, FixedPointCodec? codec = null) : this(privateKey.PublicKey, codec)
        => this.privateKey = privateKey;

    /// <summary>Obfuscators ready in the pool.</summary>
    public int Pooled => pool.Count;

    /// <summary>Fills the pool up to <paramref name="count"/> obfuscators now, on all cores.</summary>
    public void Precompute(int count)
    {
        int missing = count - pool.Count;
        if (missing <= 0) return;
        Parallel.For(0, missing, Options(), _ => pool.Enqueue(NewObfuscator()));
    }

    /// <summary>Keeps the pool topped up to <paramref name="target"/> on one background thread until disposed.</summary>
    public void StartPrecompute(int target)
    {
        if (filler != null) throw new InvalidOperationException("already started");
        filler = Task.Factory.StartNew(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                if (pool.Count < target) pool.Enqueue(NewObfuscator());
                else stop.Token.WaitHandle.WaitOne(20);
            }
        }, TaskCreationOptions.LongRunning);
    }

    public PaillierCiphertext Encrypt(double x) => PublicKey.Encrypt(Codec.Encode(x), TakeObfuscator());

    public PaillierCiphertext Encrypt(BigInteger m) => PublicKey.Encrypt(m, TakeObfuscator());

    /// <summary>Encodes and encrypts on all cores, pooled obfuscators first.</summary>
    public PaillierCiphertext[] EncryptBatch(ReadOnlySpan<double> values)
    {
        var input = values.ToArray();
        var output = new PaillierCiphertext[input.Length];
        Parallel.For(0, input.Length, Options(), i => output[i] = Encrypt(input[i]));
        return output;
    }

    /// <summary>Decrypts and decodes on all cores. scaleBits: Codec.FractionalBits for sums of encodings
    /// (the default), 2 * FractionalBits for ciphertext-times-encoded-plaintext results.</summary>
    public double[] DecryptBatch(ReadOnlySpan<PaillierCiphertext> ciphertexts, int? scaleBits = null)
    {
        var key = privateKey ?? throw new InvalidOperationException("decryption needs the private key");
        int scale = scaleBits ?? Codec.FractionalBits;
        var input = ciphertexts.ToArray();
        var output = new double[input.Length];
        Parallel.For(0, input.Length, Options(), i => output[i] = Codec.Decode(key.Decrypt(input[i]), scale));
        return output;
    }

    BigInteger TakeObfuscator() => pool.TryDequeue(out var r) ? r : NewObfuscator();

    BigInteger NewObfuscator() => privateKey is { } sk
        ? (Textbook ? sk.NewObfuscator() : sk.NewFastObfuscator())
        : Textbook ? PublicKey.NewObfuscator() : PublicKey.NewFastObfuscator();

    ParallelOptions Options() => new() { MaxDegreeOfParallelism = Parallelism };

    public void Dispose()
    {
        stop.Cancel();
        filler?.Wait();
        stop.Dispose();
    }
}
