using System.Globalization;
using Fed.Core.Scoring;
using Fed.TestSupport;

namespace Fed.Cli.Tests;

/// <summary>`fed predict local --masked` (the masked reference) and the `fed mask` key commands.</summary>
public class MaskedLocalTests
{
    static Dictionary<string, double> Read(string path) => File.ReadLines(path).Skip(1).Select(l => l.Split(','))
        .ToDictionary(f => f[0], f => double.Parse(f[1], CultureInfo.InvariantCulture));

    [Theory]
    [InlineData(3, null)]
    [InlineData(4, null)]
    [InlineData(4, "external")]
    public void Masked_reference_equals_the_unmasked_one_within_the_bound_and_is_the_same_bits_every_run(int parties, string? initiator)
    {
        var h = new Harness();
        var fx = MultiPartyFixture.Write(h.Dir, parties, kind: Fed.Core.Model.ModelKind.Linear);
        var extra = initiator is null ? [] : new[] { "--initiator", initiator };
        var plain = h.Fed(["predict", "local", "--models", fx.ModelsDir, .. fx.PartyArgs(), "--out", h.Path("plain.csv"), "--json"]);
        var m1 = h.Fed(["predict", "local", "--models", fx.ModelsDir, .. fx.PartyArgs(), "--out", h.Path("m1.csv"), "--masked", .. extra, "--json"]);
        var m2 = h.Fed(["predict", "local", "--models", fx.ModelsDir, .. fx.PartyArgs(), "--out", h.Path("m2.csv"), "--masked", .. extra, "--json"]);
        Assert.True(plain.Code == 0 && m1.Code == 0 && m2.Code == 0, $"{plain}\n{m1}\n{m2}");
        Assert.Equal(File.ReadAllText(h.Path("m1.csv")), File.ReadAllText(h.Path("m2.csv")));
        var a = Read(h.Path("plain.csv"));
        var b = Read(h.Path("m1.csv"));
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        Assert.True(a.Count > 300, $"{a.Count} predictions");
        // Linear: the value is z itself; the clear double sum has its own rounding (a few ulps of |z| < 8).
        var bound = FixedPoint.ErrorBound(parties) + 1e-14;
        Assert.All(a, kv => Assert.True(Math.Abs(kv.Value - b[kv.Key]) <= bound, $"{kv.Key}: {kv.Value:R} vs {b[kv.Key]:R}"));
        Assert.Contains(a, kv => kv.Value != b[kv.Key]); // the fixed point is really in the path
        Assert.Contains("masked by", File.ReadAllText(h.Path("m1.csv.report.json")));
    }

    [Fact]
    public void Masking_one_host_for_its_guest_is_refused_with_exit_2_and_nothing_written()
    {
        var h = new Harness();
        var fx = MultiPartyFixture.Write(h.Dir, 2);
        var r = h.Fed(["predict", "local", "--models", fx.ModelsDir, .. fx.PartyArgs(), "--out", h.Path("p.csv"), "--masked"]);
        Assert.Equal(2, r.Code);
        Assert.Contains("sum minus its own", r.Err);
        Assert.False(File.Exists(h.Path("p.csv")));
        var show = h.Fed("model", "show", "--model", fx.ModelFiles["host1"], "--json");
        Assert.Equal(0, show.Code);
        Assert.False(show.Json["masking"]!["enabled"]!.GetValue<bool>());
        Assert.Equal(2, show.Json["masking"]!["initiator_sees"]!.AsArray().Count);
    }

    [Fact]
    public void Model_show_says_what_the_initiator_sees_with_two_hosts()
    {
        var h = new Harness();
        var fx = MultiPartyFixture.Write(h.Dir, 3);
        var show = h.Fed("model", "show", "--model", fx.ModelFiles["guest"], "--json");
        Assert.Equal(0, show.Code);
        Assert.True(show.Json["masking"]!["enabled"]!.GetValue<bool>());
        Assert.Equal(["guest"], show.Json["masking"]!["initiator_sees"]!.AsArray().Select(n => n!.GetValue<string>()));
        var text = h.Fed("model", "show", "--model", fx.ModelFiles["guest"], "--initiator", "external");
        Assert.Contains("masked by guest, host1, host2: the initiator 'external' sees only the sum", text.Out);
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void Mask_keys_are_made_private_peers_pinned_by_fingerprint_and_never_printed()
    {
        var h = new Harness();
        var a = h.Fed("mask", "keygen", "--party", "host1", "--keys", h.Path("h1.keys"), "--public-out", h.Path("h1.pub"), "--json");
        var b = h.Fed("mask", "keygen", "--party", "host2", "--keys", h.Path("h2.keys"), "--public-out", h.Path("h2.pub"), "--json");
        Assert.True(a.Code == 0 && b.Code == 0, $"{a}\n{b}");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(h.Path("h1.keys")));
        Assert.Equal(2, h.Fed("mask", "keygen", "--party", "host1", "--keys", h.Path("h1.keys"), "--public-out", h.Path("x.pub")).Code);
        var wrong = h.Fed("mask", "trust", "--keys", h.Path("h1.keys"), "--public", h.Path("h2.pub"), "--fingerprint", "sha256:00");
        Assert.Equal(2, wrong.Code);
        var fp = b.Json["fingerprint"]!.GetValue<string>();
        var t = h.Fed("mask", "trust", "--keys", h.Path("h1.keys"), "--public", h.Path("h2.pub"), "--fingerprint", fp, "--json");
        Assert.Equal(0, t.Code);
        var show = h.Fed("mask", "show", "--keys", h.Path("h1.keys"), "--json");
        Assert.Equal(fp, show.Json["peers"]!["host2"]!.GetValue<string>());
        var priv = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(h.Path("h1.keys")))!["private"]!.GetValue<string>();
        Assert.DoesNotContain(priv, show.Out + show.Err + t.Out + a.Out);
    }
}
