using Fed.Core;
using Fed.Core.Model;
using Fed.Training.Protocol;
using Fed.Training.Train;
using Fed.Training.Transfer;
using Fed.Training.Transport;

namespace Fed.Cli.Commands;

/// <summary>fed train ...: vertical federated training (see docs/training.md).</summary>
public static class TrainCommands
{
    static int TrainTransfer(CliArgs a, CliOutput o, TrainOptions options, List<LocalParty> parties)
    {
        using var bar = o.Bar("training", options.MaxIter, "epochs");
        var r = TransferLocal.RunAsync(parties, a.Get("id-column"), a.Get("label-column"), options, a.Get("out"),
            o.Lines(bar, @"^arbiter: epoch (?<done>\d+) (?<note>loss \S+)")).GetAwaiter().GetResult();
        bar.Dispose();
        o.Say($"trained transfer {PartialModel.KindName(options.Kind)} model '{options.ModelId}' v{options.Version}: {r.Guest.Losses.Count} epochs, loss {r.Guest.Losses.LastOrDefault():G6} ({r.Guest.StopReason})");
        foreach (var (party, path) in r.ModelPaths) o.Say($"  {party}: {path}");
        o.Say($"  report: {r.ReportPath}");
        o.Result(r.Summary);
        return 0;
    }

    public static IReadOnlyList<CliCommand> All =>
    [
        new("train local", "Train a vertical federated model with every party on this machine (real HTTP/2 + TLS between them)",
            [
                new CliOption("kind", "logistic | linear | softmax", Required: true),
                new CliOption("id-column", "id column name in every file", Default: "id"),
                new CliOption("label-column", "label column (only in the guest's file)", Default: "y"),
                new CliOption("party", "NAME=PATH of a party's CSV; the file with the label column is the guest", Required: true, Multiple: true),
                new CliOption("out", "directory for the model files and the report", Required: true),
                new CliOption("max-iter", "maximum epochs", Default: "100"),
                new CliOption("learning-rate", "multiplier of each party's preconditioned Nesterov step", Default: "1"),
                new CliOption("l2", "L2 penalty lambda: sum of losses + lambda/2 ||w||^2 (scikit-learn C = 1/lambda)", Default: "1"),
                new CliOption("batch-size", "rows per mini-batch, 0 = full batch", Default: "0"),
                new CliOption("key-bits", "Paillier key size: 2048 | 3072 | 4096 (1024 only with --insecure-test-key-bits)", Default: "2048"),
                new CliOption("insecure-test-key-bits", "INSECURE, for tests/demo/benchmarks only: accept Paillier keys under 2048 bits", Flag: true),
                new CliOption("psi", "id alignment: rsa | ecdh", Default: "ecdh"),
                new CliOption("protocol", "vertical (parties share customers) | transfer (two parties, common features, few or no shared customers; docs/transfer.md)", Default: "vertical"),
                new CliOption("seed", "mini-batch order seed", Default: "42"),
                new CliOption("tolerance", "stop when the loss changes by less than this fraction", Default: "1e-6"),
                new CliOption("loss-threshold", "stop when the loss falls below this"),
                new CliOption("test-buckets", "hold out ids with crc32(id) % 10 < K (0 = train on all)", Default: "3"),
                new CliOption("model-id", "model id written into the files", Default: "fed-model"),
                new CliOption("model-version", "model version written into the files", Default: "1"),
            ],
            (a, o) =>
            {
                var options = Options(a);
                var parties = a.Pairs("party").Select(p => new LocalParty(p.Key, p.Value)).ToList();
                if (a.Get("protocol") == "transfer") return TrainTransfer(a, o, options, parties);
                if (a.Get("protocol") != "vertical") throw new BadInputException($"--protocol must be vertical or transfer, got {ErrorText.Cut(a.Get("protocol"))}");
                using var bar = o.Bar("training", options.MaxIter, "epochs");
                var r = LocalTraining.RunAsync(parties, a.Get("id-column"), a.Get("label-column"), options, a.Get("psi"), a.Get("out"),
                    o.Lines(bar, @"^guest: epoch (?<done>\d+)/\d+ (?<note>loss \S+)")).GetAwaiter().GetResult();
                bar.Dispose();
                o.Say($"trained {PartialModel.KindName(options.Kind)} model '{options.ModelId}' v{options.Version}: {r.Guest.Losses.Count} epochs, loss {r.Guest.Losses.LastOrDefault():G6} ({r.Guest.StopReason}), intersection {r.Guest.Intersection}");
                if (r.Guest.Holdout != null) o.Say($"  held-out: {r.Guest.Holdout}");
                foreach (var w in LocalTraining.Warnings(r.Guest)) o.Progress($"warning: {w}");
                foreach (var (party, path) in r.ModelPaths) o.Say($"  {party}: {path}");
                o.Say($"  report: {r.ReportPath}");
                o.Result(r.Summary);
                return 0;
            }),
        new("train party", "Run one party (guest, host or arbiter) of a federated training as its own process",
            [new CliOption("config", "party.json (see docs/training.md)", Required: true),
             new CliOption("role", "client | aggregator | coordinator: a horizontal role (docs/horizontal.md); vertical roles come from the config")],
            (a, o) =>
            {
                if (a.Opt("role") is { } role) return HorizontalCommands.RunParty(role, a, o);
                var c = PartyConfig.Load(a.Get("config"));
                var r = PartyRunner.RunAsync(c, o.Progress).GetAwaiter().GetResult();
                o.Say($"{c.Party}: training finished ({r.StopReason}){(r.Model is null ? "" : $", model written to {Path.Combine(c.Out!, c.Party + ".model.json")}")}");
                o.Result(new { ok = true, party = c.Party, role = c.Role, stop_reason = r.StopReason, losses = r.Losses,
                    filled_with_mean = c.Role == "arbiter" ? null : r.FilledWithMean });
                return 0;
            }),
        new("train cert", "Create a party's self-signed TLS certificate (PKCS#12, mode 0600) and print its SHA-256 pin for the peers' configs",
            [
                new CliOption("party", "party name", Required: true), new CliOption("out", "PKCS#12 file to write (mode 0600)", Required: true),
                new CliOption("password-env", "encrypt the PKCS#12 with the password in this environment variable"),
                new CliOption("password-file", "encrypt the PKCS#12 with the password in this file (mode 0600)"),
            ],
            (a, o) => ServeCommands.WriteCertificate(Identifiers.PartyId(a.Get("party")), a, o, days: 30)),
    ];

    static TrainOptions Options(CliArgs a)
    {
        if (!PartialModel.TryParseKind(a.Get("kind"), out var kind))
            throw new BadInputException($"--kind must be logistic, linear or softmax, got '{a.Get("kind")}'");
        return new TrainOptions
        {
            Kind = kind, MaxIter = a.Int("max-iter", 100), LearningRate = a.Double("learning-rate", 1), L2 = a.Double("l2", 1),
            BatchSize = a.Int("batch-size", 0), KeyBits = a.Int("key-bits", 2048),
            InsecureTestKeyBits = a.Flag("insecure-test-key-bits"), Seed = a.Int("seed", 42),
            Tolerance = a.Double("tolerance", 1e-6), LossThreshold = a.Opt("loss-threshold") is null ? null : a.Double("loss-threshold", 0),
            TestBuckets = a.Int("test-buckets", 3), ModelId = a.Get("model-id"), Version = a.Int("model-version", 1),
        };
    }
}
