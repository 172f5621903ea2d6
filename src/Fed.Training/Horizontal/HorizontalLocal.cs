using System.Diagnostics;
using Fed.Core;
using Fed.Core.Model;
using Fed.Training.Data;
using Fed.Training.Protocol;
using Fed.Training.Train;
using Fed.Training.Transport;

namespace Fed.Training.Horizontal;

public sealed record HorizontalClient(string Name, string Path);

public sealed class HorizontalResult
{
    public required CoordinatorOutcome Coordinator { get; init; }
    public required IReadOnlyList<ClientOutcome> Clients { get; init; }
    public required IReadOnlyList<AggregatorOutcome> Aggregators { get; init; }
    public required string ModelPath { get; init; }
    public required string ReportPath { get; init; }
    public required Dictionary<string, object?> Summary { get; init; }
}

/// <summary>
/// `fed train horizontal-local`: a whole horizontal topology on this machine: one coordinator, N aggregation servers
/// and the clients (spread over the servers in the order given, in contiguous groups as even as possible), each with
/// its own HTTP/2 + TLS endpoint and certificate, speaking exactly what separate processes speak. A failure anywhere
/// (other than a client dropping out) stops every role and writes no model.
/// </summary>
public static class HorizontalLocal
{
    public static string AggregatorName(int i) => $"agg{i + 1}";

    /// <summary>Which clients each aggregation server serves: contiguous groups in the order given.</summary>
    public static List<List<string>> Groups(IReadOnlyList<string> clients, int aggregators)
    {
        if (aggregators < 1) throw new BadInputException($"--aggregators must be >= 1, got {aggregators}");
        if (clients.Count < 2 * aggregators)
            throw new BadInputException($"{clients.Count} clients cannot fill {aggregators} aggregation server(s) with at least 2 clients each");
        var groups = new List<List<string>>();
        var at = 0;
        for (var a = 0; a < aggregators; a++)
        {
            var size = clients.Count / aggregators + (a < clients.Count % aggregators ? 1 : 0);
            groups.Add(clients.Skip(at).Take(size).ToList());
            at += size;
        }
        return groups;
    }

    public static void CheckNames(IEnumerable<string> clients)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var c in clients)
        {
            Identifiers.PartyId(c);
            if (c == Wire.DefaultCoordinator || c.StartsWith("agg", StringComparison.Ordinal) && int.TryParse(c[3..], out _))
                throw new BadInputException($"client name '{c}' is reserved for a coordinator or aggregation server");
            if (!seen.Add(c)) throw new BadInputException($"client '{c}' given twice");
        }
    }

    /// <summary>Softmax classes: the union of the clients' labels (this machine holds every file), sorted numerically.</summary>
    public static string[] Classes(IEnumerable<PartyTable> tables) =>
        tables.SelectMany(t => t.Labels!).Distinct().Order().Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture)).ToArray();

    public static Task<HorizontalResult> RunAsync(IReadOnlyList<HorizontalClient> clients, int aggregators, HorizontalOptions options,
        string outDir, string idColumn = "id", string labelColumn = "y", Action<string>? log = null, MessageTap? tap = null,
        TransportTimeouts? timeouts = null, HorizontalProbe? probe = null, CancellationToken ct = default)
    {
        CheckNames(clients.Select(c => c.Name));
        var tables = clients.Select(c => PartyTable.Load(c.Path, idColumn, labelColumn)).ToList();
        if (options.Kind == ModelKind.Softmax && options.Classes.Length == 0) options = options with { Classes = Classes(tables) };
        return RunAsync(clients.Select(c => c.Name).ToList(), tables, aggregators, options, outDir, log, tap, timeouts, probe, ct);
    }

    public static async Task<HorizontalResult> RunAsync(IReadOnlyList<string> names, IReadOnlyList<PartyTable> tables, int aggregators,
        HorizontalOptions options, string outDir, Action<string>? log = null, MessageTap? tap = null,
        TransportTimeouts? timeouts = null, HorizontalProbe? probe = null, CancellationToken ct = default)
    {
        options.Validate();
        CheckNames(names);
        var groups = Groups(names, aggregators);
        var clock = Stopwatch.StartNew();
        var aggNames = Enumerable.Range(0, aggregators).Select(AggregatorName).ToList();
        var all = new List<string> { Wire.DefaultCoordinator };
        all.AddRange(aggNames);
        all.AddRange(names);
        var nets = new Dictionary<string, HttpMessenger>();
        try
        {
            // Endpoints start in parallel: a hundred clients each bring up their own Kestrel server.
            var started = await Task.WhenAll(all.Select(n => HttpMessenger.StartAsync(n, PartyCertificates.Create(n), timeouts: timeouts)));
            foreach (var m in started) nets[m.Self] = m;
            // Each party knows only the peers it talks to: a client its aggregation server, a server its clients and
            // the coordinator, the coordinator the servers.
            PeerEndpoint Ep(string n) => new(n, nets[n].Url, nets[n].CertSha256);
            nets[Wire.DefaultCoordinator].Connect(aggNames.Select(Ep));
            for (var a = 0; a < aggregators; a++)
            {
                nets[aggNames[a]].Connect(groups[a].Append(Wire.DefaultCoordinator).Select(Ep));
                foreach (var c in groups[a]) nets[c].Connect([Ep(aggNames[a])]);
            }
            foreach (var m in nets.Values) { m.Tap = tap; probe?.Started?.Invoke(m.Self, m); }
            var coordinator = LocalTraining.Guarded(nets[Wire.DefaultCoordinator], () => new CoordinatorRole(nets[Wire.DefaultCoordinator], aggNames, options, log).RunAsync(ct));
            var aggTasks = aggNames.Select((a, i) => LocalTraining.Guarded(nets[a], () => new AggregatorRole(nets[a], groups[i], Wire.DefaultCoordinator, log, probe).RunAsync(ct))).ToList();
            var clientTasks = names.Select((c, i) =>
            {
                var agg = aggNames[groups.FindIndex(g => g.Contains(c))];
                return LocalTraining.Guarded(nets[c], () => new ClientRole(nets[c], tables[i], agg, log, probe).RunAsync(ct));
            }).ToList();
            var core = new List<Task> { coordinator };
            core.AddRange(aggTasks);
            try { await Task.WhenAll(core); }
            catch { LocalTraining.ThrowRootCause(core); }
            // Clients that dropped out end with an error; every other client finished with the model.
            await Task.WhenAll(clientTasks.Select(t => t.ContinueWith(_ => { }, TaskScheduler.Default)));
            var dropped = aggTasks.SelectMany(t => t.Result.Dropped.Select(d => d.Client)).ToHashSet();
            var failed = clientTasks.Select((t, i) => (t, name: names[i])).Where(x => !x.t.IsCompletedSuccessfully && !dropped.Contains(x.name)).ToList();
            if (failed.Count > 0)
                throw new FedFailureException($"client '{failed[0].name}' failed: {failed[0].t.Exception?.InnerException?.Message}");
            var co = coordinator.Result;
            var clientOutcomes = clientTasks.Where(t => t.IsCompletedSuccessfully).Select(t => t.Result).ToList();
            var aggOutcomes = aggTasks.Select(t => t.Result).ToList();

            var modelPath = Path.GetFullPath(Path.Combine(outDir, $"{HorizontalModel.Party}.model.json"));
            ModelFile.Write(co.Model, modelPath);
            var summary = Summary(options, co, clientOutcomes, aggOutcomes, groups, aggNames, modelPath, clock.Elapsed.TotalSeconds);
            TrainingReport.Write(outDir, summary, co.Losses, $"{options.ModelId}: horizontal {PartialModel.KindName(options.Kind)} loss per round");
            return new HorizontalResult
            {
                Coordinator = co, Clients = clientOutcomes, Aggregators = aggOutcomes, ModelPath = modelPath,
                ReportPath = Path.Combine(outDir, "report.json"), Summary = summary,
            };
        }
        finally
        {
            await Task.WhenAll(nets.Values.Select(m => m.DisposeAsync().AsTask()));
        }
    }

    public static Dictionary<string, object?> Summary(HorizontalOptions o, CoordinatorOutcome co, IReadOnlyList<ClientOutcome> clients,
        IReadOnlyList<AggregatorOutcome> aggs, List<List<string>> groups, List<string> aggNames, string modelPath, double seconds)
    {
        var summary = new Dictionary<string, object?>
        {
            ["ok"] = true,
            ["kind"] = PartialModel.KindName(o.Kind),
            ["model_id"] = o.ModelId, ["version"] = o.Version,
            ["topology"] = aggNames.Select((a, i) => new { aggregator = a, clients = groups[i] }).ToArray(),
            ["train_rows"] = co.TrainRows,
            ["rounds"] = co.Rounds, ["stop_reason"] = co.StopReason,
            ["final_loss"] = co.Losses.Count > 0 ? co.Losses[^1] : null,
            ["loss_per_round"] = co.Losses,
            ["clients_per_round"] = co.ClientsPerRound,
            ["dropouts"] = aggs.SelectMany(a => a.Dropped.Select(d => new { aggregator = a.Aggregator, client = d.Client, step = d.Step })).ToArray(),
            ["secure_aggregation"] = "pairwise X25519 masks at every aggregation server and between servers",
            ["seconds"] = new Dictionary<string, object>
            {
                ["total"] = seconds, ["setup"] = co.SetupSeconds,
                ["per_round_mean"] = co.SecondsPerRound.Count > 0 ? co.SecondsPerRound.Average() : 0,
                ["per_round"] = co.SecondsPerRound,
            },
            ["model"] = modelPath,
            ["transport"] = "HTTP/2 over TLS (loopback, pinned client and server certificates)",
        };
        if (o.Dp)
            summary["dp"] = Dp(o, co, clients);
        return summary;
    }

    /// <summary>The report's DP section: the level, the accountant and every client's epsilon per round and in total.</summary>
    public static Dictionary<string, object?> Dp(HorizontalOptions o, CoordinatorOutcome co, IReadOnlyList<ClientOutcome> clients)
    {
        var dp = new Dictionary<string, object?>
        {
            ["level"] = HorizontalOptions.LevelName(o.DpLevel),
            ["mechanism"] = o.ClientDp
                ? "DP-FedAvg (McMahan et al. 2018): each client's update clipped to norm `clip`, equal weights, each of the m live clients of a group adds N(0, (noise_multiplier * clip)^2 / m) before masking"
                : "DP-SGD inside each client (Abadi et al. 2016): per-example clipping to norm `clip`, Gaussian noise on each step",
            ["target_epsilon"] = o.DpEpsilon, ["delta"] = o.DpDelta, ["clip"] = o.DpClip,
            ["accountant"] = "RDP of the sampled Gaussian (Mironov, Talwar, Zhang 2019), Balle et al. 2020 conversion",
            ["clients"] = clients.ToDictionary(c => c.Client, c => (object)new
            {
                sampling_rate = c.SamplingRate, noise_multiplier = c.Sigma, delta = c.Delta,
                epsilon_per_round = c.EpsilonPerRound, epsilon_total = c.EpsilonPerRound.LastOrDefault(),
            }),
        };
        if (o.ClientDp)
        {
            dp["noise_multiplier"] = co.Sigma;
            dp["epsilon_per_round"] = co.EpsilonPerRound;
            dp["epsilon_total"] = co.EpsilonPerRound.LastOrDefault();
        }
        return dp;
    }
}
