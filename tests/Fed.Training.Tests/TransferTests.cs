using System.Collections.Concurrent;
using System.Globalization;
using System.Numerics;
using System.Text;
using System.Text.Json;
using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.Training.Data;
using Fed.Training.Protocol;
using Fed.Training.Train;
using Fed.Training.Transfer;
using Xunit.Abstractions;

namespace Fed.Training.Tests;

/// <summary>
/// Federated transfer learning by feature completion on german_credit split as in issue 17: two parties with a few
/// common features, each with features of its own, zero customers in common; the small party ("bank") holds ~35% of
/// the customers, the other ("insurer") the rest.
/// </summary>
public class TransferTests(ITestOutputHelper output)
{
    // Common: what both organisations know about a customer. Each party's own columns are the rest of its group.
    public static readonly string[] Common =
        ["CheckingAccountStatus.lt.0", "CheckingAccountStatus.0.to.200", "CheckingAccountStatus.none", "Duration", "Amount", "Age"];
    static readonly string[] SmallOwn =
        ["ResidenceDuration", "NumberPeopleMaintenance", "Telephone", "ForeignWorker", "Property.RealEstate", "Property.Insurance", "Property.CarOther",
         "Job.UnskilledResident", "Job.SkilledEmployee", "NumberExistingCredits", "Housing.Own", "Housing.Rent", "Personal.Male.Single",
         "Personal.Female.NotSingle", "InstallmentRatePercentage"];
    static readonly string[] LargeOwn =
        ["CreditHistory.Critical", "CreditHistory.PaidDuly", "CreditHistory.Delay", "CreditHistory.NoCredit.AllPaid", "SavingsAccountBonds.lt.100",
         "SavingsAccountBonds.Unknown", "Purpose.NewCar", "Purpose.UsedCar", "Purpose.Radio.Television", "EmploymentDuration.lt.1",
         "OtherInstallmentPlans.Bank", "OtherDebtorsGuarantors.Guarantor"];

    public sealed record Split(string Dir, string Small, string Large, string[] Header, Dictionary<string, double[]> Rows, HashSet<string> SmallIds);

    /// <summary>Writes the two parties' CSVs: a customer goes to the small party iff crc32("party:" + id) % 20 &lt; 7.</summary>
    public static Split MakeSplit()
    {
        var dir = TrainingFixtures.TempDir();
        var lines = File.ReadAllLines(TrainingFixtures.Data("german_credit", "centralized.csv"));
        var header = lines[0].Split(',');
        var rows = lines.Skip(1).Select(l => l.Split(',')).ToDictionary(p => p[0], p => p.Skip(1).Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray());
        var small = rows.Keys.Where(id => Crc32.Compute("party:" + id) % 20 < 7).ToHashSet();
        string Write(string name, IEnumerable<string> ids, string[] own)
        {
            var cols = new[] { "y" }.Concat(Common).Concat(own).ToArray();
            var at = cols.Select(c => Array.IndexOf(header, c) - 1).ToArray();
            Assert.DoesNotContain(-2, at);
            var path = Path.Combine(dir, name + ".csv");
            File.WriteAllLines(path, ids.Select(id => id + "," + string.Join(",", at.Select(i => rows[id][i].ToString("R", CultureInfo.InvariantCulture))))
                .Prepend("id," + string.Join(",", cols)));
            return path;
        }
        return new Split(dir, Write("bank", rows.Keys.Where(small.Contains), SmallOwn), Write("insurer", rows.Keys.Where(id => !small.Contains(id)), LargeOwn),
            header, rows, small);
    }

    static readonly TrainOptions Options = new() { KeyBits = 1024, InsecureTestKeyBits = true, MaxIter = 40, LearningRate = 0.5, L2 = 0.01, Tolerance = 1e-5 };

    [Fact]
    public async Task TransferBeatsTheSmallPartysLocalModelAndAgreesWithThePlainReference()
    {
        var split = MakeSplit();
        var parties = new List<LocalParty> { new("bank", split.Small), new("insurer", split.Large) };
        var outDir = Path.Combine(split.Dir, "models");
        var fed = await TransferLocal.RunAsync(parties, "id", "y", Options, outDir, output.WriteLine);

        // The plaintext reference of the same protocol.
        var tables = parties.Select(p => PartyTable.Load(p.Path, "id", "y")).ToArray();
        var common = TransferSide.CommonFeatures(tables[0], tables[1]);
        Assert.Equal(Common, common);
        var sides = tables.Select((t, i) => TransferSide.Prepare(parties[i].Name, t, common, 3, ModelKind.Logistic)).ToArray();
        var plain = TransferPlain.Train(Options, sides[0], sides[1]);
        var fedLosses = fed.Outcomes[0].Losses;
        Assert.Equal(plain.Losses.Count, fedLosses.Count);
        for (var e = 0; e < fedLosses.Count; e++) Assert.True(Math.Abs(fedLosses[e] - plain.Losses[e]) < 1e-6, $"epoch {e}: {fedLosses[e]} vs {plain.Losses[e]}");
        var fedW = fed.Outcomes.Take(2).Select(o => o.Weights!.W[0]).ToArray();
        for (var s = 0; s < 2; s++)
            for (var f = 0; f < fedW[s].Length; f++) Assert.True(Math.Abs(fedW[s][f] - plain.W[s][f]) < 1e-6 * Math.Max(1, Math.Abs(plain.W[s][f])), $"party {s} weight {f}");

        // AUC on the small party's held-out customers (crc32(id) % 10 < 3), only the small party holds them.
        var bank = tables[0];
        var test = Enumerable.Range(0, bank.Rows).Where(r => !new SplitRule(3).IsTrain(bank.Ids[r])).ToArray();
        var y = test.Select(r => bank.Labels![r]).ToArray();
        var main = ScoringModel.From(ModelFile.Read(fed.ModelPaths["bank"]));
        var completion = ScoringModel.From(ModelFile.Read(fed.ModelPaths["insurer.completion"]));
        var transferScores = test.Select(r =>
        {
            var partials = new Dictionary<string, double[]> { ["bank"] = Score(main, bank, r), ["insurer"] = Score(completion, bank, r) };
            return Combiner.Combine(main.Signature, partials, bank.Ids[r]).Value;
        }).ToArray();
        var transferAuc = TrainingFixtures.Auc(y, transferScores);

        // Baseline: the small party alone, its own features (common + own), same optimizer and objective.
        var localAuc = TrainingFixtures.Auc(y, Baseline(bank, bank.Features, test, [bank]));
        // Upper bound: one model on the union of both parties' training customers with every feature of both.
        var all = common.Concat(SmallOwn).Concat(LargeOwn).ToArray();
        var union = Centralized(split, all);
        var centralAuc = TrainingFixtures.Auc(y, Baseline(union, all, test.Select(r => Array.IndexOf(union.Ids, bank.Ids[r])).ToArray(), [union]));
        output.WriteLine($"small party: {sides[0].Rows} training rows, {test.Length} held out; other party: {sides[1].Rows} training rows; overlap 0");
        output.WriteLine($"AUC on the small party's held-out customers: transfer {transferAuc:F4}, local {localAuc:F4}, centralized (upper bound) {centralAuc:F4}");
        Assert.Empty(tables[0].Ids.Intersect(tables[1].Ids));
        Assert.InRange(sides[0].Rows, 200, 330);
        Assert.True(transferAuc > localAuc, $"transfer AUC {transferAuc:F4} does not beat the local model's {localAuc:F4}");
        Assert.True(centralAuc >= transferAuc - 0.02, $"centralized {centralAuc:F4} far below transfer {transferAuc:F4}");
    }

    static readonly HashSet<string> ControlFields =
    [
        "Kind", "Common", "Guest", "Host", "Arbiter",                                   // TransferHello
        "TrainRows", "Features",                                                       // TransferInfo
        "Parties", "TestBuckets", "MaxIter", "LearningRate", "L2", "Tolerance", "LossThreshold", "KeyBits", "ModelId", "Version", // TransferPlan
        "Epoch", "Stop", "Reason", "Loss", "Restart",                                  // Decision
    ];

    static readonly Dictionary<string, string[]> PartsByTag = new()
    {
        ["hello"] = ["ctl.json"], ["info"] = ["ctl.json"], ["plan"] = ["ctl.json"], ["pubkey"] = ["pk.paillier"], ["gram"] = ["ct.S"],
        ["beta"] = ["ct.beta"], ["G"] = ["ct.G"], ["grad"] = ["ct.g"], ["loss"] = ["ct.loss"], ["gradback"] = ["mask.g"], ["decision"] = ["ctl.json"],
    };

    /// <summary>
    /// Records every message at the receiving endpoint of a full transfer run and checks that mapping coefficients,
    /// completed features, either party's weights (and its completion coefficients), features and labels never cross in
    /// the clear: only ciphertexts under the arbiter's key, masked values (to their owner), the public key and the agreed
    /// control fields cross; the arbiter receives only masked gradients and loss ciphertexts.
    /// </summary>
    [Fact]
    public async Task MappingCoefficientsCompletedFeaturesAndWeightsNeverCrossInTheClear()
    {
        var split = MakeSplit();
        var parties = new List<LocalParty> { new("bank", split.Small), new("insurer", split.Large) };
        var log = new ConcurrentQueue<(string From, string To, string Tag, byte[] Body)>();
        var o = Options with { MaxIter = 4 };
        var fed = await TransferLocal.RunAsync(parties, "id", "y", o, Path.Combine(split.Dir, "models"), output.WriteLine,
            (from, to, tag, body) => log.Enqueue((from, to, tag, body)));

        var tables = parties.Select(p => PartyTable.Load(p.Path, "id", "y")).ToArray();
        var sides = tables.Select((t, i) => TransferSide.Prepare(parties[i].Name, t, Common, 3, ModelKind.Logistic)).ToArray();
        var sensitive = new HashSet<long>();
        var fixedPoint = new List<byte[]>();
        void Add(double x, bool fixedToo = false)
        {
            if (x is 0 or 1 or -1 || double.IsNaN(x)) return; // too common to attribute; covered by the structure checks
            sensitive.Add(BitConverter.DoubleToInt64Bits(x));
            // a 53-bit fixed-point encoding of at least 6 bytes (|x| >= 2^-13) is specific enough to search for
            if (fixedToo && BigInteger.Abs(Homomorphic.Scalar(x, 53)).ToByteArray(isUnsigned: true, isBigEndian: true) is { Length: >= 6 } b) fixedPoint.Add(b);
        }
        for (var s = 0; s < 2; s++)
        {
            var side = sides[s]; var other = sides[1 - s];
            foreach (var col in side.Table.Columns) foreach (var x in col) Add(x);
            foreach (var row in side.X) foreach (var x in row) Add(x);
            // Mapping coefficients (own features' ridge rows) and, with the final weights, the completion coefficients.
            foreach (var (row, f) in side.J.Select((r, f) => (r, f)))
                if (!side.CommonIndex.Contains(f)) foreach (var x in row) Add(x, true);
            var w = fed.Outcomes[s].Weights!.W[0];
            foreach (var x in w) Add(x, true);
            foreach (var x in side.Gamma(w)) Add(x, true);
            foreach (var x in side.RawCompletion(w, s == 0 ? fed.Outcomes[0].Weights!.Intercepts[0] : 0)) Add(x, true);
            // Completed features: this party's own features completed for the other party's customers.
            foreach (var c in other.CRaw)
                foreach (var (row, f) in side.J.Select((r, f) => (r, f)))
                {
                    if (side.CommonIndex.Contains(f)) continue;
                    var v = 0.0;
                    for (var k = 0; k < c.Length; k++) v += row[k] * (c[k] - side.Std.Mean[side.CommonIndex[k]]) / side.Std.Std[side.CommonIndex[k]];
                    Add(v); Add(v * side.Std.Std[f] + side.Std.Mean[f]);
                }
        }
        Assert.True(fixedPoint.Count > 50, $"{fixedPoint.Count} fixed-point coefficients");

        BigInteger? n = null;
        var counts = new Dictionary<string, int>();
        foreach (var (from, to, tag, body) in log)
        {
            Assert.NotEqual(from, to);
            var kind = tag.Contains('.') ? tag[(tag.IndexOf('.') + 1)..] : tag;
            Assert.True(PartsByTag.ContainsKey(kind), $"unexpected message '{tag}'");
            var msg = Message.Decode(body);
            Assert.Equal(PartsByTag[kind].Order(), msg.Parts.Keys.Order());
            if (kind is "grad" or "loss") Assert.Equal("arbiter", to);
            if (kind is "gradback") Assert.Equal("arbiter", from);
            if (to == "arbiter") Assert.Contains(kind, new[] { "plan", "grad", "loss" });
            foreach (var (name, data) in msg.Parts)
            {
                var cls = name[..name.IndexOf('.')];
                counts[cls] = counts.GetValueOrDefault(cls) + 1;
                switch (cls)
                {
                    case "pk": Assert.Equal("arbiter", from); n = new BigInteger(data, isUnsigned: true, isBigEndian: true); break;
                    case "ctl":
                        Assert.True(data.Length < 2048, $"control message '{tag}' is {data.Length} bytes");
                        using (var doc = JsonDocument.Parse(data))
                            foreach (var p in doc.RootElement.EnumerateObject())
                            {
                                Assert.True(ControlFields.Contains(p.Name), $"control message '{tag}' has an unexpected field '{p.Name}'");
                                if (p.Value.ValueKind == JsonValueKind.Array) Assert.True(p.Value.GetArrayLength() <= 16);
                                if (p.Name == "Loss" && p.Value.ValueKind != JsonValueKind.Null) Assert.Equal("bank", to); // the aggregate loss goes to the guest only
                            }
                        break;
                    case "ct": Assert.NotNull(n); PrivacyTests.CheckCiphertexts(data, n!.Value); break;
                    case "mask": Assert.NotNull(n); PrivacyTests.CheckMasked(data, n!.Value); break;
                    default: Assert.Fail($"class '{cls}' in transfer message '{tag}'"); break;
                }
                for (var i = 0; i + 8 <= data.Length; i++)
                {
                    var le = BitConverter.ToInt64(data, i);
                    Assert.False(sensitive.Contains(le) || sensitive.Contains(System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(le)),
                        $"message {from}->{to} '{tag}' part '{name}' holds a plaintext value at byte {i}");
                }
                foreach (var fp in fixedPoint)
                    Assert.False(data.AsSpan().IndexOf(fp) >= 0, $"message {from}->{to} '{tag}' part '{name}' holds a 53-bit fixed-point coefficient");
            }
        }
        output.WriteLine($"{log.Count} messages checked ({sensitive.Count} sensitive doubles, {fixedPoint.Count} fixed-point coefficients): " +
            string.Join(", ", counts.Select(c => $"{c.Key} x{c.Value}")));
        Assert.Equal(4, fed.Outcomes[0].Losses.Count);
        // 4 epochs: per epoch 2 beta + 2 G + 2 grad + 2 loss + 2 gradback + 2 decision; setup hello, info, 2 plan, 2 pubkey, 2 gram.
        Assert.Equal(4 * 12 + 8, log.Count);
    }

    static double[] Score(ScoringModel m, PartyTable t, int r)
    {
        var x = m.Features.Select(f => t.Columns[Array.IndexOf(t.Features, f)][r]).ToArray();
        var s = new double[m.OutputCount];
        new PartialScorer(m).ScoreRow(x, s);
        return s;
    }

    /// <summary>Trains one plaintext model (PlainTrainer, the federated objective) on the training rows of the given
    /// table(s) over <paramref name="features"/>, and scores <paramref name="testRows"/> of the first table with Fed's scorer.</summary>
    static double[] Baseline(PartyTable scoreTable, string[] features, int[] testRows, PartyTable[] trainTables)
    {
        var t = trainTables[0];
        var cols = features.Select(f => t.Columns[Array.IndexOf(t.Features, f)]).ToArray();
        var (train, _) = BatchPlan.Split(t.Ids, new SplitRule(3));
        var std = Standardizer.Fit(cols, train);
        var r = PlainTrainer.Train(Options, [std.Transform(cols, train)], [train.Select(i => t.Labels![i]).ToArray()]);
        var model = ScoringModel.From(ModelFile.Stamp(new PartialModel
        {
            ModelId = "baseline", Version = 1, Kind = ModelKind.Logistic, PartyId = "solo", Role = PartyRole.Guest, Parties = ["solo"],
            Features = features, Weights = r.Parties[0].W, Intercepts = r.Parties[0].Intercepts,
            Transform = std.ToTransform(), Missing = std.ToMissingPolicy(),
        }));
        return testRows.Select(i => Combiner.Combine(model.Signature, new Dictionary<string, double[]> { ["solo"] = Score(model, scoreTable, i) }).Value).ToArray();
    }

    /// <summary>Every customer of both parties with every feature (from centralized.csv): the upper bound's data.</summary>
    static PartyTable Centralized(Split split, string[] features)
    {
        var ids = split.Rows.Keys.ToArray();
        var at = features.Select(f => Array.IndexOf(split.Header, f) - 1).ToArray();
        return new PartyTable
        {
            Path = "centralized", Ids = ids, Features = features,
            Columns = at.Select(i => ids.Select(id => split.Rows[id][i]).ToArray()).ToArray(),
            Labels = ids.Select(id => split.Rows[id][0]).ToArray(),
        };
    }
}
