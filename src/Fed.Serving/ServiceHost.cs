using System.Diagnostics;
using System.Text.Json;
using System.Threading.RateLimiting;
using Fed.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;

namespace Fed.Serving;

/// <summary>What the guard established about a /v1 request.</summary>
public sealed class RequestInfo
{
    public required string RequestId { get; init; }
    public required string Caller { get; init; }
    public required byte[] Body { get; init; }
}

/// <summary>
/// What both services share: Kestrel, request ids, JSON logs, Prometheus metrics, health endpoints, and the guard
/// every /v1 request passes: body size limit (413), signature (401), admin rights (403), per-caller rate limit (429).
/// </summary>
public abstract class ServiceHost : IAsyncDisposable
{
    readonly ServingConfig _config;
    readonly Dictionary<string, (byte[] Key, bool Admin)> _callers;
    readonly Dictionary<string, RateLimiter> _limiters; // one token bucket per configured caller, built once
    WebApplication? _app;
    volatile bool _ready;

    protected ServiceHost(ServingConfig config, string service)
    {
        _config = config;
        Service = service;
        Log = new JsonLog(service, config.Log);
        _callers = config.Callers.ToDictionary(c => c.Key, c => (c.Value.ResolveKey("callers." + c.Key), c.Value.Admin), StringComparer.Ordinal);
        var rl = config.RateLimit;
        _limiters = _callers.ToDictionary(c => c.Key, RateLimiter (_) => new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
        {
            TokenLimit = rl.Burst, QueueLimit = 0, AutoReplenishment = true,
            ReplenishmentPeriod = TimeSpan.FromMilliseconds(100), TokensPerPeriod = Math.Max(1, rl.PermitsPerSecond / 10),
        }), StringComparer.Ordinal);
    }

    public string Service { get; }
    public JsonLog Log { get; }
    public Metrics Metrics { get; } = new();
    /// <summary>The bound addresses once started (port 0 resolved).</summary>
    public IReadOnlyList<string> Urls => _app?.Urls.ToList() ?? [];
    public string Url => Urls.First();

    protected abstract void Map(WebApplication app);
    /// <summary>Readiness: dependencies reachable (registry, Redis). Returns null when ready, else why not.</summary>
    protected abstract string? NotReadyReason();

    public async Task StartAsync(CancellationToken ct = default)
    {
        var b = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        b.Logging.ClearProviders();
        b.WebHost.UseUrls(_config.Listen);
        b.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = _config.MaxRequestBytes;
            k.Limits.MaxRequestHeadersTotalSize = 32 * 1024;
        });
        var app = b.Build();
        app.Use(Pipeline);
        // Constant, sent with Content-Length in one write (Results.Json would stream it chunked).
        var healthy = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, string> { ["status"] = "ok", ["service"] = Service });
        app.MapGet("/healthz", (HttpContext c) => ResponseBody.SendAsync(c.Response, healthy));
        app.MapGet("/readyz", (HttpContext c) =>
        {
            var why = _ready ? NotReadyReason() : "starting";
            return why is null ? Results.Json(new { status = "ready", service = Service })
                : Results.Json(new { status = "not_ready", service = Service, reason = why }, statusCode: 503);
        });
        app.MapGet("/metrics", (HttpContext c) => Results.Text(Metrics.Render(), "text/plain; version=0.0.4; charset=utf-8"));
        Map(app);
        await app.StartAsync(ct);
        _app = app;
        _ready = true;
        Log.Write("info", "listening", ("urls", string.Join(",", app.Urls)));
    }

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
        await Log.DisposeAsync();
    }

    async Task Pipeline(HttpContext ctx, RequestDelegate next)
    {
        var start = Stopwatch.GetTimestamp();
        var rid = ctx.Request.Headers["X-Request-Id"].ToString();
        if (rid.Length is 0 or > 64 || rid.Any(ch => !(char.IsAsciiLetterOrDigit(ch) || ch is '-' or '_' or '.'))) rid = Guid.NewGuid().ToString("N");
        ctx.Response.Headers["X-Request-Id"] = rid;
        var path = ctx.Request.Path.Value ?? "/";
        var route = RouteLabel(path);
        string caller = "-";
        try
        {
            if (path.StartsWith("/v1/", StringComparison.Ordinal))
            {
                var (info, fail) = await Guard(ctx, rid, path);
                if (info is null) { await fail!; return; }
                caller = info.Caller;
                ctx.Items[typeof(RequestInfo)] = info;
            }
            await next(ctx);
        }
        catch (BadInputException e) when (!ctx.Response.HasStarted)
        {
            await Error(ctx, e is UnknownModelException ? 404 : 400, e.Message, e.GetType().Name);
        }
        catch (FedFailureException e) when (!ctx.Response.HasStarted)
        {
            await Error(ctx, 503, e.Message, e.GetType().Name);
        }
        catch (Exception e) when (!ctx.Response.HasStarted && e is not OperationCanceledException)
        {
            Log.Write("error", "unhandled", ("request_id", rid), ("error", e.ToString()));
            await Error(ctx, 500, "internal error; see the service log for request id " + rid, "InternalError");
        }
        finally
        {
            var secs = Stopwatch.GetElapsedTime(start).TotalSeconds;
            var status = ctx.Response.StatusCode;
            Metrics.Observe("fed_http_request_duration_seconds", "Request latency by route.", Metrics.L("route", route), secs);
            Metrics.Inc("fed_http_requests_total", "Requests by route and status code.", Metrics.L("route", route, "code", status.ToString()));
            if (Log.Enabled && route != "/metrics")
                Log.Request(status >= 500 ? "error" : status >= 400 ? "warn" : "info", rid, caller, ctx.Request.Method, route, status, secs * 1000);
        }
    }

    static string RouteLabel(string path) => path switch
    {
        _ when path.StartsWith("/v1/predictions/", StringComparison.Ordinal) => "/v1/predictions/{model_id}/{sample_id}",
        _ when path.StartsWith("/v1/admin/", StringComparison.Ordinal) => "/v1/admin",
        "/v1/predict" or "/v1/partial-scores" or "/healthz" or "/readyz" or "/metrics" => path,
        _ => "other",
    };

    async Task<(RequestInfo?, Task?)> Guard(HttpContext ctx, string rid, string path)
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
        var pathAndQuery = path + ctx.Request.QueryString.Value;
        var h = ctx.Request.Headers;
        var why = RequestSigning.Verify(c => _callers.TryGetValue(c, out var k) ? k.Key : null, ctx.Request.Method, pathAndQuery,
            h[RequestSigning.CallerHeader].ToString(), h[RequestSigning.TimestampHeader].ToString(), h[RequestSigning.SignatureHeader].ToString(),
            body, _config.SignatureMaxAgeSeconds, out _);
        if (why != null)
        {
            Metrics.Inc("fed_auth_failures_total", "Requests refused by the signature check.");
            return (null, Error(ctx, 401, why, "Unauthorized"));
        }
        var caller = h[RequestSigning.CallerHeader].ToString();
        if (path.StartsWith("/v1/admin/", StringComparison.Ordinal) && !_callers[caller].Admin)
            return (null, Error(ctx, 403, $"caller '{caller}' has no admin rights (callers.{caller}.admin in the config)", "Forbidden"));
        using var lease = _limiters[caller].AttemptAcquire();
        if (!lease.IsAcquired)
        {
            Metrics.Inc("fed_rate_limited_total", "Requests refused by the per-caller rate limit.", Metrics.L("caller", caller));
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
