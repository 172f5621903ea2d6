using System.Diagnostics;
using System.Security.Cryptography;
using Fed.Core;
using Fed.Core.Model;
using Fed.Training.Protocol;

namespace Fed.Training.Horizontal;

/// <summary>Test hooks: what a party computed in the clear (never sent), so a transcript test can look for it on the wire.</summary>
public sealed class HorizontalProbe
{
    /// <summary>(client, step, the plain vector it is about to mask).</summary>
    public Action<string, string, UInt128[]>? ClientVector { get; set; }
    /// <summary>Client-level DP: (client, step, its clipped update before its noise share is added).</summary>
    public Action<string, string, double[]>? ClientUpdate { get; set; }
    /// <summary>(aggregator, step, the unmasked sum of its group).</summary>
    public Action<string, string, UInt128[]>? GroupSum { get; set; }
    /// <summary>(client, round) before the client computes its update; a test may "kill" the client here.</summary>
    public Func<string, int, Task>? BeforeUpdate { get; set; }
    /// <summary>(party, its endpoint) once the local runner started it; a test can take an endpoint down.</summary>
    public Action<string, IMessenger>? Started { get; set; }
}

/// <summary>What a client ends with.</summary>
public sealed class ClientOutcome
{
    public required string Client { get; init; }
    public PartialModel? Model { get; set; }
    public int TrainRows { get; set; }
    public int Rounds { get; set; }
    /// <summary>DP only: the noise multiplier, sampling rate and the epsilon spent after each round.</summary>
    public double? Sigma { get; set; }
    public double? SamplingRate { get; set; }
    public List<double> EpsilonPerRound { get; } = [];
    public double? Delta { get; set; }
}

public sealed class AggregatorOutcome
{
    public required string Aggregator { get; init; }
    public List<string> Clients { get; init; } = [];
    /// <summary>(client, step) of each dropout handled.</summary>
    public List<(string Client, string Step)> Dropped { get; } = [];
}

public sealed class CoordinatorOutcome
{
    public required PartialModel Model { get; init; }
    public required List<double> Losses { get; init; }
    public required int Rounds { get; init; }
    public required string StopReason { get; init; }
    public required List<double> SecondsPerRound { get; init; }
    public required List<int> ClientsPerRound { get; init; }
    public required int TrainRows { get; init; }
    public double SetupSeconds { get; init; }
    /// <summary>Client-level DP: the noise multiplier and the epsilon every client has spent after each round.</summary>
    public double? Sigma { get; init; }
    public List<double> EpsilonPerRound { get; init; } = [];
}

static class Wire
{
    public const string DefaultCoordinator = "coordinator";

    public static Message Sum(string step, int attempt, UInt128[] v, int clients) =>
        new Message().Put("mask.sum", Ring.Pack(v)).Control(new SumHeader(step, attempt, v.Length, clients));

    public static (UInt128[] V, SumHeader H) ReadSum(Message m, string step, int attempt, string context)
    {
        var h = m.Control<SumHeader>(context);
        if (h.Step != step || h.Attempt != attempt) throw new FedFailureException($"protocol error: {context}: got step {h.Step}/{h.Attempt}, expected {step}/{attempt}");
        return (Ring.Unpack(m.Get("mask.sum", context), h.Length, context), h);
    }

    public static Message Keys(IReadOnlyList<(string Name, byte[] Pk)> keys) =>
        new Message().Put("pk.group", keys.SelectMany(k => k.Pk).ToArray()).Control(keys.Select(k => k.Name).ToArray());

    public static Dictionary<string, byte[]> ReadKeys(Message m, string context)
    {
        var names = m.Control<string[]>(context);
        var bytes = m.Get("pk.group", context);
        if (bytes.Length != names.Length * 32) throw new FedFailureException($"protocol error: {context}: {bytes.Length} key bytes for {names.Length} members");
        return names.Select((n, i) => (n, bytes[(i * 32)..((i + 1) * 32)])).ToDictionary(t => t.n, t => t.Item2, StringComparer.Ordinal);
    }

    /// <summary>A peer that vanished (no health answer), timed out or cannot be reached has dropped out; an abort or a
    /// protocol error is not a dropout and stops everyone.</summary>
    public static bool IsDropout(FedFailureException e) =>
        e.Message.Contains(" vanished: ") || e.Message.Contains(" sent no '") || e.Message.Contains(" is unreachable at ");
}

/// <summary>
/// A client (a bank branch, a hospital): holds its rows, trains locally from the global parameters and sends each
/// vector only masked (pairwise masks with the other clients of its aggregation group). With DP it runs DP-SGD
/// and keeps its own privacy account.
/// </summary>
public sealed class ClientRole(IMessenger net, Data.PartyTable table, string aggregator, Action<string>? log = null, HorizontalProbe? probe = null)
{
    readonly Action<string> log = log ?? (_ => { });

    public async Task<ClientOutcome> RunAsync(CancellationToken ct)
    {
        var me = net.Self;
        var outcome = new ClientOutcome { Client = me };
        await net.SendAsync(aggregator, "hello", new Message().Control(new Hello(table.Features, 1)), ct);
        var plan = (await net.ReceiveAsync(aggregator, "plan", ct)).Control<HorizontalPlan>("plan");
        var o = plan.ToOptions();
        var data = ClientData.Load(table, o.TestBuckets, plan.Features);
        data.Targets(o); // refuse bad labels before any training
        outcome.TrainRows = data.Rows;

        var masker = new PairwiseMasker(me);
        await net.SendAsync(aggregator, "keys", new Message().Put("pk.x25519", masker.PublicKey), ct);
        masker.Agree(Wire.ReadKeys(await net.ReceiveAsync(aggregator, "keys", ct), "group keys"), plan.Session);
        log($"{me}: {data.Rows} training rows, {masker.Peers.Count} peers in its group");

        DpPlan? dp = null;
        LocalLearner? learner = null;
        // A retried step re-sends the same vector (nothing is retrained); only client-level DP's noise share is drawn
        // afresh per attempt, sized to the attempt's live set.
        var cache = new Dictionary<string, double[]>(StringComparer.Ordinal);
        for (var k = 0; ; k++)
        {
            var cmd = (await net.ReceiveAsync(aggregator, $"down.{k}", ct)).Control<Command>("command");
            if (cmd.Type == "stop")
            {
                outcome.Model = HorizontalModel.Build(o, plan.Features, cmd.Mean!, cmd.Std!, cmd.Theta!, new Dictionary<string, string> { ["stop_reason"] = cmd.Reason ?? "" });
                log($"{me}: training finished ({cmd.Reason})");
                return outcome;
            }
            var live = cmd.Live ?? throw new FedFailureException("protocol error: a step without its live set");
            if (!live.Contains(me) || live.Length < o.MinClientsPerGroup)
                throw new FedFailureException($"refusing step {cmd.Step}: the live set has {live.Length} clients (at least {o.MinClientsPerGroup}, this one included, are needed to hide each update)");
            if (!cache.TryGetValue(cmd.Step, out var v))
            {
                switch (cmd.Type)
                {
                    case "mean": v = data.MeanSums(o); break;
                    case "var": v = data.SquareSums(o, cmd.Mean!); break;
                    case "round":
                        if (probe?.BeforeUpdate is { } hook) await hook(me, cmd.Round);
                        learner ??= data.Learner(o, cmd.Mean!, cmd.Std!);
                        var theta = cmd.Theta!;
                        if (theta.Length != learner.Parameters) throw new FedFailureException($"protocol error: {theta.Length} parameters, expected {learner.Parameters}");
                        v = Update(o, data, learner, theta, cmd, ref dp, outcome);
                        outcome.Rounds = cmd.Round;
                        if (o.ClientDp) probe?.ClientUpdate?.Invoke(me, cmd.Step, v[..learner.Parameters]);
                        break;
                    default: throw new FedFailureException($"protocol error: unknown step type '{cmd.Type}'");
                }
                cache.Clear();
                cache[cmd.Step] = v;
            }
            if (cmd.Type == "round" && o.ClientDp) v = ClientDp.WithNoiseShare(v, learner!.Parameters, dp!.Sigma, o.DpClip, live.Length);
            var plain = Ring.Encode(v);
            probe?.ClientVector?.Invoke(me, cmd.Step, plain);
            var masked = masker.Mask(plain, cmd.Step, cmd.Attempt, live);
            await net.SendAsync(aggregator, $"up.{cmd.Step}.{cmd.Attempt}", Wire.Sum(cmd.Step, cmd.Attempt, masked, 1), ct);
        }
    }

    /// <summary>This client's vector for a FedAvg round. No DP: [n theta_local, n, n loss(theta)]. Record level: the same
    /// from DP-SGD with the loss left out (it is not noised). Client level: [clip(theta_local - theta), 1, 0], every
    /// client weighing the same (its noise share is added per attempt).</summary>
    double[] Update(HorizontalOptions o, ClientData data, LocalLearner learner, double[] theta, Command cmd, ref DpPlan? dp, ClientOutcome outcome)
    {
        var me = net.Self;
        if (o.RecordDp)
        {
            dp ??= DpPlan.ForRecords(data.Rows, o);
            var steps = (long)o.LocalEpochs * DpPlan.StepsPerEpoch(dp.Q);
            if (!dp.CanSpend(steps))
                throw new FedFailureException($"{me}: privacy budget spent (epsilon {dp.Spent:G4} of {dp.TargetEpsilon}); refusing round {cmd.Round}");
            var (local, taken) = learner.TrainDp(theta, o.LocalEpochs, dp.Q, dp.Sigma, o.DpClip, o.LearningRate, o.L2, new Random(RandomNumberGenerator.GetInt32(int.MaxValue)));
            dp.Record(taken);
            Account(dp, outcome);
            return [.. local.Select(t => t * data.Rows), data.Rows, 0];
        }
        var trained = learner.Train(theta, o.LocalEpochs, o.BatchSize, o.LearningRate, o.L2, o.Seed ^ (int)Data.Crc32.Compute(me), cmd.Round);
        if (o.ClientDp)
        {
            dp ??= DpPlan.ForClients(o);
            if (!dp.CanSpend(1))
                throw new FedFailureException($"{me}: privacy budget spent (epsilon {dp.Spent:G4} of {dp.TargetEpsilon}); refusing round {cmd.Round}");
            dp.Record(1);
            Account(dp, outcome);
            return [.. ClientDp.Clip(trained.Select((t, i) => t - theta[i]).ToArray(), o.DpClip), 1, 0];
        }
        var loss = learner.Loss(theta, o.L2); // data-dependent and not noised: sent only without DP
        return [.. trained.Select(t => t * data.Rows), data.Rows, loss * data.Rows];
    }

    static void Account(DpPlan dp, ClientOutcome outcome)
    {
        outcome.Sigma = dp.Sigma; outcome.SamplingRate = dp.Q; outcome.Delta = dp.Delta;
        outcome.EpsilonPerRound.Add(dp.Spent);
    }
}

/// <summary>
/// An aggregation server: relays the plan and its group's X25519 public keys, and for each step adds up its clients'
/// masked vectors (the masks cancel: it learns only the group's sum). A client that drops out mid-step is removed
/// and the step is re-run by the survivors with fresh masks over the smaller set (never fewer than the minimum).
/// Its group sum goes up masked in the same way, with pairwise masks between the aggregation servers.
/// </summary>
public sealed class AggregatorRole(IMessenger net, IReadOnlyList<string> clients, string coordinator, Action<string>? log = null, HorizontalProbe? probe = null)
{
    readonly Action<string> log = log ?? (_ => { });
    readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> downSeq = new(StringComparer.Ordinal);

    public async Task<AggregatorOutcome> RunAsync(CancellationToken ct)
    {
        var me = net.Self;
        var outcome = new AggregatorOutcome { Aggregator = me, Clients = clients.ToList() };
        if (clients.Count < 2) throw new BadInputException($"aggregation server '{me}' has {clients.Count} client(s): at least 2 are needed, or its sum is one client's update");
        var hellos = await Task.WhenAll(clients.Select(c => net.ReceiveAsync(c, "hello", ct)));
        var features = hellos[0].Control<Hello>("hello").Features;
        for (var i = 1; i < clients.Count; i++)
        {
            var f = hellos[i].Control<Hello>("hello").Features;
            if (!f.Order().SequenceEqual(features.Order()))
                throw new BadInputException($"clients '{clients[0]}' and '{clients[i]}' hold different feature columns; every client needs the same features");
        }
        await net.SendAsync(coordinator, "hello", new Message().Control(new Hello(features, clients.Count)), ct);
        var planMsg = await net.ReceiveAsync(coordinator, "plan", ct);
        var plan = planMsg.Control<HorizontalPlan>("plan");
        var o = plan.ToOptions();
        if (clients.Count < o.MinClientsPerGroup) throw new BadInputException($"aggregation server '{me}' has {clients.Count} clients, fewer than the minimum {o.MinClientsPerGroup}");
        await Task.WhenAll(clients.Select(c => net.SendAsync(c, "plan", planMsg, ct)));

        // Key relay: the group's public keys to every member; this server's own key for the upper level.
        var keyMsgs = await Task.WhenAll(clients.Select(c => net.ReceiveAsync(c, "keys", ct)));
        var groupKeys = clients.Select((c, i) => (c, keyMsgs[i].Get("pk.x25519", "client key"))).ToList();
        var keysMsg = Wire.Keys(groupKeys);
        await Task.WhenAll(clients.Select(c => net.SendAsync(c, "keys", keysMsg, ct)));
        var upper = new PairwiseMasker(me);
        await net.SendAsync(coordinator, "keys", new Message().Put("pk.x25519", upper.PublicKey), ct);
        upper.Agree(Wire.ReadKeys(await net.ReceiveAsync(coordinator, "keys", ct), "aggregator keys"), plan.Session);

        var live = clients.ToList();
        for (var k = 0; ; k++)
        {
            var cmd = (await net.ReceiveAsync(coordinator, $"down.{k}", ct)).Control<Command>("command");
            if (cmd.Type == "stop")
            {
                await Task.WhenAll(live.Select(c => SendDown(c, cmd, null, ct)));
                log($"{me}: finished; {outcome.Dropped.Count} dropout(s) handled");
                return outcome;
            }
            UInt128[]? sum = null;
            for (var attempt = 0; sum is null; attempt++)
            {
                if (live.Count < o.MinClientsPerGroup)
                    throw new FedFailureException($"aggregation server '{me}': only {live.Count} client(s) left in its group, fewer than {o.MinClientsPerGroup}; stopping rather than revealing a single update");
                var attemptLive = live.ToArray();
                var down = cmd with { Attempt = attempt, Live = attemptLive };
                var sent = await Task.WhenAll(attemptLive.Select(async c => (c, ok: await SendDown(c, down, outcome, ct))));
                var results = await Task.WhenAll(sent.Where(s => s.ok).Select(async s =>
                {
                    try { return (s.c, msg: await net.ReceiveAsync(s.c, $"up.{cmd.Step}.{attempt}", ct)); }
                    catch (FedFailureException e) when (Wire.IsDropout(e)) { log($"{me}: client '{s.c}' dropped out during {cmd.Step}: {e.Message}"); return (s.c, msg: (Message?)null); }
                }));
                var gone = attemptLive.Except(results.Where(r => r.msg != null).Select(r => r.c)).ToList();
                if (gone.Count > 0)
                {
                    foreach (var g in gone) { live.Remove(g); outcome.Dropped.Add((g, cmd.Step)); }
                    log($"{me}: re-running {cmd.Step} without {string.Join(", ", gone)} ({live.Count} clients left)");
                    continue;
                }
                UInt128[]? acc = null;
                foreach (var (c, msg) in results)
                {
                    var (v, _) = Wire.ReadSum(msg!, cmd.Step, attempt, $"'{c}' {cmd.Step}");
                    if (acc is null) acc = v; else Ring.AddInto(acc, v);
                }
                sum = acc;
            }
            probe?.GroupSum?.Invoke(me, cmd.Step, sum);
            var masked = upper.Mask(sum, cmd.Step, 0, plan.Aggregators);
            await net.SendAsync(coordinator, $"up.{cmd.Step}", Wire.Sum(cmd.Step, 0, masked, live.Count), ct);
        }
    }

    /// <summary>Sends the next downlink message to a client; false when it is unreachable (a dropout) and outcome is given.</summary>
    async Task<bool> SendDown(string client, Command cmd, AggregatorOutcome? outcome, CancellationToken ct)
    {
        var seq = downSeq.GetValueOrDefault(client);
        try
        {
            await net.SendAsync(client, $"down.{seq}", new Message().Control(cmd), ct);
            downSeq[client] = seq + 1;
            return true;
        }
        catch (FedFailureException e) when (Wire.IsDropout(e) && outcome != null)
        {
            log($"{net.Self}: client '{client}' unreachable: {e.Message}");
            return false;
        }
        catch (FedFailureException e) when (Wire.IsDropout(e)) { return false; }
    }
}

/// <summary>
/// The application-layer coordinator: fixes the plan, runs the standardization sums and the FedAvg rounds, combines
/// the aggregation servers' (masked) sums into the global model and decides when to stop. It sees only
/// federation-wide sums.
/// </summary>
public sealed class CoordinatorRole(IMessenger net, IReadOnlyList<string> aggregators, HorizontalOptions options, Action<string>? log = null)
{
    readonly Action<string> log = log ?? (_ => { });
    int seq;

    public async Task<CoordinatorOutcome> RunAsync(CancellationToken ct)
    {
        options.Validate();
        if (aggregators.Count < 1) throw new BadInputException("need at least one aggregation server");
        var clock = Stopwatch.StartNew();
        var hellos = (await Task.WhenAll(aggregators.Select(a => net.ReceiveAsync(a, "hello", ct)))).Select(m => m.Control<Hello>("hello")).ToList();
        var features = hellos[0].Features;
        for (var i = 1; i < hellos.Count; i++)
            if (!hellos[i].Features.Order().SequenceEqual(features.Order()))
                throw new BadInputException($"the clients of '{aggregators[0]}' and '{aggregators[i]}' hold different feature columns");
        var plan = HorizontalPlan.From(options, features, aggregators.ToArray(), net.Self, RandomNumberGenerator.GetBytes(16));
        var planMsg = new Message().Control(plan);
        await Task.WhenAll(aggregators.Select(a => net.SendAsync(a, "plan", planMsg, ct)));
        var keys = await Task.WhenAll(aggregators.Select(a => net.ReceiveAsync(a, "keys", ct)));
        var keysMsg = Wire.Keys(aggregators.Select((a, i) => (a, keys[i].Get("pk.x25519", "aggregator key"))).ToList());
        await Task.WhenAll(aggregators.Select(a => net.SendAsync(a, "keys", keysMsg, ct)));
        log($"{net.Self}: {hellos.Sum(h => h.Clients)} clients under {aggregators.Count} aggregation server(s), {features.Length} features");

        var (meanSums, _) = await SumAsync(new Command("mean", "mean"), ct);
        var mean = HorizontalModel.Means(meanSums);
        var (squareSums, _) = await SumAsync(new Command("var", "var", Mean: mean), ct);
        var std = HorizontalModel.Stds(meanSums, squareSums, mean);
        var trainRows = (int)Math.Round(meanSums.Take(features.Length).Max());
        var setup = clock.Elapsed.TotalSeconds;

        var P = options.Outputs * (features.Length + 1);
        var theta = new double[P];
        // Client level: the coordinator keeps the same account as every client (one Gaussian release per round).
        var account = options.ClientDp ? DpPlan.ForClients(options) : null;
        var epsilons = new List<double>();
        var losses = new List<double>();
        var seconds = new List<double>();
        var clients = new List<int>();
        var stop = "max-rounds";
        for (var r = 1; r <= options.Rounds; r++)
        {
            if (account is not null && !account.CanSpend(1)) { stop = "privacy-budget"; break; }
            var t0 = clock.Elapsed.TotalSeconds;
            var (v, n) = await SumAsync(new Command("round", $"round-{r}", r, Mean: mean, Std: std, Theta: theta), ct);
            var total = v[P];
            if (!(total >= 1)) throw new FedFailureException($"round {r}: the aggregated row count is {total}");
            if (account is not null)
            {
                // total = the number of clients: the mean of their clipped, noised updates moves the model
                var last = theta;
                theta = v.Take(P).Select((d, k) => last[k] + d / total).ToArray();
                account.Record(1);
                epsilons.Add(account.Spent);
            }
            else theta = v.Take(P).Select(t => t / total).ToArray();
            seconds.Add(clock.Elapsed.TotalSeconds - t0);
            clients.Add(n);
            if (!options.Dp)
            {
                losses.Add(v[P + 1] / total);
                log($"{net.Self}: round {r}: loss {losses[^1]:G8} at the round's start, {n} clients, {seconds[^1] * 1000:F0} ms");
                if (losses.Count >= 2 && Math.Abs(losses[^2] - losses[^1]) < options.Tolerance) { stop = "converged"; break; }
            }
            else log($"{net.Self}: round {r}: {n} clients, {seconds[^1] * 1000:F0} ms{(account is null ? "" : $", epsilon {epsilons[^1]:G4} per client so far")}");
        }
        await Down(new Command("stop", "stop", Mean: mean, Std: std, Theta: theta, Reason: stop), ct);
        var model = HorizontalModel.Build(options, features, mean, std, theta, new Dictionary<string, string>
        {
            ["rounds"] = seconds.Count.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["stop_reason"] = stop,
            ["train_rows"] = trainRows.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        return new CoordinatorOutcome
        {
            Model = model, Losses = losses, Rounds = seconds.Count, StopReason = stop, SecondsPerRound = seconds,
            ClientsPerRound = clients, TrainRows = trainRows, SetupSeconds = setup, Sigma = account?.Sigma, EpsilonPerRound = epsilons,
        };
    }

    async Task Down(Command cmd, CancellationToken ct)
    {
        var msg = new Message().Control(cmd);
        var k = seq++;
        await Task.WhenAll(aggregators.Select(a => net.SendAsync(a, $"down.{k}", msg, ct)));
    }

    /// <summary>One secure sum over every live client: the aggregation servers' masked group sums add up to the total.</summary>
    async Task<(double[] Sum, int Clients)> SumAsync(Command cmd, CancellationToken ct)
    {
        await Down(cmd, ct);
        var msgs = await Task.WhenAll(aggregators.Select(a => net.ReceiveAsync(a, $"up.{cmd.Step}", ct)));
        UInt128[]? acc = null;
        var clients = 0;
        for (var i = 0; i < msgs.Length; i++)
        {
            var (v, h) = Wire.ReadSum(msgs[i], cmd.Step, 0, $"'{aggregators[i]}' {cmd.Step}");
            clients += h.Clients;
            if (acc is null) acc = v; else Ring.AddInto(acc, v);
        }
        return (Ring.Decode(acc!), clients);
    }
}
