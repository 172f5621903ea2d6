using Fed.Core;
using Fed.Core.Model;

namespace Fed.Training.Train;

/// <summary>Hyper-parameters shared by the federated protocol and the plaintext reference trainer.</summary>
public sealed record TrainOptions
{
    public ModelKind Kind { get; init; } = ModelKind.Logistic;
    /// <summary>Epochs (passes over the aligned training rows). The arbiter may stop earlier.</summary>
    public int MaxIter { get; init; } = 100;
    /// <summary>Multiplier of each party's preconditioned step (<see cref="BlockNesterov"/>); 1 is the curvature-bound step.</summary>
    public double LearningRate { get; init; } = 1.0;
    /// <summary>L2 penalty lambda, as scikit-learn defines it: the objective is sum_i loss_i + lambda/2 ||w||^2
    /// (intercepts excluded), i.e. LogisticRegression(C = 1/lambda) and Ridge(alpha = lambda). Reported losses are
    /// that objective divided by the training-row count n.</summary>
    public double L2 { get; init; } = 1.0;
    /// <summary>Rows per mini-batch; 0 = the whole training set.</summary>
    public int BatchSize { get; init; } = 0;
    /// <summary>Stop when |loss(epoch) - loss(epoch-1)| &lt;= Tolerance * |loss(epoch)| (relative change).</summary>
    public double Tolerance { get; init; } = 1e-6;
    /// <summary>Stop when the loss falls below this value (null: no threshold).</summary>
    public double? LossThreshold { get; init; }
    public int Seed { get; init; } = 42;
    public int KeyBits { get; init; } = 2048;
    /// <summary>Allows Paillier keys below <see cref="MinKeyBits"/>: for tests, the demo and benchmarks only
    /// (`--insecure-test-key-bits`). Each party reads it from its own configuration, never from a peer.</summary>
    public bool InsecureTestKeyBits { get; init; }
    /// <summary>Fixed-point fraction bits of a (standardized) feature value used as a Paillier scalar in X^T [[d]]
    /// (quantization error 2^-21; the plaintext trainer quantizes the same way). Fewer bits mean shorter exponents:
    /// 20 bits keep a multi-exponentiation at two windows for 100,000-row batches.</summary>
    public int FeatureBits { get; init; } = 20;
    /// <summary>Rows with crc32(id) % 10 &lt; TestBuckets are held out for testing.</summary>
    public int TestBuckets { get; init; } = 3;
    public string ModelId { get; init; } = "fed-model";
    public int Version { get; init; } = 1;

    public const int MinKeyBits = 2048;

    /// <summary>Every party refuses a Paillier key under 2048 bits unless its own configuration allows test keys.</summary>
    public static void CheckKeyBits(int bits, bool insecureTestKeyBits, string what)
    {
        if (bits < MinKeyBits && !insecureTestKeyBits)
            throw new BadInputException($"{what}: a {bits}-bit Paillier key is refused (minimum {MinKeyBits} bits); --insecure-test-key-bits allows it for tests only");
    }

    public void Validate()
    {
        if (MaxIter < 1) throw new BadInputException($"--max-iter must be >= 1, got {MaxIter}");
        if (!(LearningRate > 0)) throw new BadInputException($"--learning-rate must be > 0, got {LearningRate}");
        if (L2 < 0) throw new BadInputException($"--l2 must be >= 0, got {L2}");
        if (BatchSize < 0) throw new BadInputException($"--batch-size must be >= 0 (0 = full batch), got {BatchSize}");
        if (KeyBits is not (1024 or 2048 or 3072 or 4096)) throw new BadInputException($"--key-bits must be 1024 or 2048 (or 3072/4096), got {KeyBits}");
        CheckKeyBits(KeyBits, InsecureTestKeyBits, "--key-bits");
        if (FeatureBits is < 8 or > 53) throw new BadInputException($"feature fixed-point bits must be in [8, 53], got {FeatureBits}");
        if (TestBuckets is < 0 or > 9) throw new BadInputException($"--test-buckets must be in [0, 9], got {TestBuckets}");
        Identifiers.ModelId(ModelId);
        if (Version < 1) throw new BadInputException($"--model-version must be >= 1, got {Version}");
    }
}
