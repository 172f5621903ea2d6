using System.Globalization;
using Fed.Converter;
using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.Core.Data;
using Fed.TestSupport;
using Fed.Warehouse;

namespace Fed.SparkPredict.Tests;

/// <summary>
/// Masked daily batch (docs/privacy.md): each party's `predict batch` writes masked files, `predict combine` decodes
/// only the sum, and the predictions are the bits of `predict local --masked`. The transcript (the files each party
/// sent) is checked: masked values uncorrelated with the party's true partial scores, fresh masks on a rerun.
/// </summary>
public class MaskedBatchTests
{
    const string Dt = "2026-12-03";

    sealed class Run : IDisposable
    {
        public required string Dir { get; init; }
        public required MultiPartyFixture Fx { get; init; }
        public required string Wh { get; init; }
        public required Dictionary<string, string> Keys { get; init; }
        public void Dispose() { try { Directory.Delete(Dir, true); } catch (IOException) { } }

        public (int Code, string Out, string Err) Score(string party, string outDir, string runId) =>
            Env.Cli(["predict", "batch", "--party", party, "--model-id", Fx.ModelId, "--features", Fx.Csv[party], "--dt", Dt,
                "--warehouse", Wh, "--out", outDir, "--run-id", runId, .. Keys.TryGetValue(party, out var k) ? new[] { "--mask-keys", k } : [], "--json"]);

        public (int Code, string Out, string Err) Combine(string input) =>
            Env.Cli("predict", "combine", "--model-id", Fx.ModelId, "--dt", Dt, "--input", input, "--warehouse", Wh, "--report", Path.Combine(Dir, "cov.json"), "--json");
    }

    static Run Setup(int parties, int rows, string? initiator = null, ModelKind kind = ModelKind.Logistic)
    {
        var dir = Directory.CreateTempSubdirectory("fed-maskbatch-").FullName;
        var fx = MultiPartyFixture.Write(dir, parties, rows: rows, kind: kind);
        var wh = "sqlite:" + Path.Combine(dir, "wh.db");
        using (var w = WarehouseFactory.Open(wh))
        {
            foreach (var f in fx.ModelFiles.Values) new ModelExporter(w).Export(ModelFile.Read(f));
            var sig = CombineCore.Signature(w, fx.ModelId, null);
            if (initiator != null) new MaskingRegistry(w).Set(sig, true, initiator);
            Assert.True(new MaskingRegistry(w).Policy(sig).Enabled);
        }
        var policy = MaskingPolicy.For(new ModelSignature(fx.ModelId, 1, kind, [], fx.Parties), initiator, true);
        var keys = new Dictionary<string, string>();
        foreach (var (p, k) in MaskKeys.Ephemeral(policy.Maskers))
        {
            keys[p] = Path.Combine(dir, $"{p}.maskkeys.json");
            k.Write(keys[p]);
        }
        return new Run { Dir = dir, Fx = fx, Wh = wh, Keys = keys };
    }

    [Theory]
    [InlineData(3, null)]
    [InlineData(4, null)]
    [InlineData(3, "external")]
    public void Masked_batch_gives_the_bits_of_predict_local_masked(int parties, string? initiator)
    {
        using var run = Setup(parties, 600, initiator);
        var outDir = Path.Combine(run.Dir, "scores");
        foreach (var p in run.Fx.Parties) { var r = run.Score(p, outDir, "run-1"); Assert.True(r.Code == 0, r.Err); }
        var c = run.Combine(outDir);
        Assert.True(c.Code == 0, c.Err);
        var reference = LocalPredictor.Run(run.Fx.ModelsDir, run.Fx.Parties.Select(p => (p, run.Fx.Csv[p])).ToList(), Path.Combine(run.Dir, "ref.csv"),
            masked: true, initiator: initiator);
        using var w = WarehouseFactory.Open(run.Wh);
        var table = Env.ReadPredictions(w, run.Fx.ModelId, Dt);
        Assert.Equal(reference.Predictions.Count, table.Count);
        Assert.True(table.Count > 500, $"{table.Count}");
        for (var i = 0; i < reference.Predictions.Count; i++)
            Assert.Equal(BitConverter.DoubleToInt64Bits(reference.Predictions.Values[i]), BitConverter.DoubleToInt64Bits(table[reference.Predictions.Ids[i]].Value));
        // Within the documented bound of the unmasked reference (logistic: the sigmoid is 1/4-Lipschitz).
        var plain = LocalPredictor.Run(run.Fx.ModelsDir, run.Fx.Parties.Select(p => (p, run.Fx.Csv[p])).ToList(), Path.Combine(run.Dir, "plain.csv"));
        for (var i = 0; i < plain.Predictions.Count; i++)
            Assert.True(Math.Abs(plain.Predictions.Values[i] - table[plain.Predictions.Ids[i]].Value) <= FixedPoint.ErrorBound(parties) / 4 + 1e-15);
    }

    [Fact]
    public void What_a_host_sends_is_uncorrelated_with_its_scores_and_a_rerun_draws_fresh_masks()
    {
        const int N = 4000;
        using var run = Setup(3, N);
        var first = Path.Combine(run.Dir, "first");
        var second = Path.Combine(run.Dir, "second");
        foreach (var p in run.Fx.Parties) Assert.Equal(0, run.Score(p, first, "run-1").Code);
        Assert.Equal(0, run.Score("host1", second, "run-2").Code);
        // The same run id again for the same partition is refused: its masks would be reused on other data.
        var again = run.Score("host1", first, "run-1");
        Assert.Equal(2, again.Code);
        Assert.Contains("already used", again.Err);

        var sent1 = ReadMasked(Directory.GetFiles(first, "*host1*.csv").Single());
        var sent2 = ReadMasked(Directory.GetFiles(second, "*host1*.csv").Single());
        var truth = TranscriptStats.TrueScores(run.Fx, "host1");
        Assert.Equal(truth.Count, sent1.Count);
        Assert.True(truth.Count > 0.9 * N);
        var ids = truth.Keys.ToArray();
        // Pearson |r| < 4/sqrt(n) (about 4 standard errors for independent values).
        var r = TranscriptStats.Pearson(ids.Select(i => (double)sent1[i]).ToArray(), ids.Select(i => truth[i]).ToArray());
        Assert.True(Math.Abs(r) < 4 / Math.Sqrt(ids.Length), $"r = {r}");
        // Fresh masks: no sample gets the same value in the two runs, and the difference is unrelated to the score.
        Assert.All(ids, i => Assert.NotEqual(sent1[i], sent2[i]));
        // One party's file alone decodes to nothing like its scores: no value is within 1.0 of the truth for most samples.
        var near = ids.Count(i => Math.Abs(FixedPoint.Decode(sent1[i]) - truth[i]) < 1.0);
        Assert.True(near < ids.Length / 100, $"{near} of {ids.Length} decode near the truth");
        // The guest (the initiator here) only encodes: its file is its clear fixed-point score.
        var guest = ReadMasked(Directory.GetFiles(first, "*guest*.csv").Single());
        var gt = TranscriptStats.TrueScores(run.Fx, "guest");
        Assert.All(gt, kv => Assert.Equal(FixedPoint.Encode(kv.Value, 3, "guest"), guest[kv.Key]));
    }

    [Fact]
    public void A_missing_host_mixed_runs_or_clear_files_give_an_explicit_refusal_and_no_predictions()
    {
        using var run = Setup(3, 300);
        var dir = Path.Combine(run.Dir, "scores");
        Assert.Equal(0, run.Score("guest", dir, "run-1").Code);
        Assert.Equal(0, run.Score("host1", dir, "run-1").Code);
        var missing = run.Combine(dir);
        Assert.Equal(2, missing.Code);
        Assert.Contains("incomplete_parties", missing.Out);
        Assert.Contains("host2", missing.Out);
        Assert.Equal(0, run.Score("host2", dir, "run-2").Code);
        var mixed = run.Combine(dir);
        Assert.Equal(2, mixed.Code);
        Assert.Contains("different runs", mixed.Out);
        using var w = WarehouseFactory.Open(run.Wh);
        Assert.False(w.TableExists("fed_predictions") && Env.ReadPredictions(w, run.Fx.ModelId, Dt).Count > 0);
        // A masked model refuses the warehouse table and the SQL combine.
        Assert.Equal(2, Env.Cli("predict", "combine", "--model-id", run.Fx.ModelId, "--dt", Dt, "--input", "warehouse", "--warehouse", run.Wh).Code);
        Assert.Equal(2, Env.Cli("predict", "combine", "--model-id", run.Fx.ModelId, "--dt", Dt, "--input", "warehouse", "--warehouse", run.Wh, "--engine", "emit", "--emit-sql", Path.Combine(run.Dir, "c.sql")).Code);
        // And a masker without its keys, or without a run id, is refused before anything is written.
        Assert.Equal(2, Env.Cli("predict", "batch", "--party", "host1", "--model-id", run.Fx.ModelId, "--features", run.Fx.Csv["host1"], "--dt", Dt, "--warehouse", run.Wh, "--out", Path.Combine(run.Dir, "x"), "--run-id", "r9").Code);
        Assert.Equal(2, Env.Cli("predict", "batch", "--party", "guest", "--model-id", run.Fx.ModelId, "--features", run.Fx.Csv["guest"], "--dt", Dt, "--warehouse", run.Wh, "--out", Path.Combine(run.Dir, "x")).Code);
        Assert.False(Directory.Exists(Path.Combine(run.Dir, "x")) && Directory.EnumerateFiles(Path.Combine(run.Dir, "x")).Any());
    }

    static Dictionary<string, long> ReadMasked(string csv) => File.ReadLines(csv).Skip(1).Select(l => l.Split(','))
        .ToDictionary(f => f[0], f => long.Parse(f[1], CultureInfo.InvariantCulture));

}
