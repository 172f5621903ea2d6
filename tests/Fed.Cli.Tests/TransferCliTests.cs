using System.Globalization;
using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.TestSupport;

namespace Fed.Cli.Tests;

/// <summary>`fed train local --protocol transfer` and `fed predict local` on its models: customers only one party holds are
/// scored with the other party's completion part and flagged; customers both hold are scored as usual.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public class TransferCliTests
{
    static readonly string[] Common = ["CheckingAccountStatus.lt.0", "CheckingAccountStatus.none", "Duration", "Amount", "Age"];
    static readonly string[] BankOwn = ["ResidenceDuration", "Telephone", "Housing.Own", "Property.RealEstate", "InstallmentRatePercentage"];
    static readonly string[] InsurerOwn = ["CreditHistory.Critical", "SavingsAccountBonds.lt.100", "Purpose.NewCar", "EmploymentDuration.lt.1"];

    /// <summary>bank: ids 0..349, insurer: ids 330..999 (20 customers in both files).</summary>
    static (string Bank, string Insurer, string[] BankIds, string[] InsurerIds) Files(Harness h)
    {
        var lines = File.ReadAllLines(Path.Combine(TestEnvironment.SharedData, "german_credit", "centralized.csv"));
        var header = lines[0].Split(',');
        var rows = lines.Skip(1).Select(l => l.Split(',')).ToArray();
        string Write(string name, string[][] part, string[] own)
        {
            var cols = new[] { "id", "y" }.Concat(Common).Concat(own).ToArray();
            var at = cols.Select(c => Array.IndexOf(header, c)).ToArray();
            Assert.DoesNotContain(-1, at);
            File.WriteAllLines(h.Path(name + ".csv"), part.Select(r => string.Join(",", at.Select(i => r[i]))).Prepend(string.Join(",", cols)));
            return h.Path(name + ".csv");
        }
        var bank = rows.Take(350).ToArray();
        var insurer = rows.Skip(330).ToArray();
        return (Write("bank", bank, BankOwn), Write("insurer", insurer, InsurerOwn), bank.Select(r => r[0]).ToArray(), insurer.Select(r => r[0]).ToArray());
    }

    [Fact]
    public void Train_transfer_then_predict_flags_completed_parts()
    {
        var h = new Harness();
        var (bank, insurer, bankIds, insurerIds) = Files(h);
        var models = h.Path("models");
        var t = h.Fed("train", "local", "--protocol", "transfer", "--kind", "logistic", "--party", "bank=" + bank, "--party", "insurer=" + insurer,
            "--out", models, "--key-bits", "1024", "--insecure-test-key-bits", "--max-iter", "5", "--json");
        Assert.True(t.Code == 0, t.ToString());
        Assert.Equal("transfer", t.Json["protocol"]!.GetValue<string>());
        Assert.Equal(Common, t.Json["common_features"]!.AsArray().Select(n => n!.GetValue<string>()).ToArray());
        Assert.Equal(5, t.Json["epochs"]!.GetValue<int>());
        foreach (var f in new[] { "bank.model.json", "insurer.model.json", "bank.completion.model.json", "insurer.completion.model.json" })
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(models, f)));

        // Only the bank's file: every bank customer is scored with the insurer's completion part, flagged.
        var p = h.Fed("predict", "local", "--models", models, "--party", "bank=" + bank, "--out", h.Path("bank-only.csv"), "--json");
        Assert.True(p.Code == 0, p.ToString());
        Assert.Equal(bankIds.Length, p.Json["predictions"]!.GetValue<int>());
        Assert.Equal(bankIds.Length, p.Json["completed"]!["insurer"]!.GetValue<int>());
        var bankOnly = Read(h.Path("bank-only.csv"));
        Assert.Equal(bankIds.Order(StringComparer.Ordinal), bankOnly.Keys.Order(StringComparer.Ordinal));
        Assert.All(bankOnly.Values, v => Assert.Equal("insurer", v.Completed));

        // The expected value of one customer, from the model files with Fed.Core's scorer and combiner.
        var main = ScoringModel.From(ModelFile.Read(Path.Combine(models, "bank.model.json")));
        var completion = ScoringModel.From(ModelFile.Read(Path.Combine(models, "insurer.completion.model.json")));
        var table = File.ReadAllLines(bank).Select(l => l.Split(',')).ToArray();
        var row = table[1];
        double[] Part(ScoringModel m)
        {
            var x = m.Features.Select(f => double.Parse(row[Array.IndexOf(table[0], f)], CultureInfo.InvariantCulture)).ToArray();
            var s = new double[1];
            new PartialScorer(m).ScoreRow(x, s);
            return s;
        }
        var expected = Combiner.Combine(main.Signature, new Dictionary<string, double[]> { ["bank"] = Part(main), ["insurer"] = Part(completion) }).Value;
        Assert.Equal(expected, bankOnly[row[0]].Value);

        // Both files: the 20 shared customers scored as usual (no flag), the others with the other party's completion.
        var both = h.Fed("predict", "local", "--models", models, "--party", "bank=" + bank, "--party", "insurer=" + insurer, "--out", h.Path("both.csv"), "--json");
        Assert.True(both.Code == 0, both.ToString());
        var all = Read(h.Path("both.csv"));
        var shared = bankIds.Intersect(insurerIds).ToHashSet();
        Assert.Equal(20, shared.Count);
        Assert.Equal(bankIds.Union(insurerIds).Count(), all.Count);
        Assert.All(shared, id => Assert.Equal("", all[id].Completed));
        Assert.All(bankIds.Except(shared), id => Assert.Equal("insurer", all[id].Completed));
        Assert.All(insurerIds.Except(shared), id => Assert.Equal("bank", all[id].Completed));
        Assert.All(bankIds.Except(shared), id => Assert.Equal(bankOnly[id].Value, all[id].Value));
        Assert.Equal(bankIds.Length - 20, both.Json["completed"]!["insurer"]!.GetValue<int>());
        Assert.Equal(insurerIds.Length - 20, both.Json["completed"]!["bank"]!.GetValue<int>());
    }

    [Fact]
    public void Transfer_refuses_three_parties_and_an_unknown_protocol()
    {
        var h = new Harness();
        var (bank, insurer, _, _) = Files(h);
        var three = h.Fed("train", "local", "--protocol", "transfer", "--kind", "logistic", "--party", "bank=" + bank, "--party", "insurer=" + insurer,
            "--party", "third=" + insurer, "--out", h.Path("m3"), "--key-bits", "1024", "--insecure-test-key-bits");
        Assert.Equal(2, three.Code);
        Assert.Contains("exactly two parties", three.Err);
        Assert.False(Directory.Exists(h.Path("m3")) && Directory.EnumerateFiles(h.Path("m3")).Any());
        var bogus = h.Fed("train", "local", "--protocol", "diagonal", "--kind", "logistic", "--party", "bank=" + bank, "--party", "insurer=" + insurer,
            "--out", h.Path("m4"), "--key-bits", "1024", "--insecure-test-key-bits");
        Assert.Equal(2, bogus.Code);
        Assert.Contains("--protocol must be vertical or transfer", bogus.Err);
    }

    static Dictionary<string, (double Value, string Completed)> Read(string path)
    {
        var lines = File.ReadAllLines(path);
        Assert.Equal("id,prediction,completed", lines[0]);
        return lines.Skip(1).Select(l => l.Split(',')).ToDictionary(p => p[0], p => (double.Parse(p[1], CultureInfo.InvariantCulture), p[2]));
    }
}
