using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Fed.Core;
using Fed.Training.Horizontal;
using Fed.Training.Protocol;
using Xunit.Abstractions;

namespace Fed.Training.Tests.Horizontal;

public class SecureAggregationTests(ITestOutputHelper output)
{
    static Dictionary<string, PairwiseMasker> Group(params string[] names)
    {
        var m = names.ToDictionary(n => n, n => new PairwiseMasker(n));
        var keys = m.ToDictionary(kv => kv.Key, kv => kv.Value.PublicKey);
        var session = new byte[16];
        foreach (var x in m.Values) x.Agree(keys, session);
        return m;
    }

    [Fact]
    public void Pairwise_masks_cancel_in_the_sum_and_hide_each_vector()
    {
        var g = Group("a", "b", "c", "d", "e");
        var plain = g.Keys.ToDictionary(n => n, n => Ring.Encode(Enumerable.Range(0, 40).Select(i => i * 0.5 - n[0] * 1.25).ToArray()));
        var live = g.Keys.ToArray();
        var masked = g.ToDictionary(kv => kv.Key, kv => kv.Value.Mask(plain[kv.Key], "round-1", 0, live));
        var sum = new UInt128[40];
        foreach (var v in masked.Values) Ring.AddInto(sum, v);
        var want = new UInt128[40];
        foreach (var v in plain.Values) Ring.AddInto(want, v);
        Assert.Equal(want, sum);
        foreach (var n in live) Assert.All(Enumerable.Range(0, 40), i => Assert.NotEqual(plain[n][i], masked[n][i]));
        // fresh masks per step: the same vector masked for another step looks unrelated
        Assert.NotEqual(masked["a"], g["a"].Mask(plain["a"], "round-2", 0, live));
        Assert.Equal(-1.25 * 'a' + 3 * 0.5, Ring.Decode(plain["a"][3]));
    }

    [Fact]
    public void After_a_dropout_the_survivors_fresh_masks_cancel_over_the_smaller_set()
    {
        var g = Group("a", "b", "c", "d");
        var plain = g.Keys.ToDictionary(n => n, n => Ring.Encode([n[0], 2.5]));
        var survivors = new[] { "a", "c", "d" };
        var sum = new UInt128[2];
        foreach (var n in survivors) Ring.AddInto(sum, g[n].Mask(plain[n], "round-3", 1, survivors));
        Assert.Equal(['a' + 'c' + 'd', 7.5], Ring.Decode(sum));
        // attempt 0's masks (over all four) do not cancel without the dropped member
        var partial = new UInt128[2];
        foreach (var n in survivors) Ring.AddInto(partial, g[n].Mask(plain[n], "round-3", 0, g.Keys.ToArray()));
        Assert.NotEqual(sum, partial);
    }

    [Fact]
    public void Ring_refuses_values_beyond_its_range_and_round_trips_fixed_point()
    {
        Assert.Throws<FedFailureException>(() => Ring.Encode(double.NaN));
        Assert.Throws<FedFailureException>(() => Ring.Encode(Ring.Limit));
        Assert.Equal(-123.5, Ring.Decode(Ring.Encode(-123.5)));
        Assert.Equal(Math.Round(Math.ScaleB(0.1, 32)) / Math.ScaleB(1, 32), Ring.Decode(Ring.Encode(0.1)));
    }

    [Fact]
    public void A_low_order_public_key_is_refused()
    {
        var m = new PairwiseMasker("a");
        Assert.Throws<FedFailureException>(() => m.Agree(new Dictionary<string, byte[]> { ["b"] = new byte[32] }, new byte[16]));
    }

    /// <summary>
    /// The whole transcript of a training (6 clients, 2 aggregation servers, real HTTP/2 + TLS): what a client sends is
    /// masked ring elements plus a small header; what an aggregation server receives from its clients adds up to its
    /// group's sum only; what it sends up is masked too; and no client's plain vector (nor a group's plain sum) appears
    /// anywhere on the wire, as bytes or as text.
    /// </summary>
    [Fact]
    public async Task Aggregation_servers_see_only_masked_updates_and_no_raw_update_leaves_a_client()
    {
        var messages = new ConcurrentQueue<(string From, string To, string Tag, byte[] Body)>();
        var clientVectors = new ConcurrentDictionary<(string, string), UInt128[]>();
        var groupSums = new ConcurrentDictionary<(string, string), UInt128[]>();
        var probe = new HorizontalProbe
        {
            ClientVector = (c, step, v) => clientVectors[(c, step)] = (UInt128[])v.Clone(),
            GroupSum = (a, step, v) => groupSums[(a, step)] = (UInt128[])v.Clone(),
        };
        var dir = TrainingFixtures.TempDir();
        var clients = HorizontalFixtures.Split("breast_cancer", "iid", dir);
        var r = await HorizontalLocal.RunAsync(clients, 2, new HorizontalOptions { Rounds = 5, L2 = 0.0025, LearningRate = 1 }, Path.Combine(dir, "out"),
            tap: (f, t, tag, body) => messages.Enqueue((f, t, tag, body)), probe: probe);
        var all = messages.ToList();
        output.WriteLine($"{all.Count} messages, {clientVectors.Count} client vectors, {groupSums.Count} group sums");
        Assert.Equal(7 * 6, clientVectors.Count);     // mean, var and 5 rounds at each of 6 clients
        Assert.Equal(7 * 2, groupSums.Count);

        var clientNames = clients.Select(c => c.Name).ToHashSet();
        var aggs = new[] { "agg1", "agg2" };
        foreach (var (from, to, tag, body) in all)
        {
            var m = Message.Decode(body);
            if (clientNames.Contains(from) || aggs.Contains(from) && to == "coordinator")
            {
                // up the tree: only masked sums, public keys and a header
                Assert.All(m.Parts.Keys, p => Assert.Contains(p, new[] { "mask.sum", "ctl.json", "pk.x25519" }));
                if (m.Parts.ContainsKey("mask.sum"))
                {
                    var h = m.Control<SumHeader>("test");
                    Assert.Equal(m.Parts["mask.sum"].Length, h.Length * Ring.ElementBytes);
                }
            }
        }
        // what each server received for a step adds up to its group's sum, and differs from every plain vector
        foreach (var ((agg, step), sum) in groupSums)
        {
            var ups = all.Where(x => x.To == agg && clientNames.Contains(x.From) && x.Tag == $"up.{step}.0").ToList();
            Assert.Equal(3, ups.Count);
            var acc = new UInt128[sum.Length];
            foreach (var u in ups)
            {
                var masked = Ring.Unpack(Message.Decode(u.Body).Parts["mask.sum"], sum.Length, "test");
                var plain = clientVectors[(u.From, step)];
                Assert.All(Enumerable.Range(0, plain.Length), i => Assert.NotEqual(plain[i], masked[i]));
                Ring.AddInto(acc, masked);
            }
            Assert.Equal(sum, acc);
        }
        // no plain element (bytes), no plain value (double bytes or text) anywhere on the wire
        var wire = all.Select(x => x.Body).ToList();
        var text = string.Join("\n", wire.Select(b => Encoding.Latin1.GetString(b)));
        var checkedValues = 0;
        foreach (var v in clientVectors.Values.Concat(groupSums.Values))
            foreach (var e in v)
            {
                var d = Ring.Decode(e);
                if (d == Math.Round(d)) continue; // counts and such small integers could appear by chance as text
                checkedValues++;
                var bytes = Ring.Pack([e]);
                Assert.DoesNotContain(wire, b => b.AsSpan().IndexOf(bytes) >= 0);
                var dbl = BitConverter.GetBytes(d);
                Assert.DoesNotContain(wire, b => b.AsSpan().IndexOf(dbl) >= 0);
                Assert.DoesNotContain(d.ToString("R", CultureInfo.InvariantCulture), text);
            }
        Assert.True(checkedValues > 1000, $"only {checkedValues} values checked");
        Assert.True(File.Exists(r.ModelPath));
    }
}
