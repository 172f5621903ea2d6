using System.Diagnostics;
using System.Text.Json;
using System.Threading.RateLimiting;
using Fed.Core;
using Fed.Core.Security;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Prometheus;

namespace Fed.Serving;

/// <summary>What the guard established about a signed request.</summary>
public sealed class RequestInfo
{
    public required string RequestId { get; init; }
    public required string Caller { get; init; }
    public required byte[] Body { get; init; }
}

/// <summary>Who may call an endpoint. Every endpoint declares one (<see cref="AccessRules"/>); a request matching no
/// endpoint, or an endpoint without a rule, is treated as needing a signed caller and then answered 404/405.</summary>
public enum Access
{
    /// <summary>Anyone who reaches the listener (only /healthz).</summary>
    Anyone,
    /// <summary>/readyz and /metrics: on the ops listener if one is configured, else as ops.access says.</summary>
    Ops,
    /// <summary>A configured caller with a valid, fresh, unreplayed signature (and, with TLS, its pinned client certificate).</summary>
    Signed,
    /// <summary>A signed caller with admin rights.</summary>
    Admin,
}

public sealed record AccessRule(Access Access);

public static class AccessRules
{
    /// <summary>Attaches the access rule to the endpoint: the authorization step reads it after routing.</summary>
    public static TBuilder Allow<TBuilder>(this TBuilder b, Access access) where TBuilder : IEndpointConventionBuilder =>
        b.WithMetadata(new AccessRule(access));
}

/// <summary>
/// What both services share: Kestrel (HTTPS with pinned client certificates unless insecure_plaintext), request ids,
/// JSON logs, Prometheus metrics, health endpoints, and authorization attached to each endpoint, decided after routing
/// (so the same decision holds whatever the spelling of the path: case, %2F, //, /./, ../, trailing slash):
/// body size limit (413), signature + nonce + client certificate (401), admin rights (403), per-caller rate limit (429).
/// </summary>
public abstract class ServiceHost : IAsyncDisposable
{
    const string OpsListenerTag = "fed.ops-listener";
    readonly ServingConfig _config;
    readonly Dictionary<string, (byte[] Key, bool Admin, string? Pin)> _callers;
    readonly Dictionary<string, RateLimiter> _limiters; // one token bucket per configured caller, built once
    readonly NonceStore _nonces;
    readonly System.Security.Cryptography.X509Certificates.X509Certificate2? _cert;
    readonly List<(Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions Options, string Scheme, bool Ops)> _listeners = [];
    WebApplication? _app;
    volatile bool _ready;

    /// <summary>Records <paramref name="id"/> in the replay store under <paramref name="scope"/>; a reason if it was already used within the window.</summary>
    protected ValueTask<string?> UseOnce(string scope, string id) => _nonces.TryUse(scope, id);

    protected ServiceHost(ServingConfig config, string service, string? defaultReplayRedis = null)
    {
        _config = config;
        Service = service;
        _callers = config.Callers.ToDictionary(c => c.Key, c => (c.Value.ResolveKey("callers." + c.Key), c.Value.Admin, c.Value.CertSha256), StringComparer.Ordinal);
        _cert = config.Tls?.Load(service);
        _nonces = NonceStore.Create(config.Replay, config.SignatureMaxAgeSeconds, defaultReplayRedis);
        Log = new ServiceLog(service, config.Log);
        _requestSeconds = Metrics.Histogram("fed_http_request_duration_seconds", "Request latency by route.", "route");
        _requests = Metrics.Counter("fed_http_requests_total", "Requests by route and status code.", "route", "code");
        _authFailures = Metrics.Counter("fed_auth_failures_total", "Requests refused by the signature check.");
        _rateLimited = Metrics.Counter("fed_rate_limited_total", "Requests refused by the per-caller rate limit.", "caller");
        var rl = config.RateLimit;
        _limiters = _callers.ToDictionary(c => c.Key, RateLimiter (_) => new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
        {
            TokenLimit = rl.Burst, QueueLimit = 0, AutoReplenishment = true,
            // 10 refills a second; below 10/s one token per 1/rate seconds (else 1/s would refill at 10/s).
            ReplenishmentPeriod = rl.PermitsPerSecond >= 10 ? TimeSpan.FromMilliseconds(100) : TimeSpan.FromSeconds(1.0 / rl.PermitsPerSecond),
            TokensPerPeriod = rl.PermitsPerSecond >= 10 ? rl.PermitsPerSecond / 10 : 1,
        }), StringComparer.Ordinal);
    }

    public string Service { get; }
    public ServiceLog Log { get; }
    public Metrics Metrics { get; } = new();
    readonly Prometheus.Histogram _requestSeconds;
    readonly Prometheus.Counter _requests, _authFailures, _rateLimited;
    /// <summary>The service's certificate (TLS on), for the initiator's client side.</summary>
    protected System.Security.Cryptography.X509Certificates.X509Certificate2? Certificate => _cert;
    /// <summary>The bound main-listener address once started (port 0 resolved), e.g. https://127.0.0.1:41234.</summary>
    public IReadOnlyList<string> Urls => _listeners.Where(l => !l.Ops).Select(UrlOf).ToList();
    public string Url => Urls.First();
    /// <summary>The ops listener's address, or null when /readyz and /metrics are on the main listener.</summary>
    public string? OpsUrl => _listeners.Where(l => l.Ops).Select(UrlOf).FirstOrDefault();
    /// <summary>Cancelled when the host begins to stop (SIGTERM, SIGINT or <see cref="StopAsync"/>).</summary>
    public CancellationToken Stopping => _app?.Lifetime.ApplicationStopping ?? CancellationToken.None;

    static string UrlOf((Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions Options, string Scheme, bool Ops) l)
    {
        var ep = l.Options.IPEndPoint!;
        var host = ep.Address.Equals(System.Net.IPAddress.Any) || ep.Address.Equals(System.Net.IPAddress.IPv6Any) ? "127.0.0.1"
            : ep.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{ep.Address}]" : ep.Address.ToString();
        return $"{l.Scheme}://{host}:{ep.Port}";
    }

    protected abstract void Map(WebApplication app);
    /// <summary>Readiness: dependencies reachable (registry, Redis). Returns null when ready, else why not (no secrets).</summary>
    protected abstract string? NotReadyReason();

    static System.Net.IPEndPoint EndPointOf(string url)
    {
        var u = new Uri(url);
        var host = u.Host.Trim('[', ']');
        var ip = host switch
        {
            "localhost" => System.Net.IPAddress.Loopback,
            "*" or "+" or "0.0.0.0" => System.Net.IPAddress.Any,
            _ => System.Net.IPAddress.TryParse(host, out var a) ? a
                : throw new BadInputException($"listen address '{url}': give an IP address (or localhost), not a host name"),
        };
        return new System.Net.IPEndPoint(ip, u.Port);
    }

    public async Task StartAsync(CancellationToken ct = default)
    {
        var b = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        b.Logging.ClearProviders();
        b.Services.Configure<Microsoft.Extensions.Hosting.HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(_config.ShutdownTimeoutSeconds));
        b.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = _config.MaxRequestBytes;
            k.Limits.MaxRequestHeadersTotalSize = 32 * 1024;
            Listen(k, _config.Listen, ops: false);
            if (_config.Ops.Listen is { } opsUrl) Listen(k, opsUrl, ops: true);
        });
        var app = b.Build();
        app.Use(Pipeline);
        app.UseRouting();
        app.Use(Authorize);
        // Constant, sent with Content-Length in one write (Results.Json would stream it chunked).
        var healthy = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, string> { ["status"] = "ok", ["service"] = Service });
        app.MapGet("/healthz", (HttpContext c) => ResponseBody.SendAsync(c.Response, healthy)).Allow(Access.Anyone);
        app.MapGet("/readyz", (HttpContext c) =>
        {
            var why = _ready ? NotReadyReason() : "starting";
            return why is null ? Results.Json(new { status = "ready", service = Service })
                : Results.Json(new { status = "not_ready", service = Service, reason = Secrets.Redact(why) }, statusCode: 503);
        }).Allow(Access.Ops);
        app.MapMetrics("/metrics", Metrics.Registry).Allow(Access.Ops);
        Map(app);
        await app.StartAsync(ct);
        _app = app;
        _ready = true;
        Log.Write(LogLevel.Information, "listening", ("urls", string.Join(",", Urls)), ("ops_url", OpsUrl), ("tls", _cert != null));
    }

    void Listen(Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions k, string url, bool ops)
    {
        var https = url.StartsWith("https:", StringComparison.OrdinalIgnoreCase);
        k.Listen(EndPointOf(url), lo =>
        {
            _listeners.Add((lo, https ? "https" : "http", ops));
            if (ops) lo.Use(next => conn => { conn.Items[OpsListenerTag] = true; return next(conn); });
            if (!https) return;
            lo.UseHttps(new Microsoft.AspNetCore.Server.Kestrel.Https.HttpsConnectionAdapterOptions
            {
                ServerCertificate = _cert,
                SslProtocols = System.Security.Authentication.SslProtocols.Tls12 | System.Security.Authentication.SslProtocols.Tls13,
                // Main listener: only a client presenting a configured caller's pinned certificate completes the handshake.
                ClientCertificateMode = ops ? Microsoft.AspNetCore.Server.Kestrel.Https.ClientCertificateMode.NoCertificate
                    : Microsoft.AspNetCore.Server.Kestrel.Https.ClientCertificateMode.RequireCertificate,
                ClientCertificateValidation = (c, _, _) => PinnedCaller(c) != null,
            });
        });
    }

    /// <summary>A caller whose pin the certificate matches (null: none).</summary>
    string? PinnedCaller(System.Security.Cryptography.X509Certificates.X509Certificate2 c)
    {
        var pin = Certificates.Pin(c);
        foreach (var (id, x) in _callers) if (x.Pin == pin) return id;
        return null;
    }

    /// <summary>Stops accepting connections and lets requests in flight finish (up to shutdown_timeout_seconds).</summary>
    public async Task StopAsync()
    {
        _ready = false;
        if (_app != null) await _app.StopAsync();
    }

    public virtual async ValueTask DisposeAsync()
    {
        await StopAsync();
        if (_app != null) await _app.DisposeAsync();
        foreach (var l in _limiters.Values) l.Dispose();
        _nonces.Dispose();
        _cert?.Dispose();
        await Log.DisposeAsync();
    }

    async Task Pipeline(HttpContext ctx, RequestDelegate next)
    {
        var start = Stopwatch.GetTimestamp();
        var rid = ctx.Request.Headers["X-Request-Id"].ToString();
        if (rid.Length is 0 or > 64 || rid.Any(ch => !(char.IsAsciiLetterOrDigit(ch) || ch is '-' or '_' or '.'))) rid = Guid.NewGuid().ToString("N");
        ctx.Response.Headers["X-Request-Id"] = rid;
        ctx.Items[RequestIdKey] = rid;
        try
        {
            await next(ctx);
        }
        catch (BadInputException e) when (!ctx.Response.HasStarted)
        {
            await Error(ctx, e is UnknownModelException ? 404 : 400, Secrets.Redact(e.Message), e.GetType().Name);
        }
        catch (FedFailureException e) when (!ctx.Response.HasStarted)
        {
            await Error(ctx, 503, Secrets.Redact(e.Message), e.GetType().Name);
        }
        catch (Exception e) when (!ctx.Response.HasStarted && e is not OperationCanceledException)
        {
            Log.Write(LogLevel.Error, "unhandled", ("request_id", rid), ("error", e.ToString()));
            await Error(ctx, 500, "internal error; see the service log for request id " + rid, "InternalError");
        }
        finally
        {
            var secs = Stopwatch.GetElapsedTime(start).TotalSeconds;
            var status = ctx.Response.StatusCode;
            // The matched route's template (never the raw path: labels stay bounded whatever is sent).
            var route = (ctx.GetEndpoint() as Microsoft.AspNetCore.Routing.RouteEndpoint)?.RoutePattern.RawText ?? "other";
            var caller = ctx.Items.TryGetValue(typeof(RequestInfo), out var i) && i is RequestInfo ri ? ri.Caller : "-";
            _requestSeconds.WithLabels(route).Observe(secs);
            _requests.WithLabels(route, status.ToString(System.Globalization.CultureInfo.InvariantCulture)).Inc();
            if (Log.Enabled && route != "/metrics")
                Log.Request(status >= 500 ? LogLevel.Error : status >= 400 ? LogLevel.Warning : LogLevel.Information, rid, caller, ctx.Request.Method, route, status, secs * 1000);
        }
    }

    const string RequestIdKey = "fed.request-id";

    /// <summary>
    /// The authorization step, after routing: the matched endpoint's <see cref="AccessRule"/> decides. No endpoint or no
    /// rule (unknown path, wrong method): the caller must still be verified, and only then learns 404/405. Fails closed.
    /// </summary>
    async Task Authorize(HttpContext ctx, RequestDelegate next)
    {
        var ep = ctx.GetEndpoint();
        var rule = ep?.Metadata.GetMetadata<AccessRule>()?.Access;
        var onOps = ctx.Features.Get<IConnectionItemsFeature>()?.Items.ContainsKey(OpsListenerTag) == true;
        if (onOps)
        {
            // The ops listener serves /healthz, /readyz and /metrics to whoever reaches it, and nothing else.
            if (rule is Access.Anyone or Access.Ops) await next(ctx);
            else await Error(ctx, 404, "the ops listener serves only /healthz, /readyz and /metrics", "NotFound");
            return;
        }
        if (rule == Access.Anyone) { await next(ctx); return; }
        var opsElsewhere = rule == Access.Ops && _config.Ops.Listen != null;
        var admin = rule == Access.Admin || (rule == Access.Ops && !opsElsewhere && _config.Ops.Access == "admin");
        var (info, fail) = await Guard(ctx, (string)ctx.Items[RequestIdKey]!, admin);
        if (info is null) { await fail!; return; }
        ctx.Items[typeof(RequestInfo)] = info;
        if (ep is null || opsElsewhere) await Error(ctx, 404, "no such route", "NotFound");
        else await next(ctx);
    }

    async Task<(RequestInfo?, Task?)> Guard(HttpContext ctx, string rid, bool admin)
    {
        var max = _config.MaxRequestBytes;
        if (ctx.Request.ContentLength > max)
            return (null, Error(ctx, 413, $"request body of {ctx.Request.ContentLength} bytes exceeds the limit of {max} bytes; send fewer samples per request", "RequestTooLarge"));
        byte[] body;
        try { body = ctx.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody == false ? [] : await ReadBody(ctx.Request, max); }
        catch (BadHttpRequestException e) when (e.StatusCode == 413)
        {
            return (null, Error(ctx, 413, $"request body exceeds the limit of {max} bytes; send fewer samples per request", "RequestTooLarge"));
        }
        // The request target exactly as sent (not decoded, not normalized): what the caller signed.
        var target = ctx.Features.Get<IHttpRequestFeature>()?.RawTarget ?? (ctx.Request.Path.Value + ctx.Request.QueryString.Value);
        var h = ctx.Request.Headers;
        var caller = h[RequestSigning.CallerHeader].ToString();
        var nonce = h[RequestSigning.NonceHeader].ToString();
        var why = RequestSigning.Verify(c => _callers.TryGetValue(c, out var k) ? k.Key : null, ctx.Request.Method, target,
            caller, h[RequestSigning.TimestampHeader].ToString(), nonce, h[RequestSigning.SignatureHeader].ToString(),
            body, _config.SignatureMaxAgeSeconds);
        // With TLS, the signature must come over a connection authenticated by this caller's own certificate.
        if (why is null && _cert != null && (ctx.Connection.ClientCertificate is not { } cc || Certificates.Pin(cc) != _callers[caller].Pin))
            why = $"caller '{caller}' must present its own pinned client certificate (callers.{caller}.cert_sha256)";
        if (why is null) why = await _nonces.TryUse(caller, nonce);
        if (why != null)
        {
            _authFailures.Inc();
            ctx.Response.Headers.WWWAuthenticate = "Fed-HMAC";
            return (null, Error(ctx, 401, why, "Unauthorized"));
        }
        if (admin && !_callers[caller].Admin)
            return (null, Error(ctx, 403, $"caller '{caller}' has no admin rights (callers.{caller}.admin in the config)", "Forbidden"));
        using var lease = _limiters[caller].AttemptAcquire();
        if (!lease.IsAcquired)
        {
            _rateLimited.WithLabels(caller).Inc();
            ctx.Response.Headers.RetryAfter = "1";
            return (null, Error(ctx, 429, $"rate limit for caller '{caller}' exceeded ({_config.RateLimit.PermitsPerSecond}/s, burst {_config.RateLimit.Burst}); retry later", "RateLimited"));
        }
        return (new RequestInfo { RequestId = rid, Caller = caller, Body = body }, null);
    }

    static async Task<byte[]> ReadBody(HttpRequest req, long max)
    {
        if (req.ContentLength is 0) return [];
        if (req.ContentLength is { } len)
        {
            var buf = new byte[len];
            var read = 0;
            while (read < len)
            {
                var n = await req.Body.ReadAsync(buf.AsMemory(read));
                if (n == 0) throw new BadHttpRequestException("request body shorter than Content-Length", 400);
                read += n;
            }
            return buf;
        }
        using var ms = new MemoryStream();
        var chunk = new byte[16384];
        int m;
        while ((m = await req.Body.ReadAsync(chunk)) > 0)
        {
            if (ms.Length + m > max) throw new BadHttpRequestException("too large", 413);
            ms.Write(chunk, 0, m);
        }
        return ms.ToArray();
    }

    // Messages quote names with '...': keep them readable (the body is JSON, not HTML).
    static readonly System.Text.Encodings.Web.JavaScriptEncoder ErrorJson = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping;

    public static async Task Error(HttpContext ctx, int status, string message, string type)
    {
        using var body = new ResponseBody(512);
        using (var w = new Utf8JsonWriter(body, new JsonWriterOptions { Encoder = ErrorJson }))
        {
            w.WriteStartObject();
            w.WriteString("error", message);
            w.WriteString("error_type", type);
            w.WriteString("request_id", ctx.Response.Headers["X-Request-Id"].ToString());
            w.WriteEndObject();
        }
        await body.SendAsync(ctx.Response, status);
    }

    protected static RequestInfo Info(HttpContext ctx) => (RequestInfo)ctx.Items[typeof(RequestInfo)]!;

    /// <summary>Parses a JSON body; a syntax error is bad input (400).</summary>
    protected static JsonDocument ParseBody(byte[] body)
    {
        try { return JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 8 }); }
        catch (JsonException e) { throw new BadInputException($"request body is not valid JSON: {e.Message}"); }
    }
}
