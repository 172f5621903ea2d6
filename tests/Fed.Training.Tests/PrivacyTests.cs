using System.Collections.Concurrent;
using System.Numerics;
using System.Text;
using System.Text.Json;
using Fed.Core.Model;
using Fed.Training.Data;
using Fed.Training.Protocol;
using Fed.Training.Train;
using Xunit.Abstractions;

namespace Fed.Training.Tests;

/// <summary>
/// Records every message that crosses a party boundary (at the receiving HTTP endpoint) in a full three-party run,
/// and checks that only ciphertexts, masked values, public keys, PSI elements and agreed control messages cross.
/// </summary>
public class PrivacyTests(ITestOutputHelper output)
{
    static readonly HashSet<string> ControlFields =
    [
        // Hello
        "Psi", "Kind", "Guest", "Hosts", "Arbiter",
        // Plan
        "Classes", "Outputs", "Aligned", "TrainRows", "TestBuckets", "MaxIter", "LearningRate", "L2", "BatchSize", "Tolerance",
        "LossThreshold", "Seed", "KeyBits", "FeatureBits", "ModelId", "Version", "Parties", "Features",
        // HostInfo (a host's feature count)
        // Decision
        "Epoch", "Stop", "Reason", "Loss", "Restart",
    ];

    [Fact]
    public async Task OnlyCiphertextsMaskedValuesKeysAndControlCrossPartyBoundaries()
    {
        var log = new ConcurrentQueue<(string From, string To, string Tag, byte[] Body)>();
        var o = new TrainOptions { KeyBits = 1024, InsecureTestKeyBits = true, MaxIter = 3, BatchSize = 400 };
        var (fed, _, _, _) = await FederatedTrainingTests.Run("german_credit", o, output.WriteLine, "ecdh",
            (from, to, tag, body) => log.Enqueue((from, to, tag, body)));
        Assert.NotEmpty(log);

        // The sensitive plaintext of every party: raw and standardized features, labels.
        var parties = TrainingFixtures.Parties("german_credit");
        var tables = parties.Select(p => PartyTable.Load(p.Path, "id", p.Name == "guest" ? "y" : null)).ToList();
        var sensitive = new HashSet<long>();
        foreach (var t in tables)
        {
            var std = Standardizer.Fit(t.Columns, Enumerable.Range(0, t.Rows).ToArray());
            foreach (var (col, f) in t.Columns.Select((c, f) => (c, f)))
                foreach (var x in col)
                {
                    if (x is 0 or 1 or -1 || double.IsNaN(x)) continue; // too common to attribute; covered by the structure checks
                    sensitive.Add(BitConverter.DoubleToInt64Bits(x));
                    sensitive.Add(BitConverter.DoubleToInt64Bits((x - std.Mean[f]) / std.Std[f]));
                }
        }

        BigInteger? n = null;
        var counts = new Dictionary<string, int>();
        foreach (var (from, to, tag, body) in log)
        {
            Assert.NotEqual(from, to);
            var msg = Message.Decode(body);
            foreach (var (name, data) in msg.Parts)
            {
                var cls = name[..name.IndexOf('.')];
                counts[cls] = counts.GetValueOrDefault(cls) + 1;
                Assert.Contains(cls, Message.Classes);
                switch (cls)
                {
                    case "pk":
                        Assert.Equal("arbiter", from);
                        n = new BigInteger(data, isUnsigned: true, isBigEndian: true);
                        break;
                    case "ctl":
                        CheckControl(data, tag);
                        break;
                    case "ct":
                        Assert.NotNull(n);
                        CheckCiphertexts(data, n!.Value);
                        break;
                    case "mask":
                        Assert.NotNull(n);
                        Assert.Equal("arbiter", from);
                        CheckMasked(data, n!.Value);
                        break;
                    case "psi":
                        Assert.StartsWith("psi.", tag);
                        break;
                    case "score":
                        // held-out partial scores, host -> guest, once, after the last decision
                        Assert.Equal("holdout", tag);
                        Assert.Equal("guest", to);
                        break;
                }
                // No 8-byte double of any party's feature values, raw or standardized, in any byte order.
                for (var i = 0; i + 8 <= data.Length; i++)
                {
                    var le = BitConverter.ToInt64(data, i);
                    Assert.False(sensitive.Contains(le) || sensitive.Contains(System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(le)),
                        $"message {from}->{to} '{tag}' part '{name}' holds a plaintext feature value at byte {i}");
                }
            }
        }
        output.WriteLine($"{log.Count} messages checked: " + string.Join(", ", counts.Select(c => $"{c.Key} x{c.Value}")));
        Assert.True(counts.GetValueOrDefault("ct") > 0 && counts.GetValueOrDefault("mask") > 0);
        Assert.Equal(3, fed.ModelPaths.Count);
    }

    /// <summary>Control messages are small JSON objects with the agreed fields only; no vector of values rides along.</summary>
    static void CheckControl(byte[] data, string tag)
    {
        Assert.True(data.Length < 2048, $"control message '{tag}' is {data.Length} bytes");
        using var doc = JsonDocument.Parse(data);
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            Assert.True(ControlFields.Contains(p.Name), $"control message '{tag}' has an unexpected field '{p.Name}'");
            if (p.Value.ValueKind == JsonValueKind.Array)
                Assert.True(p.Value.GetArrayLength() <= 16, $"control field '{p.Name}' carries {p.Value.GetArrayLength()} values");
        }
    }

    /// <summary>Every element is in Z*_{n^2} and not a trivial (unrandomized) encryption 1 + m n.</summary>
    internal static void CheckCiphertexts(byte[] data, BigInteger n)
    {
        var nsq = n * n;
        var size = (int)((nsq.GetBitLength() + 7) / 8);
        Assert.Equal(0, data.Length % size);
        for (var i = 0; i < data.Length; i += size)
        {
            var v = new BigInteger(data.AsSpan(i, size), isUnsigned: true, isBigEndian: true);
            Assert.True(v > 1 && v < nsq);
            Assert.False((v % n).IsOne, "a ciphertext without randomness (1 + m n) would reveal m");
        }
    }

    /// <summary>Masked values are uniform in Z_n: none is a small signed fixed-point number (a plain gradient).</summary>
    internal static void CheckMasked(byte[] data, BigInteger n)
    {
        var size = (int)((n.GetBitLength() + 7) / 8);
        Assert.Equal(0, data.Length % size);
        var small = n >> 64; // a uniform value lands within 2^-64 n of 0 (mod n) with probability 2^-63
        for (var i = 0; i < data.Length; i += size)
        {
            var v = new BigInteger(data.AsSpan(i, size), isUnsigned: true, isBigEndian: true);
            Assert.True(v < n);
            Assert.True(v > small && n - v > small, "a masked value looks like an unmasked fixed-point number");
        }
    }
}
