using System.Diagnostics;
using Fed.Core;
using Fed.Core.Model;
using Fed.Training.Data;
using Fed.Training.Protocol;
using Fed.Training.Train;

namespace Fed.Training.Transfer;

/// <summary>
/// `fed train local --protocol transfer`: the two data parties and the arbiter on this machine, each with its own
/// HTTP/2 + TLS endpoint (the same transport as vertical training). The first party is the guest (intercept holder).
/// Writes per party `NAME.model.json` (its part on customers it holds) and `NAME.completion.model.json` (its part on
/// customers only the other party holds, over the common features), then `report.json`.
/// </summary>
public static class TransferLocal
{
    public static string CompletionPath(string dir, string party) => Path.Combine(dir, $"{party}.completion.model.json");

    public static async Task<LocalTrainingResult> RunAsync(IReadOnlyList<LocalParty> parties, string idColumn, string labelColumn,
        TrainOptions options, string outDir, Action<string>? log = null, MessageTap? tap = null, CancellationToken ct = default)
    {
        options.Validate();
        if (parties.Count != 2) throw new BadInputException("--protocol transfer needs exactly two parties (--party A=CSV --party B=CSV)");
        foreach (var p in parties)
        {
            Identifiers.PartyId(p.Name);
            if (p.Name == LocalTraining.ArbiterName) throw new BadInputException($"party name '{LocalTraining.ArbiterName}' is reserved for the key holder");
        }
        if (parties[0].Name == parties[1].Name) throw new BadInputException($"party '{parties[0].Name}' given twice");
        var clock = Stopwatch.StartNew();
        var tables = parties.Select(p => PartyTable.Load(p.Path, idColumn, labelColumn)).ToArray();
        // Local run: the agreed common features are the shared column names (the plan carries them, the host checks them).
        var common = TransferSide.CommonFeatures(tables[0], tables[1]);
        var names = new[] { parties[0].Name, parties[1].Name, LocalTraining.ArbiterName };
        return await LocalTraining.OnLoopbackAsync(names, tap, null, async nets =>
        {
            var tasks = new List<Task<PartyOutcome>>
            {
                LocalTraining.Guarded(nets[0], () => new TransferPartyRole(nets[0], tables[0], null, names[1], names[2], options, common, options.InsecureTestKeyBits, log).RunAsync(ct)),
                LocalTraining.Guarded(nets[1], () => new TransferPartyRole(nets[1], tables[1], names[0], names[0], names[2], options, null, options.InsecureTestKeyBits, log).RunAsync(ct)),
                LocalTraining.Guarded(nets[2], () => new TransferArbiterRole(nets[2], names[0], names[1], options.InsecureTestKeyBits, log).RunAsync(ct)),
            };
            try { await Task.WhenAll(tasks); }
            catch { LocalTraining.ThrowRootCause(tasks); }
            var outcomes = tasks.Select(t => t.Result).ToList();
            var paths = new Dictionary<string, string>();
            foreach (var o in outcomes.Take(2))
            {
                paths[o.Party] = Path.GetFullPath(Path.Combine(outDir, $"{o.Party}.model.json"));
                paths[o.Party + ".completion"] = Path.GetFullPath(CompletionPath(outDir, o.Party));
            }
            foreach (var o in outcomes.Take(2))
            {
                ModelFile.Write(o.Model!, paths[o.Party]);
                ModelFile.Write(o.Completion!, paths[o.Party + ".completion"]);
            }
            var guest = outcomes[0];
            var summary = new Dictionary<string, object?>
            {
                ["ok"] = true, ["protocol"] = "transfer",
                ["kind"] = PartialModel.KindName(options.Kind), ["model_id"] = options.ModelId, ["version"] = options.Version,
                ["guest"] = names[0], ["hosts"] = new[] { names[1] }, ["common_features"] = common, ["key_bits"] = options.KeyBits,
                ["train_rows"] = outcomes.Take(2).ToDictionary(o => o.Party, o => o.TrainRows),
                ["epochs"] = guest.Losses.Count, ["stop_reason"] = guest.StopReason,
                ["final_loss"] = guest.Losses.Count > 0 ? guest.Losses[^1] : null, ["loss_per_epoch"] = guest.Losses,
                ["seconds"] = new Dictionary<string, object>
                {
                    ["total"] = clock.Elapsed.TotalSeconds,
                    ["per_epoch"] = guest.Losses.Count == 0 ? 0 : clock.Elapsed.TotalSeconds / guest.Losses.Count,
                },
                ["models"] = paths,
                ["transport"] = "HTTP/2 over TLS (loopback, pinned client and server certificates)",
            };
            TrainingReport.Write(outDir, summary, guest.Losses, $"{options.ModelId}: transfer {PartialModel.KindName(options.Kind)} loss per epoch");
            return new LocalTrainingResult { Outcomes = outcomes, ModelPaths = paths, ReportPath = Path.Combine(outDir, "report.json"), Summary = summary };
        });
    }
}

/// <summary>The plaintext reference of the transfer protocol: the same sides, objective and updates in doubles, in one
/// process. The federated weights and losses must agree with it.</summary>
public static class TransferPlain
{
    public sealed record Result(double[][] W, double Intercept, List<double> Losses, string Stop);

    public static Result Train(TrainOptions o, TransferSide a, TransferSide b)
    {
        var sides = new[] { a, b };
        var w = sides.Select(s => new double[s.Features]).ToArray();
        var bias = 0.0;
        var n = a.Rows + b.Rows;
        var c = a.Common.Length;
        var maps = new[] { a.GradientMap(true), b.GradientMap(false) };
        var losses = new List<double>();
        while (true)
        {
            var beta = new[] { a.RawCompletion(w[0], bias), b.RawCompletion(w[1], 0) };
            var grads = new[] { new double[a.Features + 1], new double[b.Features] };
            var gsum = new[] { new double[c + 1], new double[c + 1] };
            var loss = 0.0;
            for (var s = 0; s < 2; s++)
            {
                var side = sides[s];
                for (var i = 0; i < side.Rows; i++)
                {
                    var own = s == 0 ? bias : 0;
                    for (var f = 0; f < side.Features; f++) own += w[s][f] * side.X[i][f];
                    var e = beta[1 - s][c];
                    for (var k = 0; k < c; k++) e += beta[1 - s][k] * side.CRaw[i][k];
                    var z = own + e;
                    var d = TaylorObjective.Residual(o.Kind, z, side.Y[i]);
                    loss += TaylorObjective.Loss(o.Kind, z, side.Y[i]);
                    for (var f = 0; f < side.Features; f++) grads[s][f] += d * side.X[i][f];
                    if (s == 0) grads[0][^1] += d;
                    for (var k = 0; k < c; k++) gsum[s][k] += d * side.CRaw[i][k];
                    gsum[s][c] += d;
                }
            }
            for (var s = 0; s < 2; s++)
                for (var f = 0; f < grads[s].Length; f++)
                    for (var k = 0; k <= c; k++) grads[s][f] += maps[s][f][k] * gsum[1 - s][k];
            loss = loss / n + o.L2 / 2 * w.Sum(v => v.Sum(x => x * x));
            for (var s = 0; s < 2; s++)
                for (var f = 0; f < w[s].Length; f++) w[s][f] -= o.LearningRate * (grads[s][f] / n + o.L2 * w[s][f]);
            bias -= o.LearningRate * grads[0][^1] / n;
            losses.Add(loss);
            var stop = Convergence.Decide(o, losses);
            if (stop != null) return new Result(w, bias, losses, stop);
        }
    }
}
