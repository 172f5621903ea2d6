using Fed.Core;
using Fed.Core.Model;
using Fed.Training.Horizontal;

namespace Fed.Cli.Commands;

/// <summary>fed train horizontal-local, and the horizontal roles of fed train party (see docs/horizontal.md).</summary>
public static class HorizontalCommands
{
    public static IReadOnlyList<CliCommand> All =>
    [
        new("train horizontal-local", "Train a horizontal (FedAvg) model: clients, aggregation servers and a coordinator on this machine (real HTTP/2 + TLS between them)",
            [
                new CliOption("kind", "logistic | linear | softmax", Required: true),
                new CliOption("client", "NAME=PATH of a client's CSV (id, label, the same features at every client)", Required: true, Multiple: true),
                new CliOption("aggregators", "aggregation servers; clients are spread over them in the order given, in contiguous groups", Default: "1"),
                new CliOption("out", "directory for global.model.json and the report", Required: true),
                new CliOption("id-column", "id column name in every file", Default: "id"),
                new CliOption("label-column", "label column name in every file", Default: "y"),
                new CliOption("rounds", "FedAvg rounds at most", Default: "100"),
                new CliOption("local-epochs", "local passes per round", Default: "1"),
                new CliOption("batch-size", "rows per local step, 0 = full batch (with DP: expected rows of a Poisson sample)", Default: "0"),
                new CliOption("learning-rate", "gradient-descent step", Default: "0.5"),
                new CliOption("l2", "L2 penalty alpha on the mean loss (1/n_train = scikit-learn C=1)", Default: "0.001"),
                new CliOption("tolerance", "stop when the loss changes less than this between rounds (not with DP)", Default: "1e-7"),
                new CliOption("classes", "softmax class labels, comma-separated (default: the union of the files' labels)"),
                new CliOption("dp-epsilon", "DP: epsilon for the whole training, per record or per client (--dp-level)"),
                new CliOption("dp-level", "record (DP-SGD inside each client: protects a customer; the default) | client (clipped updates, noise on the sum: protects a whole client; needs hundreds of clients)", Default: "record"),
                new CliOption("dp-delta", "DP delta", Default: "1e-5"),
                new CliOption("dp-clip", "clipping norm: of each row's gradient (record) or of each client's update (client)", Default: "1"),
                new CliOption("min-clients-per-group", "fewest clients an aggregation server may sum (>= 2)", Default: "2"),
                new CliOption("seed", "mini-batch order seed", Default: "42"),
                new CliOption("test-buckets", "hold out ids with crc32(id) % 10 < K at every client (0 = train on all)", Default: "3"),
                new CliOption("model-id", "model id written into the file", Default: "fed-model"),
                new CliOption("model-version", "model version written into the file", Default: "1"),
            ],
            (a, o) =>
            {
                var options = Options(a);
                var clients = a.Pairs("client").Select(p => new HorizontalClient(p.Key, p.Value)).ToList();
                var r = HorizontalLocal.RunAsync(clients, a.Int("aggregators", 1), options, a.Get("out"), a.Get("id-column"), a.Get("label-column"), o.Progress)
                    .GetAwaiter().GetResult();
                o.Say($"trained horizontal {PartialModel.KindName(options.Kind)} model '{options.ModelId}' v{options.Version}: {r.Coordinator.Rounds} rounds ({r.Coordinator.StopReason}), {r.Coordinator.TrainRows} training rows over {clients.Count} clients");
                o.Say($"  model:  {r.ModelPath}");
                o.Say($"  report: {r.ReportPath}");
                o.Result(r.Summary);
                return 0;
            }),
    ];

    /// <summary>fed train party --role client|aggregator|coordinator --config FILE (dispatched from TrainCommands).</summary>
    public static int RunParty(string role, CliArgs a, CliOutput o)
    {
        var c = HorizontalPartyConfig.Load(a.Get("config"));
        var result = HorizontalParty.RunAsync(role, c, o.Progress).GetAwaiter().GetResult();
        o.Say($"{c.Name}: {role} finished");
        o.Result(result);
        return 0;
    }

    static HorizontalOptions Options(CliArgs a)
    {
        if (!PartialModel.TryParseKind(a.Get("kind"), out var kind))
            throw new BadInputException($"--kind must be logistic, linear or softmax, got '{a.Get("kind")}'");
        var classes = a.Opt("classes")?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries) ?? [];
        var o = new HorizontalOptions
        {
            Kind = kind, Classes = classes, Rounds = a.Int("rounds", 100), LocalEpochs = a.Int("local-epochs", 1), BatchSize = a.Int("batch-size", 0),
            LearningRate = a.Double("learning-rate", 0.5), L2 = a.Double("l2", 0.001), Tolerance = a.Double("tolerance", 1e-7),
            DpEpsilon = a.Opt("dp-epsilon") is null ? null : a.Double("dp-epsilon", 0), DpDelta = a.Double("dp-delta", 1e-5), DpClip = a.Double("dp-clip", 1),
            MinClientsPerGroup = a.Int("min-clients-per-group", 2), Seed = a.Int("seed", 42), TestBuckets = a.Int("test-buckets", 3),
            ModelId = a.Get("model-id"), Version = a.Int("model-version", 1), DpLevel = HorizontalOptions.ParseLevel(a.Get("dp-level")),
        };
        if (kind != ModelKind.Softmax && classes.Length > 0) throw new BadInputException("--classes applies to --kind softmax only");
        // softmax without --classes: filled in from the files by HorizontalLocal before validation
        if (kind != ModelKind.Softmax || classes.Length > 0) o.Validate();
        return o;
    }
}
