using Fed.Core.Model;
using Fed.Core.Scoring;
using Xunit;

namespace Fed.Core.Tests;

/// <summary>Masked partial scores (docs/privacy.md, "Masked partial scores"): ring encoding, its error bound and range,
/// masks that cancel, keys, and what one party's masked values reveal.</summary>
public class MaskingTests
{
    static ModelSignature Sig(int parties, ModelKind kind = ModelKind.Linear, string[]? classes = null) =>
        new("m", 3, kind, classes ?? [], ["guest", .. Enumerable.Range(1, parties - 1).Select(i => $"host{i}")]);

    /// <summary>Each party's score masked for one context; returns the parts the initiator receives.</summary>
    static Dictionary<string, long[]> MaskAll(ModelSignature sig, MaskingPolicy policy, Dictionary<string, MaskKeys> keys,
        MaskContext ctx, string sample, Dictionary<string, double[]> scores)
    {
        var parts = new Dictionary<string, long[]>();
        foreach (var p in sig.Parties)
        {
            using var m = new ScoreMasker(sig, policy, p, keys.TryGetValue(p, out var k) ? k.PairSecrets(sig, policy) : [], ctx);
            parts[p] = m.Mask(sample, scores[p]);
        }
        return parts;
    }

    [Theory]
    [InlineData(3, "guest")]
    [InlineData(4, "guest")]
    [InlineData(4, MaskingPolicy.External)]
    public void Masked_sum_errs_by_exactly_the_documented_bound_at_the_worst_case(int n, string initiator)
    {
        var sig = Sig(n);
        var policy = MaskingPolicy.For(sig, initiator, true);
        var keys = MaskKeys.Ephemeral(policy.Maskers);
        // (2k + 0.5) · 2^-32 lies halfway between two ring values and rounds (to even) down by 2^-33 at every party:
        // the worst case, every party's error the same sign. The doubles are exact, so the clear sum is exact too.
        var scores = sig.Parties.Select((p, i) => (p, new[] { (2.0 * (i + 3) + 0.5) * Math.ScaleB(1, -32) + (i - 1) }))
            .ToDictionary(t => t.p, t => t.Item2);
        var exact = scores.Values.Sum(s => s[0]);
        var masked = Combiner.CombineMasked(sig, MaskAll(sig, policy, keys, MaskContext.Request("m", 3, "r1"), "s1", scores), "s1").Value;
        var clear = Combiner.Combine(sig, scores, "s1").Value;
        Assert.Equal(exact, clear);
        Assert.Equal(FixedPoint.ErrorBound(n), Math.Abs(masked - clear));
        Assert.Equal(n * Math.ScaleB(1, -33), FixedPoint.ErrorBound(n));
    }

    [Fact]
    public void Masks_cancel_exactly_so_the_bits_equal_the_unmasked_ring_sum_for_random_scores_and_softmax()
    {
        var sig = Sig(4, ModelKind.Softmax, ["a", "b", "c"]);
        var policy = MaskingPolicy.Default(sig);
        Assert.True(policy.Enabled);
        var keys = MaskKeys.Ephemeral(policy.Maskers);
        var none = new MaskingPolicy(false, "guest", []);
        var rng = new Random(7);
        for (var i = 0; i < 500; i++)
        {
            var scores = sig.Parties.ToDictionary(p => p, _ => Enumerable.Range(0, 3).Select(_ => (rng.NextDouble() - 0.5) * 40).ToArray());
            var ctx = MaskContext.Request("m", 3, $"req-{i}");
            var a = Combiner.CombineMasked(sig, MaskAll(sig, policy, keys, ctx, $"s{i}", scores));
            var b = Combiner.CombineMasked(sig, MaskAll(sig, none, [], ctx, $"s{i}", scores));
            var c = Combiner.Combine(sig, scores);
            Assert.Equal(b.Value, a.Value);
            Assert.Equal(b.Probabilities!, a.Probabilities!);
            Assert.Equal(c.PredictedClass, a.PredictedClass);
            Assert.True(Math.Abs(a.Value - c.Value) <= FixedPoint.ErrorBound(4), $"{a.Value} vs {c.Value}");
        }
    }

    [Fact]
    public void A_score_at_the_range_limit_is_refused_and_the_largest_allowed_scores_sum_without_wrapping()
    {
        foreach (var n in new[] { 2, 3, 4, 5, 8 })
        {
            var limit = FixedPoint.Limit(n);
            Assert.Equal(Math.ScaleB(1, 63 - 32 - (int)Math.Ceiling(Math.Log2(n))), limit);
            var e = Assert.Throws<BadInputException>(() => FixedPoint.Encode(limit, n, "host1", "s9"));
            Assert.Contains("outside the masked range", e.Message);
            Assert.Contains("'s9'", e.Message);
            Assert.Throws<BadInputException>(() => FixedPoint.Encode(-limit, n, "host1"));
            Assert.Throws<BadInputException>(() => FixedPoint.Encode(double.NaN, n, "host1"));
            Assert.Throws<BadInputException>(() => FixedPoint.Encode(double.PositiveInfinity, n, "host1"));
            var top = Math.BitDecrement(limit);
            foreach (var sign in new[] { 1.0, -1.0 })
            {
                var sum = 0L;
                for (var i = 0; i < n; i++) sum = unchecked(sum + FixedPoint.Encode(sign * top, n, "p"));
                Assert.Equal(sign * top * n, FixedPoint.Decode(sum));
            }
        }
    }

    [Fact]
    public void A_missing_party_is_an_explicit_incomplete()
    {
        var sig = Sig(3);
        var policy = MaskingPolicy.Default(sig);
        var keys = MaskKeys.Ephemeral(policy.Maskers);
        var parts = MaskAll(sig, policy, keys, MaskContext.Request("m", 3, "r"), "s", sig.Parties.ToDictionary(p => p, _ => new[] { 1.0 }));
        parts.Remove("host2");
        var e = Assert.Throws<IncompletePartiesException>(() => Combiner.CombineMasked(sig, parts, "s"));
        Assert.Equal(["host2"], e.MissingParties);
    }

    [Fact]
    public void Policy_defaults_follow_the_host_count_and_the_initiator_and_one_host_cannot_be_masked()
    {
        var two = Sig(2);
        var off = MaskingPolicy.Default(two);
        Assert.False(off.Enabled);
        Assert.Equal(["guest", "host1"], off.VisibleTo(two));
        Assert.Contains("inherent", off.Describe(two));
        var forced = Assert.Throws<BadInputException>(() => MaskingPolicy.For(two, null, true));
        Assert.Contains("sum minus its own", forced.Message);
        var ext = MaskingPolicy.Default(two, MaskingPolicy.External);
        Assert.True(ext.Enabled);
        Assert.Equal(["guest", "host1"], ext.Maskers);
        Assert.Empty(ext.VisibleTo(two));
        var three = Sig(3);
        var on = MaskingPolicy.Default(three);
        Assert.Equal(["host1", "host2"], on.Maskers);
        Assert.Equal(["guest"], on.VisibleTo(three));
        Assert.Throws<BadInputException>(() => MaskingPolicy.Default(three, "nobody"));
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void Key_files_are_private_pins_are_sticky_and_pair_secrets_agree_per_model_version()
    {
        var dir = Directory.CreateTempSubdirectory("fed-mask-");
        try
        {
            var a = MaskKeys.Generate("host1");
            var b = MaskKeys.Generate("host2");
            var pubB = Path.Combine(dir.FullName, "b.pub.json");
            File.WriteAllText(pubB, b.PublicJson());
            var (peer, key) = MaskKeys.ReadPublic(pubB);
            Assert.Equal("host2", peer);
            a.Pin(peer, key);
            b.Pin("host1", a.PublicKey);
            var path = Path.Combine(dir.FullName, "a.keys.json");
            a.Write(path);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            var a2 = MaskKeys.Read(path);
            Assert.Equal(a.PublicKey, a2.PublicKey);
            Assert.Equal(a2.PairSecret("host2", "m", 1), b.PairSecret("host1", "m", 1));
            Assert.NotEqual(a2.PairSecret("host2", "m", 1), a2.PairSecret("host2", "m", 2));
            var other = MaskKeys.Generate("host2");
            Assert.Contains("already pinned", Assert.Throws<BadInputException>(() => a2.Pin("host2", other.PublicKey)).Message);
            a2.Pin("host2", b.PublicKey); // the same key again: no change
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
            Assert.Throws<BadInputException>(() => MaskKeys.Read(path));
            Assert.DoesNotContain(Convert.ToBase64String(b.PairSecret("host1", "m", 1)), b.PublicJson());
        }
        finally { dir.Delete(true); }
    }

    /// <summary>
    /// What the initiator receives from a host, over many samples: uncorrelated with the true partial score
    /// (Pearson |r| &lt; 0.03 over N = 20,000, about 4.2 standard errors of 1/sqrt(N) for independent values), uniform
    /// over the ring (chi-square of the top 4 bits over 16 bins &lt; 37.7, the 0.001 quantile for 15 degrees of freedom),
    /// and the same for the sum of any set of parties that leaves out a masker (all but the full sum stay masked).
    /// </summary>
    [Theory]
    [InlineData(3)]
    [InlineData(4)]
    public void One_partys_masked_values_are_uniform_and_uncorrelated_with_its_score(int n)
    {
        const int N = 20_000;
        var sig = Sig(n);
        var policy = MaskingPolicy.Default(sig);
        var keys = MaskKeys.Ephemeral(policy.Maskers);
        var rng = new Random(11);
        var ids = Enumerable.Range(0, N).Select(i => $"cust-{i}").ToArray();
        var truth = sig.Parties.ToDictionary(p => p, _ => Enumerable.Range(0, N).Select(_ => rng.NextDouble() * 10 - 5).ToArray());
        var ctx = MaskContext.Batch("m", 3, "dt=2026-12-03", "run-1");
        var sent = sig.Parties.ToDictionary(p => p, p =>
        {
            using var m = new ScoreMasker(sig, policy, p, keys.TryGetValue(p, out var k) ? k.PairSecrets(sig, policy) : [], ctx);
            return m.MaskBatch(ids, [truth[p]], N)[0];
        });
        // Every proper subset containing at least one masker but not all of them.
        var subsets = Enumerable.Range(1, (1 << n) - 2).Select(mask => sig.Parties.Where((_, i) => (mask >> i & 1) == 1).ToArray())
            .Where(s => s.Any(policy.Maskers.Contains) && !policy.Maskers.All(s.Contains)).ToList();
        Assert.NotEmpty(subsets);
        foreach (var subset in subsets)
        {
            var seen = new double[N];
            var real = new double[N];
            var bins = new int[16];
            for (var r = 0; r < N; r++)
            {
                var s = 0L;
                foreach (var p in subset) { s = unchecked(s + sent[p][r]); real[r] += truth[p][r]; }
                seen[r] = s;
                bins[(int)((ulong)s >> 60)]++;
            }
            var corr = Fed.TestSupport.TranscriptStats.Pearson(seen, real);
            Assert.True(Math.Abs(corr) < 0.03, $"{string.Join("+", subset)}: r = {corr}");
            var chi = bins.Sum(b => (b - N / 16.0) * (b - N / 16.0) / (N / 16.0));
            Assert.True(chi < 37.7, $"{string.Join("+", subset)}: chi2 = {chi}");
        }
        // The full sum is the scores' sum, within the bound.
        for (var r = 0; r < N; r += 997)
        {
            var s = 0L;
            foreach (var p in sig.Parties) s = unchecked(s + sent[p][r]);
            Assert.True(Math.Abs(FixedPoint.Decode(s) - sig.Parties.Sum(p => truth[p][r])) <= FixedPoint.ErrorBound(n) + 1e-14);
        }
    }

    [Fact]
    public void A_new_request_for_the_same_sample_draws_fresh_masks_and_the_same_context_the_same_ones()
    {
        var sig = Sig(3);
        var policy = MaskingPolicy.Default(sig);
        var keys = MaskKeys.Ephemeral(policy.Maskers);
        var secrets = keys["host1"].PairSecrets(sig, policy);
        var seen = new HashSet<long>();
        for (var i = 0; i < 1000; i++)
        {
            using var m = new ScoreMasker(sig, policy, "host1", secrets, MaskContext.Request("m", 3, $"req-{i}"));
            Assert.True(seen.Add(m.Mask("same-sample", [1.25])[0]));
        }
        using var x = new ScoreMasker(sig, policy, "host1", secrets, MaskContext.Request("m", 3, "req-5"));
        using var y = new ScoreMasker(sig, policy, "host1", secrets, MaskContext.Request("m", 3, "req-5"));
        Assert.Equal(x.Mask("same-sample", [1.25]), y.Mask("same-sample", [1.25]));
        // Long sample ids take the hashed block; ids differing only past byte 15 still get different masks.
        Assert.NotEqual(x.Mask("a-very-long-sample-id-0001", [1.0]), x.Mask("a-very-long-sample-id-0002", [1.0]));
        using var batch = new ScoreMasker(sig, policy, "host1", secrets, MaskContext.Batch("m", 3, "dt=2026-12-03", "run-1"));
        using var rerun = new ScoreMasker(sig, policy, "host1", secrets, MaskContext.Batch("m", 3, "dt=2026-12-03", "run-2"));
        Assert.NotEqual(batch.Mask("s", [1.0]), rerun.Mask("s", [1.0]));
    }
}
