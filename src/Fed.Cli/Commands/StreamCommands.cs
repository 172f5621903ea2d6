using System.Runtime.InteropServices;
using Fed.Core;
using Fed.Streaming;

namespace Fed.Cli.Commands;

/// <summary>fed stream ...: real-time federated scoring from Kafka to Redis (docs/streaming.md).</summary>
public static class StreamCommands
{
    public static IReadOnlyList<CliCommand> All =>
    [
        new("stream party", "Consume feature events, produce this party's partial scores (runs until SIGTERM/Ctrl-C)",
            [new CliOption("config", "party config file (JSON, see docs/streaming.md)", Required: true)],
            (a, o) =>
            {
                var cfg = PartyConfig.Load(a.Get("config"));
                using var worker = new PartyWorker(cfg, o.Err);
                RunUntilSignalled(ct => worker.Run(ct), cfg.ShutdownTimeoutMs, o);
                o.Result(new { ok = worker.StoppedCleanly, metrics = worker.Metrics.Snapshot() });
                return worker.StoppedCleanly ? 0 : 1;
            }),
        new("stream initiator", "Join partial scores, combine, write predictions to Redis (runs until SIGTERM/Ctrl-C)",
            [new CliOption("config", "initiator config file (JSON, see docs/streaming.md)", Required: true)],
            (a, o) =>
            {
                var cfg = InitiatorConfig.Load(a.Get("config"));
                using var worker = new InitiatorWorker(cfg, o.Err);
                RunUntilSignalled(ct => worker.Run(ct), cfg.ShutdownTimeoutMs, o);
                o.Result(new { ok = worker.StoppedCleanly, metrics = worker.Metrics.Snapshot() });
                return worker.StoppedCleanly ? 0 : 1;
            }),
        new("stream replay", "Produce feature events from a CSV (for demos, tests and benchmarks)",
            [
                new CliOption("csv", "CSV with a header, an id column and numeric feature columns", Required: true),
                new CliOption("topic", "topic to produce to (default: fed.features.<party>)"),
                new CliOption("brokers", "bootstrap servers, e.g. 127.0.0.1:9092", Required: true),
                new CliOption("model-id", "model(s) to request for every event", Required: true, Multiple: true),
                new CliOption("party", "party whose features the CSV holds (names the default topic)"),
                new CliOption("rate", "events per second (0 = as fast as possible)", Default: "0"),
                new CliOption("event-prefix", "prefix of event ids (event_id = prefix + sample id); the same for every party's replay", Default: ""),
                new CliOption("repeat", "passes over the file (event ids get '#round' from the second pass)", Default: "1"),
                new CliOption("limit", "stop after this many events (0 = all)", Default: "0"),
                new CliOption("id-column", "sample id column", Default: "id"),
                new CliOption("drop", "column not to send, e.g. the label y", Multiple: true),
                new CliOption("kafka", "extra librdkafka producer property NAME=VALUE, e.g. api.version.request=false", Multiple: true),
            ],
            (a, o) =>
            {
                var kafka = a.Pairs("kafka").ToDictionary(p => p.Key, p => p.Value);
                kafka["bootstrap.servers"] = a.Get("brokers");
                var party = a.Opt("party");
                if (party != null) Identifiers.PartyId(party);
                var topic = a.Opt("topic") ?? (party != null ? "fed.features." + party
                    : throw new BadInputException("fed stream replay: give --topic or --party"));
                var options = new ReplayOptions
                {
                    CsvPath = a.Get("csv"), Topic = topic, ModelIds = a.All("model-id").ToArray(), Kafka = kafka,
                    Rate = a.Double("rate", 0), EventPrefix = a.Opt("event-prefix") ?? "", Repeat = a.Int("repeat", 1),
                    Limit = a.Int("limit", 0), IdColumn = a.Opt("id-column") ?? "id", Drop = a.All("drop").ToArray(),
                };
                if (options.Rate < 0 || options.Repeat < 1 || options.Limit < 0)
                    throw new BadInputException("fed stream replay: --rate and --limit must be >= 0, --repeat >= 1");
                using var cts = new CancellationTokenSource();
                ConsoleCancelEventHandler h = (_, e) => { e.Cancel = true; cts.Cancel(); };
                Console.CancelKeyPress += h;
                try
                {
                    var sent = FeatureReplay.Run(options, o.Err, cts.Token);
                    o.Say($"{sent} events sent to {topic}");
                    o.Result(new { ok = true, topic, events = sent });
                }
                finally { Console.CancelKeyPress -= h; }
                return 0;
            }),
    ];

    /// <summary>Runs a worker until SIGTERM, SIGINT or Ctrl-C; the worker then stops consuming, drains its work in
    /// flight and commits within <paramref name="shutdownTimeoutMs"/>. Past that bound (e.g. a broker that does not
    /// answer the commit) the process exits 1 without waiting further: nothing is lost, uncommitted messages are replayed.</summary>
    static void RunUntilSignalled(Action<CancellationToken> run, int shutdownTimeoutMs, CliOutput o)
    {
        using var cts = new CancellationTokenSource();
        void Stop(PosixSignalContext c)
        {
            c.Cancel = true;
            if (cts.IsCancellationRequested) return;
            o.Progress($"fed stream: stopping within {shutdownTimeoutMs} ms (draining work in flight, committing offsets)");
            cts.Cancel();
            new Thread(() =>
            {
                Thread.Sleep(shutdownTimeoutMs);
                o.Progress($"fed stream: not stopped within shutdown_timeout_ms ({shutdownTimeoutMs} ms); exiting, uncommitted messages will be replayed");
                Environment.Exit(1);
            }) { IsBackground = true, Name = "fed-stop-watchdog" }.Start();
        }
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        run(cts.Token);
    }
}
