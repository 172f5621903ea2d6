using System.Diagnostics;
using System.Text.Json;
using Fed.Training.Crypto;

namespace Fed.Bench.Benchmarks;

/// <summary>
/// Paillier encryption throughput (encode + r^n + multiply; no pool, so the full cost is counted) against
/// Python + gmpy2 running the same algorithm (FATE's engine) on one core, in the same run.
/// "public": encrypting under someone else's key (what the guest and hosts do in training) with the DJN fixed-base
/// obfuscator; "textbook": the same with r^n (FATE's algorithm); "keyholder": the key holder's CRT obfuscator.
/// Goal: >= 2x gmpy2 per core. Also X^T [[d]] by multi-exponentiation against one modpow per term.
/// </summary>
public sealed class PaillierBenchmark : IBenchmark
{
    public string Name => "paillier";

    public IReadOnlyList<BenchFigure> Run(BenchContext context)
    {
        var figures = new List<BenchFigure>();
        double seconds = context.Quick ? 1 : 4;
        var script = Path.Combine(RepoRoot(), "bench", "baselines", "paillier_gmpy2.py");
        // /usr/bin/python3: Debian's python3-gmpy2 lives there (a pyenv python3 on PATH may lack it).
        var python = File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
        // The baseline runs right before and right after the single-core measurements and the better of the two
        // is kept: on a shared machine this favours the baseline, never Fed.
        double Gmpy2(int bits) => JsonSerializer.Deserialize<Dictionary<string, double>>(
            context.RunProcess(python, [script, seconds.ToString(System.Globalization.CultureInfo.InvariantCulture), bits.ToString()]))![bits.ToString()];
        int cores = Environment.ProcessorCount;
        foreach (var bits in new[] { 1024, 2048 })
        {
            var sk = Paillier.GenerateKeyPair(bits);
            string loadBefore = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "";
            double gmpy2Before = Gmpy2(bits);
            string b = $"gmpy2 1 core, same algorithm ({bits}-bit)";
            var keyholder1 = Rate(() => new PaillierEncryptor(sk) { Parallelism = 1 }, seconds, out int n1);
            var tableClock = Stopwatch.StartNew();
            sk.PublicKey.NewFastObfuscator(); // builds the fixed-base table once per key (not counted below)
            var tableSeconds = tableClock.Elapsed.TotalSeconds;
            var public1 = Rate(() => new PaillierEncryptor(sk.PublicKey) { Parallelism = 1 }, seconds, out int n2);
            var textbook1 = Rate(() => new PaillierEncryptor(sk.PublicKey) { Parallelism = 1, Textbook = true }, seconds, out int n6);
            double gmpy2After = Gmpy2(bits), gmpy2 = Math.Max(gmpy2Before, gmpy2After);
            var keyholderAll = Rate(() => new PaillierEncryptor(sk), seconds, out int n3);
            var publicAll = Rate(() => new PaillierEncryptor(sk.PublicKey), seconds, out int n4);
            double managed1;
            int n5;
            using (BigMath.ForceManaged()) managed1 = Rate(() => new PaillierEncryptor(sk.PublicKey) { Parallelism = 1, Textbook = true }, seconds, out n5);
            double decrypt1 = DecryptRate(sk, seconds);
            double hot = HotPathRate(sk);
            var common = new Dictionary<string, object>
            {
                ["key_bits"] = bits, ["gmp"] = BigMath.UsesGmp, ["cores"] = cores, ["gmpy2_runs_ops_per_s"] = new[] { gmpy2Before, gmpy2After },
                ["loadavg_before"] = loadBefore, ["loadavg_after"] = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "",
            };
            figures.Add(new($"paillier-{bits}-encrypt-keyholder-1core", "throughput", "ops/s", keyholder1, b, gmpy2, n1)
            { Details = new(common) { ["goal"] = "per core >= 2x gmpy2", ["path"] = "CRT obfuscator y^p mod p^2, z^q mod q^2 (powm_sec)", ["decrypt_ops_per_s_1core"] = decrypt1 } });
            figures.Add(new($"paillier-{bits}-encrypt-public-1core", "throughput", "ops/s", public1, b, gmpy2, n2)
            { Details = new(common) { ["goal"] = "per core >= 2x gmpy2", ["path"] = "DJN fixed base: h_s^alpha, alpha of bits(n)+128 bits, window-8 table in Montgomery form (mpn_mul_n + mpn_redc_2)", ["table_build_seconds"] = tableSeconds } });
            figures.Add(new($"paillier-{bits}-encrypt-textbook-1core", "throughput", "ops/s", textbook1, b, gmpy2, n6)
            { Details = new(common) { ["path"] = "r^n mod n^2 via GMP mpz_powm (exactly what FATE/gmpy2 computes)", ["biginteger_fallback_ops_per_s_1core"] = managed1, ["biginteger_rows"] = n5 } });
            figures.Add(new($"paillier-{bits}-encrypt-keyholder-allcores", "throughput", "ops/s", keyholderAll, b, gmpy2, n3)
            { Details = new(common) { ["per_core"] = keyholderAll / cores, ["api"] = "PaillierEncryptor(privateKey).EncryptBatch" } });
            figures.Add(new($"paillier-{bits}-encrypt-public-allcores", "throughput", "ops/s", publicAll, b, gmpy2, n4)
            { Details = new(common) { ["per_core"] = publicAll / cores, ["hot_path_with_filled_pool_ops_per_s"] = hot, ["note"] = "hot path: obfuscators precomputed beforehand (StartPrecompute), not counted" } });
            context.Log($"  {bits}: keyholder {keyholder1:F0}/s, public {public1:F0}/s, textbook {textbook1:F0}/s, all-cores {keyholderAll:F0}/{publicAll:F0}/s, gmpy2 {gmpy2:F0}/s");
            figures.Add(DotFigure(sk.PublicKey, context.Quick ? 500 : 2000, 30));
        }
        return figures;
    }

    /// <summary>Homomorphic.Dot (Pippenger, all cores) against the naive one-modpow-per-term product (all cores), same inputs.</summary>
    static BenchFigure DotFigure(PaillierPublicKey pk, int rows, int width)
    {
        var rng = new Random(3);
        using var enc = new PaillierEncryptor(pk);
        var cts = enc.EncryptBatch(Enumerable.Range(0, rows).Select(i => rng.NextDouble()).ToArray());
        var x = Enumerable.Range(0, rows).Select(_ => Enumerable.Range(0, width).Select(_ => Fed.Training.Train.Objective.FeatureScalar(rng.NextDouble() * 4 - 2, 20)).ToArray()).ToArray();
        var sw = Stopwatch.StartNew();
        var fast = Fed.Training.Protocol.Homomorphic.Dot(pk, cts, 0, rows, x, width);
        var fastSeconds = sw.Elapsed.TotalSeconds;
        sw.Restart();
        var naive = Fed.Training.Protocol.Homomorphic.DotNaive(pk, cts, 0, rows, x, width);
        var naiveSeconds = sw.Elapsed.TotalSeconds;
        if (!fast.SequenceEqual(naive)) throw new InvalidOperationException("multi-exponentiation disagrees with the naive product");
        return new BenchFigure($"paillier-{pk.Bits}-dot-{rows}x{width}", "scalar_multiplications_per_s", "terms/s", rows * width / fastSeconds,
            "one modpow per term (GMP mpz_powm), same inputs, all cores", rows * width / naiveSeconds, rows * width)
        {
            Details = new() { ["key_bits"] = pk.Bits, ["feature_bits"] = 20, ["cores"] = Environment.ProcessorCount, ["seconds"] = fastSeconds, ["naive_seconds"] = naiveSeconds,
                ["loadavg"] = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "" },
        };
    }

    /// <summary>EncryptBatch in batches of 64 until the time is up.</summary>
    static double Rate(Func<PaillierEncryptor> create, double seconds, out int done)
    {
        using var enc = create();
        var xs = Enumerable.Range(0, 64).Select(i => Math.Sin(i) * 100).ToArray();
        enc.EncryptBatch(xs.AsSpan(0, 4)); // warm-up (JIT, per-thread GMP state)
        done = 0;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < seconds) { enc.EncryptBatch(xs); done += xs.Length; }
        return done / sw.Elapsed.TotalSeconds;
    }

    static double DecryptRate(PaillierPrivateKey sk, double seconds)
    {
        using var enc = new PaillierEncryptor(sk) { Parallelism = 1 };
        var cs = enc.EncryptBatch(Enumerable.Range(0, 64).Select(i => (double)i).ToArray());
        int done = 0;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < seconds / 2) { enc.DecryptBatch(cs); done += cs.Length; }
        return done / sw.Elapsed.TotalSeconds;
    }

    static double HotPathRate(PaillierPrivateKey sk)
    {
        using var enc = new PaillierEncryptor(sk.PublicKey) { Parallelism = 1 };
        enc.Precompute(512);
        var xs = Enumerable.Range(0, 512).Select(i => i * 0.5).ToArray();
        var sw = Stopwatch.StartNew();
        enc.EncryptBatch(xs);
        return xs.Length / sw.Elapsed.TotalSeconds;
    }

    internal static string RepoRoot()
    {
        var dir = AppContext.BaseDirectory;
        while (dir != null && !File.Exists(Path.Combine(dir, "Fed.sln"))) dir = Path.GetDirectoryName(dir);
        return dir ?? Directory.GetCurrentDirectory();
    }
}
