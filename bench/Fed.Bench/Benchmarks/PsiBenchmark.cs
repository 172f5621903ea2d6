using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Fed.Training.Crypto;
using Fed.Training.Psi;

namespace Fed.Bench.Benchmarks;

/// <summary>
/// PSI throughput, guest and one host in one process (they share the machine's cores), messages passed by
/// <see cref="PsiDriver"/> exactly as a transport would carry them. ids/s = (guest ids + host ids) / wall time.
/// Baseline (documented choice): the insecure "hash both id lists with SHA-256 and join" that PSI replaces,
/// on all cores: the floor cost of aligning the same ids with no privacy at all.
/// Sizes: ECDH 1,000,000 x 1,000,000 (goal under 2 minutes on 2 cores); RSA 100,000 x 100,000, because
/// RSA-2048 signing (2 private-key operations per id pair) would take ~15 minutes at 1M x 1M here.
/// --quick: 20,000 x 20,000 for both.
/// </summary>
public sealed class PsiBenchmark : IBenchmark
{
    public string Name => "psi";

    public IReadOnlyList<BenchFigure> Run(BenchContext context)
    {
        int ecdhSize = context.Quick ? 20_000 : 1_000_000;
        int rsaSize = context.Quick ? 20_000 : 100_000;
        var figures = new List<BenchFigure>();

        var (guest, host) = Ids(ecdhSize);
        double baseline = HashJoinRate(guest, host, out int baselineMatches);
        var sw = Stopwatch.StartNew();
        var ecdh = PsiDriver.RunEcdh(guest, [host]);
        double ecdhSeconds = sw.Elapsed.TotalSeconds;
        Check(ecdh, guest, host, baselineMatches);
        context.Log($"  ECDH {ecdhSize:N0} x {ecdhSize:N0}: {ecdhSeconds:F1} s, {ecdh.GuestRows.Length:N0} matches");
        figures.Add(new($"psi-ecdh-x25519-{ecdhSize}x{ecdhSize}", "throughput", "ids/s", 2.0 * ecdhSize / ecdhSeconds,
            "SHA-256 hash join, all cores, no privacy", baseline, 2L * ecdhSize)
        {
            Details = new()
            {
                ["wall_seconds"] = ecdhSeconds, ["intersection"] = ecdh.GuestRows.Length, ["goal"] = "1M x 1M under 120 s on 2 cores",
                ["x25519"] = Curve25519.UsesNative ? "libsodium" : "BouncyCastle", ["cores"] = Environment.ProcessorCount,
                ["scalar_mults"] = 4L * ecdhSize, ["loadavg_after"] = LoadAverage(),
            },
        });

        (guest, host) = Ids(rsaSize);
        baseline = HashJoinRate(guest, host, out baselineMatches);
        sw.Restart();
        var rsa = PsiDriver.RunRsa(guest, [host]);
        double rsaSeconds = sw.Elapsed.TotalSeconds;
        Check(rsa, guest, host, baselineMatches);
        context.Log($"  RSA {rsaSize:N0} x {rsaSize:N0}: {rsaSeconds:F1} s");
        figures.Add(new($"psi-rsa2048-{rsaSize}x{rsaSize}", "throughput", "ids/s", 2.0 * rsaSize / rsaSeconds,
            "SHA-256 hash join, all cores, no privacy", baseline, 2L * rsaSize)
        {
            Details = new()
            {
                ["wall_seconds"] = rsaSeconds, ["intersection"] = rsa.GuestRows.Length, ["gmp"] = BigMath.UsesGmp,
                ["private_key_ops"] = 2L * rsaSize, ["loadavg_after"] = LoadAverage(), ["estimated_1M_x_1M_seconds"] = 1_000_000.0 / rsaSize * rsaSeconds,
                ["why_not_1M"] = "RSA signing cost is linear; 1M x 1M extrapolates from this run (see estimated_1M_x_1M_seconds)",
            },
        });
        return figures;
    }

    static string LoadAverage() => File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "";

    /// <summary>Guest ids 0..n-1, host ids n/2..3n/2-1 (50% overlap), both shuffled.</summary>
    static (List<string> Guest, List<string> Host) Ids(int n)
    {
        var rng = new Random(42);
        var guest = Enumerable.Range(0, n).Select(i => $"cust{i:D9}").OrderBy(_ => rng.Next()).ToList();
        var host = Enumerable.Range(n / 2, n).Select(i => $"cust{i:D9}").OrderBy(_ => rng.Next()).ToList();
        return (guest, host);
    }

    static double HashJoinRate(List<string> guest, List<string> host, out int matches)
    {
        var sw = Stopwatch.StartNew();
        var hg = Hash(guest);
        var hh = Hash(host);
        var set = new HashSet<string>(hh);
        matches = hg.Count(set.Contains);
        return (guest.Count + host.Count) / sw.Elapsed.TotalSeconds;
    }

    static string[] Hash(List<string> ids)
    {
        var output = new string[ids.Count];
        Parallel.For(0, ids.Count, i => output[i] = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(ids[i]))));
        return output;
    }

    static void Check(PsiDriver.Alignment a, List<string> guest, List<string> host, int expected)
    {
        if (a.GuestRows.Length != expected) throw new InvalidOperationException($"PSI found {a.GuestRows.Length}, expected {expected}");
        for (int k = 0; k < a.GuestRows.Length; k++)
            if (guest[a.GuestRows[k]] != host[a.HostRows[0][k]]) throw new InvalidOperationException("misaligned rows");
    }
}
