using System.Diagnostics;
using Fed.Core;
using Fed.Core.Model;
using Fed.Training.Data;
using Fed.Training.Train;
using Fed.Training.Transport;

namespace Fed.Training.Protocol;

public sealed record LocalParty(string Name, string Path);

public sealed class LocalTrainingResult
{
    public required IReadOnlyList<PartyOutcome> Outcomes { get; init; }
    public required IReadOnlyDictionary<string, string> ModelPaths { get; init; }
    public required string ReportPath { get; init; }
    public required Dictionary<string, object?> Summary { get; init; }
    public PartyOutcome Guest => Outcomes[0];
}

/// <summary>
/// `fed train local`: every role (guest, hosts, arbiter) on this machine, each with its own HTTP/2 + TLS endpoint
/// on loopback and its own certificate, speaking exactly the protocol separate processes speak. A failure anywhere
/// aborts every party and no model file is written.
/// </summary>
public static class LocalTraining
{
    public const string ArbiterName = "arbiter";

    /// <summary>Identifies the guest (the one file with the label column) and checks the party names.</summary>
    public static (LocalParty Guest, List<LocalParty> Hosts) Roles(IReadOnlyList<LocalParty> parties, string labelColumn)
    {
        if (parties.Count < 2) throw new BadInputException("need at least two parties (--party NAME=PATH twice or more)");
        foreach (var p in parties)
        {
            Identifiers.PartyId(p.Name);
            if (p.Name == ArbiterName) throw new BadInputException($"party name '{ArbiterName}' is reserved for the key holder");
        }
        var dup = parties.GroupBy(p => p.Name).FirstOrDefault(g => g.Count() > 1);
        if (dup != null) throw new BadInputException($"party '{dup.Key}' given twice");
        var withLabel = parties.Where(p => PartyTable.HasColumn(p.Path, labelColumn)).ToList();
        if (withLabel.Count == 0)
            throw new BadInputException($"missing label column: no party file has a column '{labelColumn}' (the guest's file must; see --label-column)");
        if (withLabel.Count > 1)
            throw new BadInputException($"label column '{labelColumn}' found in several files ({string.Join(", ", withLabel.Select(p => p.Name))}); exactly one party (the guest) may hold labels");
        return (withLabel[0], parties.Where(p => p != withLabel[0]).ToList());
    }

    public static async Task<LocalTrainingResult> RunAsync(IReadOnlyList<LocalParty> parties, string idColumn, string labelColumn,
        TrainOptions options, string psi, string outDir, Action<string>? log = null, MessageTap? tap = null,
        TransportTimeouts? timeouts = null, CancellationToken ct = default)
    {
        options.Validate();
        if (psi is not ("rsa" or "ecdh")) throw new BadInputException($"--psi must be rsa or ecdh, got '{psi}'");
        var (guestParty, hostParties) = Roles(parties, labelColumn);
        var clock = Stopwatch.StartNew();
        var guestTable = PartyTable.Load(guestParty.Path, idColumn, labelColumn);
        var hostTables = hostParties.Select(h => PartyTable.Load(h.Path, idColumn, null)).ToList();
        var loadSeconds = clock.Elapsed.TotalSeconds;
        var names = new[] { guestParty.Name }.Concat(hostParties.Select(h => h.Name)).Append(ArbiterName).ToArray();

        return await OnLoopbackAsync(names, tap, timeouts, async nets =>
        {
            var hostNames = hostParties.Select(h => h.Name).ToList();
            var tasks = new List<Task<PartyOutcome>>
            {
                Guarded(nets[0], () => new GuestRole(nets[0], guestTable, options, hostNames, ArbiterName, psi, log).RunAsync(ct)),
            };
            for (var h = 0; h < hostParties.Count; h++)
            {
                var net = nets[h + 1]; var table = hostTables[h];
                tasks.Add(Guarded(net, () => new HostRole(net, table, guestParty.Name, ArbiterName, hostNames, options.Kind, options.InsecureTestKeyBits, log).RunAsync(ct)));
            }
            tasks.Add(Guarded(nets[^1], () => new ArbiterRole(nets[^1], guestParty.Name, hostNames, options.InsecureTestKeyBits, log).RunAsync(ct)));
            try { await Task.WhenAll(tasks); }
            catch { ThrowRootCause(tasks); }
            var outcomes = tasks.Select(t => t.Result).ToList();

            // Every party finished: write one partial-model file per data party, then the report.
            var paths = new Dictionary<string, string>();
            foreach (var o in outcomes.Where(o => o.Model != null))
                paths[o.Party] = Path.GetFullPath(Path.Combine(outDir, $"{o.Party}.model.json"));
            foreach (var o in outcomes.Where(o => o.Model != null)) ModelFile.Write(o.Model!, paths[o.Party]);
            var guest = outcomes[0];
            var summary = new Dictionary<string, object?>
            {
                ["ok"] = true,
                ["kind"] = PartialModel.KindName(options.Kind),
                ["model_id"] = options.ModelId, ["version"] = options.Version,
                ["guest"] = guestParty.Name, ["hosts"] = hostParties.Select(h => h.Name).ToArray(),
                ["psi"] = psi, ["key_bits"] = options.KeyBits,
                ["intersection"] = guest.Intersection, ["train_rows"] = guest.TrainRows, ["test_rows"] = guest.TestRows,
                ["filled_with_mean"] = outcomes.Where(o => o.Model != null).ToDictionary(o => o.Party, o => o.FilledWithMean),
                ["epochs"] = guest.Losses.Count, ["stop_reason"] = guest.StopReason,
                ["final_loss"] = guest.Losses.Count > 0 ? guest.Losses[^1] : null,
                ["loss_per_epoch"] = guest.Losses,
                ["holdout"] = guest.Holdout?.ToJson(),
                ["warnings"] = Warnings(guest),
                ["seconds"] = new Dictionary<string, object>
                {
                    ["load"] = loadSeconds, ["total"] = clock.Elapsed.TotalSeconds,
                    ["per_party"] = outcomes.ToDictionary(o => o.Party, o => o.Seconds),
                    ["per_epoch"] = guest.Losses.Count == 0 ? 0 : (guest.Seconds.GetValueOrDefault("total") - guest.Seconds.GetValueOrDefault("psi")) / guest.Losses.Count,
                },
                ["models"] = paths,
                ["transport"] = "HTTP/2 over TLS (loopback, pinned client and server certificates)",
            };
            TrainingReport.Write(outDir, summary, guest.Losses, $"{options.ModelId}: {PartialModel.KindName(options.Kind)} loss per epoch");
            return new LocalTrainingResult { Outcomes = outcomes, ModelPaths = paths, ReportPath = Path.Combine(outDir, "report.json"), Summary = summary };
        });
    }

    /// <summary>Starts one HTTP/2 + TLS endpoint per name on loopback (own certificate each), connects every one to
    /// all others, runs <paramref name="run"/> and disposes the endpoints whatever happens.</summary>
    public static async Task<T> OnLoopbackAsync<T>(IReadOnlyList<string> names, MessageTap? tap, TransportTimeouts? timeouts,
        Func<IReadOnlyList<HttpMessenger>, Task<T>> run)
    {
        var nets = new List<HttpMessenger>();
        try
        {
            foreach (var name in names) nets.Add(await HttpMessenger.StartAsync(name, PartyCertificates.Create(name), timeouts: timeouts));
            var endpoints = nets.Select(m => new PeerEndpoint(m.Self, m.Url, m.CertSha256)).ToList();
            foreach (var m in nets) { m.Connect(endpoints); m.Tap = tap; }
            return await run(nets);
        }
        finally
        {
            foreach (var m in nets) await m.DisposeAsync();
        }
    }

    /// <summary>What a person should look at: a run that stopped at --max-iter has not converged.</summary>
    public static string[] Warnings(PartyOutcome guest) => guest.StopReason == "max-iter"
        ? [$"stop_reason: max-iter: training stopped after {guest.Losses.Count} epochs without converging (raise --max-iter or --tolerance)"]
        : [];

    /// <summary>Runs a role; on failure tells every peer (so they stop instead of waiting) and rethrows.</summary>
    public static async Task<T> Guarded<T>(IMessenger net, Func<Task<T>> run)
    {
        try { return await Task.Run(run); }
        catch (Exception e)
        {
            await net.AbortAsync(e.Message);
            throw;
        }
    }

    /// <summary>After a failed run of several roles: rethrows the root cause, the first error that is not another
    /// party's abort notice (a FedException as it is, anything else as a training failure).</summary>
    public static void ThrowRootCause(IEnumerable<Task> roles)
    {
        var errors = roles.Where(t => t.IsFaulted).Select(t => t.Exception!.InnerException!).ToList();
        var root = errors.FirstOrDefault(e => !e.Message.Contains("stopped:")) ?? errors[0];
        if (root is FedException) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(root);
        throw new FedFailureException($"training failed: {root.Message}", root);
    }
}
