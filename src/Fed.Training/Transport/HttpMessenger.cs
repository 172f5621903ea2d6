using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Fed.Core;
using Fed.Core.Security;
using Fed.Training.Protocol;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Fed.Training.Transport;

/// <summary>A peer: where it listens and the SHA-256 thumbprint of the certificate it must present (both directions).</summary>
public sealed record PeerEndpoint(string Name, string Url, string CertSha256);

/// <summary>Timeouts of the HTTP transport.</summary>
public sealed record TransportTimeouts
{
    /// <summary>Longest wait for one expected message (a slow party's whole epoch fits in it).</summary>
    public TimeSpan Receive { get; init; } = TimeSpan.FromMinutes(30);
    /// <summary>How long a send keeps retrying before the peer is declared unreachable.</summary>
    public TimeSpan Send { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>A peer we wait for that does not answer health checks for this long has vanished.</summary>
    public TimeSpan Liveness { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>One HTTP request.</summary>
    public TimeSpan Request { get; init; } = TimeSpan.FromMinutes(5);
}

/// <summary>Party certificates for the training transport: the shared helpers of <see cref="Certificates"/>.</summary>
public static class PartyCertificates
{
    public static X509Certificate2 Create(string party) => Certificates.Create(party);

    public static string Pin(X509Certificate cert) => Certificates.Pin(cert);

    /// <summary>Loads the party's PKCS#12 (password optional); refused if group or others can read it, unless allowed.</summary>
    public static X509Certificate2 Load(string pfxPath, string? password = null, bool allowInsecureMode = false) =>
        Certificates.LoadPkcs12(pfxPath, password, "certificate", allowInsecureMode);
}

/// <summary>
/// HTTP/2 over TLS with mutual authentication by pinned certificates: each party runs a Kestrel endpoint that accepts
/// only clients presenting a peer's pinned certificate (the certificate, not the claimed name, says who is talking),
/// and its client accepts only the peer's pinned server certificate. Messages are POSTed once per tag; retries
/// reuse the tag, so the receiver drops duplicates (idempotent message ids). While waiting for a peer, its health
/// endpoint is polled: a vanished peer ends the wait with an error, and an aborting peer tells everyone.
/// </summary>
public sealed class HttpMessenger : IMessenger
{
    readonly Mailbox box = new();
    readonly WebApplication app;
    readonly X509Certificate2 cert;
    readonly TransportTimeouts timeouts;
    Dictionary<string, PeerEndpoint> peers = new();
    HttpClient? client;

    public string Self { get; }
    public string Url { get; private set; } = "";
    public string CertSha256 { get; }
    /// <summary>Sees every message body received over the wire (privacy test).</summary>
    public MessageTap? Tap { get; set; }

    HttpMessenger(string self, X509Certificate2 cert, TransportTimeouts timeouts, WebApplication app)
    {
        Self = self; this.cert = cert; this.timeouts = timeouts; this.app = app;
        CertSha256 = PartyCertificates.Pin(cert);
    }

    /// <summary>Starts the party's endpoint on <paramref name="host"/>:<paramref name="port"/> (0 = any free port).</summary>
    public static async Task<HttpMessenger> StartAsync(string self, X509Certificate2 cert, string host = "127.0.0.1", int port = 0, TransportTimeouts? timeouts = null)
    {
        // Paillier kernels keep every core busy for minutes; spare pool threads keep /v1/health and message
        // receipt answering meanwhile (the kernels' parallelism is bounded by the core count).
        ThreadPool.GetMinThreads(out var workers, out var io);
        ThreadPool.SetMinThreads(Math.Max(workers, 4 * Environment.ProcessorCount + 16), io);
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.Logging.ClearProviders();
        HttpMessenger? me = null;
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = 1L << 31;
            k.Limits.Http2.InitialConnectionWindowSize = 8 << 20;
            k.Limits.Http2.InitialStreamWindowSize = 4 << 20;
            k.Listen(IPAddress.Parse(host == "localhost" ? "127.0.0.1" : host), port, lo =>
            {
                lo.Protocols = HttpProtocols.Http2;
                lo.UseHttps(new HttpsConnectionAdapterOptions
                {
                    ServerCertificate = cert,
                    ClientCertificateMode = ClientCertificateMode.RequireCertificate,
                    ClientCertificateValidation = (c, _, _) => me != null && me.peers.Values.Any(p => p.CertSha256 == PartyCertificates.Pin(c)),
                });
            });
        });
        builder.Services.AddRoutingCore();
        var app = builder.Build();
        me = new HttpMessenger(self, cert, timeouts ?? new TransportTimeouts(), app);
        app.UseRouting();
        app.MapPost("/v1/msg/{from}/{tag}", (Delegate)me.OnMessage);
        app.MapPost("/v1/abort/{from}", (Delegate)me.OnAbort);
        app.MapGet("/v1/health", () => Results.Text("ok"));
        await app.StartAsync();
        var addr = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        me.Url = addr.Replace("[::]", "127.0.0.1").Replace("0.0.0.0", "127.0.0.1");
        return me;
    }

    /// <summary>Sets the peers (their URLs and certificate pins) once every party's endpoint is known.</summary>
    public void Connect(IEnumerable<PeerEndpoint> peerList)
    {
        peers = peerList.Where(p => p.Name != Self).ToDictionary(p => p.Name);
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(5),
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(10),
            EnableMultipleHttp2Connections = true,
            SslOptions = new SslClientAuthenticationOptions
            {
                ClientCertificates = new X509CertificateCollection { cert },
                RemoteCertificateValidationCallback = (_, c, _, _) => c != null && peers.Values.Any(p => p.CertSha256 == PartyCertificates.Pin(c)),
            },
        };
        client = new HttpClient(handler)
        {
            DefaultRequestVersion = HttpVersion.Version20,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Timeout = timeouts.Request,
        };
    }

    string? Authenticate(HttpContext ctx, string from)
    {
        var c = ctx.Connection.ClientCertificate;
        if (c is null || !peers.TryGetValue(from, out var peer) || peer.CertSha256 != PartyCertificates.Pin(c))
            return $"'{Self}' does not accept a message claiming to be from '{from}' with this certificate";
        return null;
    }

    async Task<IResult> OnMessage(HttpContext ctx, string from, string tag)
    {
        if (Authenticate(ctx, from) is { } err) return Results.Text(err, statusCode: 403);
        using var ms = new MemoryStream();
        await ctx.Request.Body.CopyToAsync(ms);
        var body = ms.ToArray();
        Message msg;
        try { msg = Message.Decode(body); }
        catch (FedFailureException e) { return Results.Text(e.Message, statusCode: 400); }
        if (box.Deliver(from, tag, msg)) Tap?.Invoke(from, Self, tag, body);
        return Results.Text("ok");
    }

    async Task<IResult> OnAbort(HttpContext ctx, string from)
    {
        if (Authenticate(ctx, from) is { } err) return Results.Text(err, statusCode: 403);
        using var r = new StreamReader(ctx.Request.Body);
        box.Abort(from, await r.ReadToEndAsync());
        return Results.Text("ok");
    }

    PeerEndpoint Peer(string name) => peers.TryGetValue(name, out var p) ? p : throw new FedFailureException($"no peer '{name}' configured for '{Self}'");

    public async Task SendAsync(string to, string tag, Message message, CancellationToken ct)
    {
        var peer = Peer(to);
        var body = message.Encode();
        var deadline = DateTime.UtcNow + timeouts.Send;
        var delay = TimeSpan.FromMilliseconds(100);
        Exception? last = null;
        for (var attempt = 1; ; attempt++)
        {
            if (box.AbortReason is { } why) throw new FedFailureException(why);
            try
            {
                using var content = new ByteArrayContent(body);
                using var resp = await client!.PostAsync($"{peer.Url}/v1/msg/{Uri.EscapeDataString(Self)}/{Uri.EscapeDataString(tag)}", content, ct);
                if (resp.IsSuccessStatusCode) return;
                var text = await resp.Content.ReadAsStringAsync(ct);
                if ((int)resp.StatusCode is 403 or 400)
                    throw new FedFailureException($"party '{to}' refused message '{tag}': {text} (wrong key or certificate?)");
                last = new HttpRequestException($"HTTP {(int)resp.StatusCode}: {text}");
            }
            catch (HttpRequestException e) { last = e; }
            catch (TaskCanceledException e) when (!ct.IsCancellationRequested) { last = e; }
            if (DateTime.UtcNow + delay > deadline)
                throw new FedFailureException($"party '{to}' is unreachable at {peer.Url} ({attempt} attempts over {timeouts.Send.TotalSeconds:0}s): {Describe(last)}", last);
            await Task.Delay(delay, ct);
            delay = TimeSpan.FromMilliseconds(Math.Min(2000, delay.TotalMilliseconds * 2));
        }
    }

    static string Describe(Exception? e)
    {
        var msgs = new List<string>();
        for (var x = e; x != null; x = x.InnerException) msgs.Add(x.Message);
        var s = string.Join(": ", msgs.Distinct());
        if (s.Contains("SSL") || s.Contains("certificate", StringComparison.OrdinalIgnoreCase)) s += " (TLS handshake failed: wrong certificate/key pin?)";
        return s;
    }

    public Task<Message> ReceiveAsync(string from, string tag, CancellationToken ct)
    {
        var peer = Peer(from);
        DateTime? unreachableSince = null;
        return box.ReceiveAsync(from, tag, timeouts.Receive, async () =>
        {
            try
            {
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
                cts.CancelAfter(TimeSpan.FromSeconds(3));
                using var r = await client!.GetAsync($"{peer.Url}/v1/health", cts.Token);
                unreachableSince = null;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                unreachableSince ??= DateTime.UtcNow;
                if (DateTime.UtcNow - unreachableSince > timeouts.Liveness)
                    throw new FedFailureException($"party '{from}' vanished: no answer at {peer.Url} for {timeouts.Liveness.TotalSeconds:0}s while waiting for '{tag}' ({Describe(e)})");
            }
        }, ct);
    }

    public async Task AbortAsync(string reason)
    {
        if (client is null) return;
        await Task.WhenAll(peers.Values.Select(async p =>
        {
            try
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(3));
                using var content = new StringContent(reason);
                using var _ = await client.PostAsync($"{p.Url}/v1/abort/{Uri.EscapeDataString(Self)}", content, cts.Token);
            }
            catch (Exception) { /* best effort: the peer may be the one that vanished */ }
        }));
    }

    public async ValueTask DisposeAsync()
    {
        client?.Dispose();
        using (var stopCts = new CancellationTokenSource(TimeSpan.FromSeconds(2))) await app.StopAsync(stopCts.Token).ConfigureAwait(false);
        await app.DisposeAsync();
    }
}
