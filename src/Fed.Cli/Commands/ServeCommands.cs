using System.Runtime.InteropServices;
using Fed.Core;
using Fed.Core.Security;
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
        new("serve cert", "Create a service's self-signed TLS certificate + key (PKCS#12, mode 0600) and print its SHA-256 pin",
            [
                new CliOption("name", "service name (party id or initiator id), for the certificate's subject", Required: true),
                new CliOption("out", "PKCS#12 file to write (mode 0600)", Required: true),
                new CliOption("password-env", "encrypt the PKCS#12 with the password in this environment variable"),
                new CliOption("password-file", "encrypt the PKCS#12 with the password in this file (mode 0600)"),
                new CliOption("days", "validity in days", Default: "365"),
            ],
            (a, o) => WriteCertificate(Identifiers.ModelId(a.Get("name"), "--name"), a, o, a.Int("days", 365))),
    ];

    /// <summary>`fed serve cert` and `fed train cert`: a self-signed certificate written 0600, its pin printed.</summary>
    public static int WriteCertificate(string name, CliArgs a, CliOutput o, int days)
    {
        if (days is < 1 or > 3650) throw new BadInputException($"--days must be 1 .. 3650, got {days}");
        var password = SecretFiles.ReadSecret(a.Opt("password-env"), a.Opt("password-file"), "--password-env/--password-file");
        using var cert = Certificates.Create(name, TimeSpan.FromDays(days));
        Certificates.WritePkcs12(cert, a.Get("out"), password);
        var pin = Certificates.Pin(cert);
        o.Say(pin);
        o.Result(new { ok = true, name, certificate = a.Get("out"), cert_sha256 = pin, encrypted = password != null });
        return 0;
    }

    static int Run(ServiceHost service, CliOutput o)
    {
        using var stop = new CancellationTokenSource();
        // SIGTERM / SIGINT: stop accepting, let requests in flight finish (shutdown_timeout_seconds), exit 0.
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });
        service.StartAsync().GetAwaiter().GetResult();
        o.Progress($"fed {service.Service}: listening on {string.Join(", ", service.Urls)}{(service.OpsUrl is { } ops ? $" (ops: {ops})" : "")} (Ctrl+C or SIGTERM stops)");
        o.Result(new { ok = true, service = service.Service, urls = service.Urls, ops_url = service.OpsUrl });
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(stop.Token, service.Stopping);
        try { Task.Delay(Timeout.Infinite, linked.Token).GetAwaiter().GetResult(); }
        catch (OperationCanceledException) { }
        o.Progress($"fed {service.Service}: stopping (requests in flight may finish)");
        service.DisposeAsync().AsTask().GetAwaiter().GetResult();
        o.Progress($"fed {service.Service}: stopped");
        return 0;
    }
}
