using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Fed.Core;
using Fed.Core.Redis;
using Fed.Core.Security;
using Fed.Core.Scoring;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using StackExchange.Redis;
using Microsoft.Extensions.Logging;

namespace Fed.Serving;

/// <summary>What one party did for one fan-out: ok with per-sample results, or timeout / error with the reason.</summary>
public sealed record PartyOutcome(string Party, string Status, string? Error, double LatencyMs, PartySampleResult[]? Results, string? CoverageJson)
{
    public const string Ok = "ok", Timeout = "timeout", Failed = "error";
}

/// <summary>
/// The initiator: <c>POST /v1/predict</c> resolves the model version once, fans the task out to every party of the
/// model in parallel (signed, with per-party timeouts, over pooled keep-alive connections), combines the partial
/// scores through <see cref="Combiner"/> and caches each prediction in Redis under <see cref="PredictionKeys.Record"/> (the format shared with the batch path).
/// A sample gets a value only when every party answered ok for it; otherwise its status says which party failed and how.
/// <c>GET /v1/predictions/{model_id}/{sample_id}</c> serves cached (online or batch-loaded) predictions.
/// </summary>
public sealed class InitiatorService : ServiceHost
{
    readonly InitiatorConfig _config;
    readonly WarehousePool _pool;
    readonly Dictionary<string, (PartyEndpoint Endpoint, byte[] Key, Uri Uri, HttpClient Http)> _parties;
    readonly ConnectionMultiplexer _redis;
    readonly TimeSpan _ttl;
    readonly NearCache? _near;
    readonly Prometheus.Counter.Child _cacheHits, _cacheMisses, _nearHits, _nearMisses;
    readonly Prometheus.Counter _cacheErrors, _cacheWriteRetries, _predictions, _partyRequests;
    readonly Prometheus.Histogram _partySeconds;

    public InitiatorService(InitiatorConfig config) : base(config, "initiator:" + config.PartyId, defaultReplayRedis: config.Redis)
    {
        _config = config;
        var lookups = Metrics.Counter("fed_cache_lookups_total", "Prediction cache lookups by result.", "result");
        (_cacheHits, _cacheMisses) = (lookups.WithLabels("hit"), lookups.WithLabels("miss"));
        var nearLookups = Metrics.Counter("fed_near_cache_lookups_total", "Near-cache lookups by result (a miss goes on to Redis).", "result");
        (_nearHits, _nearMisses) = (nearLookups.WithLabels("hit"), nearLookups.WithLabels("miss"));
        _cacheErrors = Metrics.Counter("fed_cache_errors_total", "Redis errors (the request is still answered without the cache).");
        _cacheWriteRetries = Metrics.Counter("fed_cache_write_retries_total", "Cache writes sent again after a Redis error or no acknowledgement in time (idempotent: same key, same bytes).");
        _predictions = Metrics.Counter("fed_predictions_total", "Samples answered by the initiator, by status.", "status");
        _partyRequests = Metrics.Counter("fed_party_requests_total", "Partial-score calls per party and outcome (ok, timeout, error).", "party", "status");
        _partySeconds = Metrics.Histogram("fed_party_request_duration_seconds", "Latency of partial-score calls per party.", "party");
        _pool = new WarehousePool(config.Warehouse, config.WarehouseConnections);
        Models = new ModelCache(_pool, config.PartyId, TimeSpan.FromSeconds(config.ModelRefreshSeconds));
        _parties = config.Parties.ToDictionary(p => p.PartyId,
            p => (p, ServingConfig.DecodeKey(p.Key, p.KeyEnv, "parties." + p.PartyId), new Uri(new Uri(p.Url.TrimEnd('/') + "/"), "v1/partial-scores"), PartyClient(p)),
            StringComparer.Ordinal);
        _redis = ConnectRedis(config.Redis);
        _ttl = TimeSpan.FromSeconds(config.CacheTtlSeconds);
        var near = config.NearCache ?? NearCacheConfig.Default;
        if (near.Enabled)
        {
            try { _near = NearCache.Start(near, config.Redis, Metrics, (msg, err) => Log.Write(LogLevel.Warning, msg, ("error", err))); }
            catch (FedFailureException e) when (config.NearCache is null)
            {
                // Not asked for: run without it (every lookup goes to Redis), and say so once.
                Log.Write(LogLevel.Warning, "near cache off: Redis cannot track keys for it (set near_cache.max_entries 0 to silence this)", ("error", e.Message));
            }
            catch
            {
                // Asked for and refused: release what is already open (the log's writer holds its file).
                _redis.Dispose(); _pool.Dispose(); foreach (var p in _parties.Values) p.Http.Dispose();
                Log.DisposeAsync().AsTask().GetAwaiter().GetResult();
                throw;
            }
        }
        Metrics.Gauge("fed_near_cache_live", "1 while the near cache is on and receiving invalidations from Redis, else 0.", () => _near?.Live == true ? 1 : 0);
        Metrics.Gauge("fed_near_cache_entries", "Prediction records held in the initiator's near cache.", () => _near?.Count ?? 0);
        Metrics.Gauge("fed_cache_hit_ratio", "Cache hits / lookups since start (NaN before the first lookup).", () =>
        {
            double hit = _cacheHits.Value, miss = _cacheMisses.Value;
            return hit + miss == 0 ? double.NaN : hit / (hit + miss);
        });
    }

    /// <summary>One keep-alive pool per party. Over https it presents this initiator's certificate and accepts only
    /// the party's pinned server certificate (no CA, no host name: the pin says who it is).</summary>
    HttpClient PartyClient(PartyEndpoint p)
    {
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            MaxConnectionsPerServer = _config.MaxConnectionsPerParty,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
            ConnectTimeout = TimeSpan.FromSeconds(5),
        };
        if (p.CertSha256 is { } pin)
            handler.SslOptions = new System.Net.Security.SslClientAuthenticationOptions
            {
                ClientCertificates = new System.Security.Cryptography.X509Certificates.X509CertificateCollection { Certificate! },
                EnabledSslProtocols = System.Security.Authentication.SslProtocols.Tls12 | System.Security.Authentication.SslProtocols.Tls13,
                RemoteCertificateValidationCallback = (_, c, _, _) => c != null && Certificates.Pin(c) == pin,
            };
        return new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan, DefaultRequestVersion = HttpVersion.Version11 };
    }

    public ModelCache Models { get; }
    public IDatabase Redis => _redis.GetDatabase();
    public int NearCacheEntries => _near?.Count ?? 0;
    public bool NearCacheLive => _near?.Live == true;

    /// <summary>The Redis client as the initiator sets it up (public so a benchmark's baseline uses the same client).</summary>
    /// <summary>Single node, Sentinel or Cluster alike. Starts (not ready) while Redis is down and reconnects when it is back.</summary>
    public static ConnectionMultiplexer ConnectRedis(string config) => RedisStore.Connect(config, abortOnConnectFail: false);

    protected override string? NotReadyReason()
    {
        if (!_redis.IsConnected) return "redis not connected (" + Secrets.Redact(_config.Redis) + ")";
        try { _pool.Use(w => w.TableExists(Fed.Warehouse.Schema.Registry.Name) ? 0 : throw new FedFailureException("no model registry table")); return null; }
        catch (FedException e) { return "warehouse: " + Secrets.Redact(e.Message); }
    }

    protected override void Map(WebApplication app)
    {
        app.MapPost("/v1/predict", Predict).Allow(Access.Signed);
        app.MapGet("/v1/predictions/{model_id}/{sample_id}", (HttpContext ctx, string model_id, string sample_id) => Lookup(ctx, model_id, sample_id)).Allow(Access.Signed);
        AdminEndpoints.Map(app, Models, Log);
    }

    sealed record PredictRequest(string ModelId, string[] SampleIds, PredictionMode Mode, bool UseCache);

    static PredictRequest ParsePredict(byte[] body, int maxBatch)
    {
        using var doc = ParseBody(body);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw new BadInputException("request body must be a JSON object");
        string? modelId = null, mode = null; string[]? ids = null; var useCache = false;
        foreach (var p in root.EnumerateObject())
        {
            switch (p.Name)
            {
                case "model_id": modelId = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() : throw new BadInputException("'model_id' must be a string"); break;
                case "sample_ids": ids = SampleIds.Parse(p.Value, maxBatch); break;
                case "mode": mode = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() : throw new BadInputException("'mode' must be a string"); break;
                case "use_cache": useCache = p.Value.ValueKind is JsonValueKind.True or JsonValueKind.False ? p.Value.GetBoolean() : throw new BadInputException("'use_cache' must be true or false"); break;
                default: throw new BadInputException($"unknown field '{p.Name}' (expected model_id, sample_ids, mode, use_cache)");
            }
        }
        if (modelId is null) throw new BadInputException("'model_id' is required");
        Identifiers.ModelId(modelId);
        if (ids is null) throw new BadInputException("'sample_ids' is required");
        return new PredictRequest(modelId, ids, PredictionModes.Parse(mode ?? "realtime"), useCache);
    }

    async Task Predict(HttpContext ctx)
    {
        var info = Info(ctx);
        var req = ParsePredict(info.Body, _config.MaxBatch);
        var version = Models.ActiveVersion(req.ModelId); // once: every party is asked for this version
        var loaded = Models.Get(req.ModelId, version);
        var sig = loaded.Signature;
        var masked = loaded.Masking.Enabled;
        var n = req.SampleIds.Length;
        var records = new PredictionRecord?[n];
        var fromCache = new bool[n];

        if (req.UseCache)
        {
            var keys = new RedisKey[n];
            for (var i = 0; i < n; i++) keys[i] = PredictionKeys.Record(sig.ModelId, version, req.SampleIds[i]);
            try
            {
                var values = await RedisStore.GetManyAsync(Redis, keys); // one MGET per cluster slot
                for (var i = 0; i < n; i++)
                    if (values[i].HasValue) { records[i] = PredictionRecord.Parse(values[i]!, keys[i]!); fromCache[i] = true; }
                var hits = fromCache.Count(h => h);
                _cacheHits.Inc(hits);
                _cacheMisses.Inc(n - hits);
            }
            catch (RedisException e)
            {
                _cacheErrors.Inc();
                Log.Write(LogLevel.Warning, "cache read failed", ("request_id", info.RequestId), ("error", e.Message));
            }
        }

        var missIdx = Enumerable.Range(0, n).Where(i => !fromCache[i]).ToArray();
        PartyOutcome[] outcomes = [];
        var statuses = new string[n];
        var cached = new bool[n]; // online predictions whose Redis write was acknowledged
        var failures = new Dictionary<string, string>?[n];
        if (missIdx.Length > 0)
        {
            var missIds = missIdx.Select(i => req.SampleIds[i]).ToArray();
            // Masked: one fresh mask id for this fan-out, the same at every party (the masks cancel only within it).
            var task = PartyRequestBody(sig.ModelId, version, missIds, req.Mode, masked ? MaskIds.New() : null);
            outcomes = await Task.WhenAll(sig.Parties.Select(p => CallParty(p, sig.ModelId, version, missIds, task, info.RequestId, ctx.RequestAborted, masked)));
            var now = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ");
            var toCache = new List<(int Index, PredictionRecord Record)>(missIdx.Length);
            var partials = new Dictionary<string, double[]>(sig.Parties.Length, StringComparer.Ordinal);
            var ring = new Dictionary<string, long[]>(sig.Parties.Length, StringComparer.Ordinal);
            for (var j = 0; j < missIdx.Length; j++)
            {
                var i = missIdx[j];
                partials.Clear();
                ring.Clear();
                Dictionary<string, string>? why = null;
                var worst = SampleStatus.Ok;
                foreach (var o in outcomes)
                {
                    string s;
                    if (o.Status != PartyOutcome.Ok) { s = o.Status; worst = SampleStatus.PartialFailure; }
                    else
                    {
                        var r = o.Results![j];
                        s = r.Status;
                        if (s == SampleStatus.Ok)
                        {
                            if (masked) ring[o.Party] = r.Masked!; else partials[o.Party] = r.Scores!;
                            continue;
                        }
                        if (r.MissingFeatures is { Length: > 0 }) s += ": " + string.Join(", ", r.MissingFeatures);
                        if (worst == SampleStatus.Ok || (worst == SampleStatus.FeaturesMissing && r.Status is SampleStatus.NotFound or SampleStatus.NotScored)) worst = r.Status;
                    }
                    (why ??= new(StringComparer.Ordinal))[o.Party] = s;
                }
                statuses[i] = worst;
                failures[i] = why;
                if (worst != SampleStatus.Ok) continue;
                var pred = masked ? Combiner.CombineMasked(sig, ring, req.SampleIds[i]) : Combiner.Combine(sig, partials, req.SampleIds[i]);
                var rec = Record(sig, req.SampleIds[i], pred, now);
                records[i] = rec;
                toCache.Add((i, rec));
            }
            if (toCache.Count > 0) await WriteCache(toCache, cached, info.RequestId);
        }
        Metrics.IncEach(_predictions, statuses.Select(st => st ?? SampleStatus.Ok));

        using var body = new ResponseBody(512 + n * 96);
        using (var w = body.Json())
        {
            w.WriteStartObject();
            w.WriteString("request_id", info.RequestId);
            w.WriteString("model_id", sig.ModelId);
            w.WriteNumber("version", version);
            w.WriteString("mode", PredictionModes.Name(req.Mode));
            w.WriteBoolean("complete", records.All(r => r != null));
            w.WriteStartArray("parties");
            foreach (var o in outcomes)
            {
                w.WriteStartObject();
                w.WriteString("party", o.Party);
                w.WriteString("status", o.Status);
                w.WriteNumber("latency_ms", Math.Round(o.LatencyMs, 3));
                if (o.Error != null) w.WriteString("error", o.Error);
                if (o.CoverageJson != null) { w.WritePropertyName("coverage"); w.WriteRawValue(o.CoverageJson, skipInputValidation: true); }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("predictions");
            for (var i = 0; i < n; i++)
            {
                w.WriteStartObject();
                w.WriteString("sample_id", req.SampleIds[i]);
                if (records[i] is { } r)
                {
                    w.WriteString("status", SampleStatus.Ok);
                    w.WriteNumber("value", r.PredictValue);
                    if (r.PredictedClass is null) w.WriteNull("predicted_class"); else w.WriteString("predicted_class", r.PredictedClass);
                    if (r.Probabilities is null) w.WriteNull("probabilities");
                    else { w.WriteStartObject("probabilities"); foreach (var (c, p) in r.Probabilities) w.WriteNumber(c, p); w.WriteEndObject(); }
                    w.WriteString("source", fromCache[i] ? "cache" : r.Source);
                    if (!fromCache[i]) w.WriteBoolean("cached", cached[i]);
                }
                else
                {
                    w.WriteString("status", statuses[i]);
                    w.WriteStartObject("parties");
                    foreach (var (p, s) in failures[i]!) w.WriteString(p, s);
                    w.WriteEndObject();
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        await body.SendAsync(ctx.Response);
    }

    /// <summary>The shared Redis record (<see cref="PredictionRecord"/>) of an online prediction.</summary>
    static PredictionRecord Record(ModelSignature sig, string sampleId, Prediction p, string now)
    {
        Dictionary<string, double>? probs = null;
        if (p.Probabilities != null)
        {
            probs = new Dictionary<string, double>(sig.Classes.Length, StringComparer.Ordinal);
            for (var c = 0; c < sig.Classes.Length; c++) probs[sig.Classes[c]] = p.Probabilities[c];
        }
        return new PredictionRecord
        {
            ModelId = sig.ModelId, Version = sig.Version, SampleId = sampleId, PredictValue = p.Value,
            PredictedClass = Fed.Core.Model.PartialModel.HasClasses(sig.Kind) ? sig.Classes[p.PredictedClass] : null,
            Probabilities = probs, Source = "online", WrittenAt = now,
        };
    }

    static byte[] PartyRequestBody(string modelId, int version, string[] ids, PredictionMode mode, string? maskId)
    {
        var buf = new System.Buffers.ArrayBufferWriter<byte>(64 + ids.Length * 16);
        using (var w = new Utf8JsonWriter(buf))
        {
            w.WriteStartObject();
            w.WriteString("model_id", modelId);
            w.WriteNumber("version", version);
            w.WriteString("mode", PredictionModes.Name(mode));
            if (maskId != null) w.WriteString("mask_id", maskId);
            w.WriteStartArray("sample_ids");
            foreach (var id in ids) w.WriteStringValue(id);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return buf.WrittenSpan.ToArray();
    }

    async Task<PartyOutcome> CallParty(string party, string modelId, int version, string[] ids, byte[] body, string requestId, CancellationToken aborted, bool masked = false)
    {
        var start = Stopwatch.GetTimestamp();
        PartyOutcome Done(string status, string? error, PartySampleResult[]? results = null, string? coverage = null)
        {
            var secs = Stopwatch.GetElapsedTime(start).TotalSeconds;
            _partySeconds.WithLabels(party).Observe(secs);
            _partyRequests.WithLabels(party, status).Inc();
            if (status != PartyOutcome.Ok) Log.Write(LogLevel.Warning, "party call failed", ("request_id", requestId), ("party", party), ("status", status), ("error", error));
            return new PartyOutcome(party, status, error, secs * 1000, results, coverage);
        }
        if (!_parties.TryGetValue(party, out var ep))
            return Done(PartyOutcome.Failed, $"no endpoint configured for party '{party}' (add it to 'parties' in the initiator config)");
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(aborted);
        cts.CancelAfter(ep.Endpoint.TimeoutMs);
        try
        {
            using var msg = new HttpRequestMessage(HttpMethod.Post, ep.Uri) { Version = HttpVersion.Version11, Content = new ByteArrayContent(body) };
            msg.Content.Headers.TryAddWithoutValidation("Content-Type", "application/json");
            msg.Headers.TryAddWithoutValidation("X-Request-Id", requestId);
            RequestSigning.Apply(msg, ep.Key, _config.CallerId, body);
            using var resp = await ep.Http.SendAsync(msg, HttpCompletionOption.ResponseContentRead, cts.Token);
            var bytes = await resp.Content.ReadAsByteArrayAsync(cts.Token);
            if (!resp.IsSuccessStatusCode)
                return Done(PartyOutcome.Failed, $"HTTP {(int)resp.StatusCode}: {ErrorText(bytes)}");
            return ParsePartyResponse(party, modelId, version, ids, bytes, masked, out var results, out var coverage) is { } bad
                ? Done(PartyOutcome.Failed, "invalid response: " + bad)
                : Done(PartyOutcome.Ok, null, results, coverage);
        }
        catch (OperationCanceledException) when (!aborted.IsCancellationRequested)
        {
            return Done(PartyOutcome.Timeout, $"no answer within {ep.Endpoint.TimeoutMs} ms");
        }
        catch (HttpRequestException e)
        {
            return Done(PartyOutcome.Failed, "unreachable: " + e.Message);
        }
    }

    static string ErrorText(byte[] body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.String) return e.GetString()!;
        }
        catch (JsonException) { }
        var s = System.Text.Encoding.UTF8.GetString(body);
        return s.Length > 200 ? s[..200] : s;
    }

    /// <summary>Checks a party's answer fits the question (party, model, version, the same samples in order, finite scores); returns what is wrong, or null.</summary>
    /// <param name="masked">The version is masked here: an ok sample must carry <c>masked</c> ring elements; clear
    /// <c>scores</c> are refused (the party and this registry disagree), and vice versa.</param>
    static string? ParsePartyResponse(string party, string modelId, int version, string[] ids, byte[] bytes, bool masked, out PartySampleResult[]? results, out string? coverage)
    {
        results = null; coverage = null;
        try
        {
            using var doc = JsonDocument.Parse(bytes);
            var r = doc.RootElement;
            if (r.GetProperty("party").GetString() != party) return $"answer is from party '{r.GetProperty("party").GetString()}'";
            if (r.GetProperty("model_id").GetString() != modelId || r.GetProperty("version").GetInt32() != version)
                return $"answer is for model '{r.GetProperty("model_id").GetString()}' v{r.GetProperty("version").GetInt32()}, asked v{version}";
            var outputs = r.GetProperty("outputs").GetInt32();
            var arr = r.GetProperty("results");
            if (arr.GetArrayLength() != ids.Length) return $"{arr.GetArrayLength()} results for {ids.Length} samples";
            var list = new PartySampleResult[ids.Length];
            var i = 0;
            foreach (var x in arr.EnumerateArray())
            {
                var id = x.GetProperty("sample_id").GetString();
                if (id != ids[i]) return $"result {i} is for sample '{id}', expected '{ids[i]}'";
                var status = x.GetProperty("status").GetString()!;
                double[]? scores = null; string[]? missing = null; long[]? ringValues = null;
                if (status == SampleStatus.Ok && (masked || x.TryGetProperty("masked", out _)))
                {
                    if (!masked) return $"sample '{id}': masked values, but model '{modelId}' v{version} is not masked here";
                    if (x.TryGetProperty("scores", out _) || !x.TryGetProperty("masked", out var me)) return $"sample '{id}': clear scores for masked model '{modelId}' v{version}";
                    if (me.GetArrayLength() != outputs) return $"sample '{id}': {me.GetArrayLength()} masked values, {outputs} outputs";
                    ringValues = me.EnumerateArray().Select(v => v.GetInt64()).ToArray();
                }
                else if (status == SampleStatus.Ok)
                {
                    var se = x.GetProperty("scores");
                    if (se.GetArrayLength() != outputs) return $"sample '{id}': {se.GetArrayLength()} scores, {outputs} outputs";
                    scores = new double[outputs];
                    var c = 0;
                    foreach (var v in se.EnumerateArray())
                        if (!double.IsFinite(scores[c++] = v.GetDouble())) return $"sample '{id}': non-finite score";
                }
                else if (status == SampleStatus.FeaturesMissing)
                    missing = x.TryGetProperty("missing_features", out var mf) ? mf.EnumerateArray().Select(m => m.GetString()!).ToArray() : [];
                else if (status is not (SampleStatus.NotFound or SampleStatus.NotScored)) return $"sample '{id}': unknown status '{status}'";
                list[i++] = new PartySampleResult(id!, status, scores, missing, ringValues);
            }
            results = list;
            if (r.TryGetProperty("coverage", out var cov)) coverage = cov.GetRawText();
            return null;
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            return e.Message;
        }
    }

    /// <summary>
    /// Writes the records and waits for Redis to acknowledge each one, so the answer says truthfully which predictions
    /// are cached (<c>cached</c>) and a caller that reads right after gets them. A write that fails, or is not
    /// acknowledged within its share of the budget (<see cref="WriteBudgetMs"/> / <see cref="WriteAttempts"/>: e.g. a
    /// cluster master that died and whose replica is not promoted yet), is sent again: the same bytes under the same
    /// key, so a repeat, or the original landing late, is harmless. Still failing at the end of the budget: its flag stays false.
    /// </summary>
    async Task WriteCache(List<(int Index, PredictionRecord Record)> records, bool[] cached, string requestId)
    {
        var db = Redis;
        var pending = records.Select(r => (r.Index, Key: (RedisKey)PredictionKeys.Record(r.Record.ModelId, r.Record.Version, r.Record.SampleId), Value: (RedisValue)r.Record.ToJson())).ToList();
        string? error = null;
        for (var attempt = 1; pending.Count > 0; attempt++)
        {
            var writes = new Task<bool>[pending.Count];
            for (var j = 0; j < pending.Count; j++)
            {
                try { writes[j] = db.StringSetAsync(pending[j].Key, pending[j].Value, _ttl); }
                catch (Exception e) when (e is RedisException or TimeoutException) { writes[j] = Task.FromException<bool>(e); }
            }
            var deadline = Task.Delay(WriteBudgetMs / WriteAttempts);
            var failed = new List<(int, RedisKey, RedisValue)>();
            for (var j = 0; j < writes.Length; j++)
            {
                if (await Task.WhenAny(writes[j], deadline) != writes[j]) { error = "not acknowledged in time"; failed.Add(pending[j]); continue; }
                try { cached[pending[j].Index] = await writes[j]; }
                catch (Exception e) when (e is RedisException or TimeoutException) { error = e.Message; failed.Add(pending[j]); }
            }
            pending = failed;
            if (pending.Count == 0 || attempt == WriteAttempts) break;
            _cacheWriteRetries.Inc(pending.Count);
        }
        if (pending.Count == 0) return;
        _cacheErrors.Inc();
        Log.Write(LogLevel.Warning, "cache write failed", ("request_id", requestId), ("error", error));
    }

    internal const int WriteAttempts = 4, WriteBudgetMs = 3000;

    async Task Lookup(HttpContext ctx, string modelId, string sampleId)
    {
        Identifiers.ModelId(modelId);
        SampleIds.Check(sampleId);
        int version;
        if (ctx.Request.Query.TryGetValue("version", out var vq))
            version = int.TryParse(vq.ToString(), out var v) && v >= 1 ? v : throw new BadInputException("'version' must be an integer >= 1");
        else version = Models.ActiveVersion(modelId);
        var key = PredictionKeys.Record(modelId, version, sampleId);
        NearCache.Ticket ticket = default;
        if (_near != null)
        {
            var near = _near.TryGet(key);
            (near != null ? _nearHits : _nearMisses).Inc();
            if (near != null)
            {
                _cacheHits.Inc();
                await ResponseBody.SendAsync(ctx.Response, near);
                return;
            }
            ticket = _near.Take(key); // before the GET: an invalidation from now on voids what it returns
        }
        RedisValue value;
        try { value = await Redis.StringGetAsync(key); }
        catch (RedisException e) { throw new FedFailureException("prediction cache unavailable: " + e.Message, e); }
        (value.HasValue ? _cacheHits : _cacheMisses).Inc();
        if (value.HasValue)
        {
            var bytes = (byte[])value!;
            _near?.Put(key, bytes, ticket);
            await ResponseBody.SendAsync(ctx.Response, bytes); // the stored record is the answer, byte for byte
            return;
        }
        using var body = new ResponseBody(512);
        using (var w = body.Json())
        {
            w.WriteStartObject();
            w.WriteString("status", "not_found");
            w.WriteString("model_id", modelId);
            w.WriteNumber("version", version);
            w.WriteString("sample_id", sampleId);
            w.WriteString("error", "no cached or batch-loaded prediction for this sample and version; POST /v1/predict computes one");
            w.WriteEndObject();
        }
        await body.SendAsync(ctx.Response, 404);
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        _near?.Dispose();
        foreach (var p in _parties.Values) p.Http.Dispose();
        _redis.Dispose();
        _pool.Dispose();
    }
}
