using Fed.Serving;

namespace Fed.Cli.Commands;

/// <summary>fed serve ...: the online prediction services (docs/serving.md).</summary>
public static class ServeCommands
{
    public static IReadOnlyList<CliCommand> All =>
    [
        new("serve party", "Run a party service: POST /v1/partial-scores answers with this party's partial scores only",
            [new CliOption("config", "party config (JSON, see docs/serving.md)", Required: true)],
            (a, o) => Run(new PartyService(ServingConfig.Load<PartyConfig>(a.Get("config"))), o)),
        new("serve initiator", "Run the initiator: POST /v1/predict fans out to every party, combines, caches in Redis",
            [new CliOption("config", "initiator config (JSON, see docs/serving.md)", Required: true)],
            (a, o) => Run(new InitiatorService(ServingConfig.Load<InitiatorConfig>(a.Get("config"))), o)),
    ];

    static int Run(ServiceHost service, CliOutput o)
    {
        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
        AppDomain.CurrentDomain.ProcessExit += (_, _) => stop.Cancel();
        service.StartAsync().GetAwaiter().GetResult();
        o.Progress($"fed {service.Service}: listening on {string.Join(", ", service.Urls)} (Ctrl+C stops)");
        o.Result(new { ok = true, service = service.Service, urls = service.Urls });
        try { Task.Delay(Timeout.Infinite, stop.Token).GetAwaiter().GetResult(); }
        catch (OperationCanceledException) { }
        service.DisposeAsync().AsTask().GetAwaiter().GetResult();
        return 0;
    }
}
