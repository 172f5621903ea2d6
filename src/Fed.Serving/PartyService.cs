using System.Text.Json;
using Fed.Core;
using Fed.Core.Scoring;
using Fed.Warehouse;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Fed.Serving;

/// <summary>A parsed, validated partial-score request.</summary>
public sealed record PartialScoreRequest(string ModelId, int? Version, string[] SampleIds, PredictionMode Mode,
    Dictionary<string, Dictionary<string, double>>? Features, string? MaskId = null);

/// <summary>One sample's answer from a party: only its partial scores (or why there are none) leave the party.</summary>
/// <summary>One sample's answer from a party: only its partial scores (or why there are none) leave the party. For a
/// masked model version the party sends <see cref="Masked"/> (fixed-point ring elements with its masks) instead of
/// <see cref="Scores"/>.</summary>
public sealed record PartySampleResult(string SampleId, string Status, double[]? Scores, string[]? MissingFeatures, long[]? Masked = null);

/// <summary>
/// The party service: <c>POST /v1/partial-scores</c>. Answers per sample with this party's partial scores
/// (constant + sum w_i x_i from <see cref="PartialScorer"/>), never with features or weights.
/// </summary>
public sealed class PartyService : ServiceHost
{
    readonly PartyConfig _config;
    readonly WarehousePool _pool;
    readonly Dictionary<string, HashSet<string>> _tableColumns = new(StringComparer.Ordinal);
    // Per model id, the feature queries (per table, hourly, id count: built once, the warehouse keeps them prepared) of
    // the last two versions requests used; see FeatureSqlOf. Not keyed by the party's active version: the initiator
    // names the version in every request and activates in its own registry, so the party's pointer may never move.
    readonly System.Collections.Concurrent.ConcurrentDictionary<string, FeatureSqlSet[]> _featureSql = new(StringComparer.Ordinal);

    /// <summary>The feature queries of one loaded model version.</summary>
    sealed class FeatureSqlSet(LoadedModel model)
    {
        public readonly LoadedModel Loaded = model;
        public long LastUsed = System.Diagnostics.Stopwatch.GetTimestamp();
        public readonly System.Collections.Concurrent.ConcurrentDictionary<(string Table, bool Hourly, int Count), string> Sql = new();
    }

    readonly OracleLimits _oracle;
    readonly MaskKeys? _maskKeys;
    readonly Prometheus.Counter _quotaRefused, _partialScores;

    public PartyService(PartyConfig config) : base(config, "party:" + config.PartyId)
    {
        _config = config;
        _quotaRefused = Metrics.Counter("fed_quota_refused_total", "Requests refused by a caller's daily quota.", "caller");
        _partialScores = Metrics.Counter("fed_partial_scores_total", "Samples answered by status.", "status");
        _oracle = new OracleLimits(config.Oracle, "audit:" + config.PartyId);
        _maskKeys = config.MaskKeys is { } mk ? MaskKeys.Read(mk) : null;
        if (_maskKeys != null && _maskKeys.Party != config.PartyId)
            throw new BadInputException($"mask_keys '{ErrorText.Cut(config.MaskKeys)}' holds the key of '{_maskKeys.Party}', not of party '{config.PartyId}'");
        _pool = new WarehousePool(config.Warehouse, config.WarehouseConnections);
        Models = new ModelCache(_pool, config.PartyId, TimeSpan.FromSeconds(config.ModelRefreshSeconds));
    }

    public ModelCache Models { get; }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        await _oracle.DisposeAsync();
        _pool.Dispose();
    }

    protected override string? NotReadyReason()
    {
        try { _pool.Use(w => w.TableExists(Schema.Registry.Name) ? 0 : throw new FedFailureException("no model registry table")); return null; }
        catch (FedException e) { return "warehouse: " + Fed.Core.Security.Secrets.Redact(e.Message); }
    }

    protected override void Map(WebApplication app)
    {
        app.MapPost("/v1/partial-scores", Handle).Allow(Access.Signed);
        AdminEndpoints.Map(app, Models, Log);
    }

    async Task Handle(HttpContext ctx)
    {
        var info = Info(ctx);
        var req = ParseRequest(info.Body, _config.MaxBatch);
        if (req.Features != null && !_config.Callers[info.Caller].InlineFeatures)
        {
            await Error(ctx, 403, $"caller '{info.Caller}' may not send inline features (callers.{info.Caller}.inline_features): " +
                "partial scores of caller-chosen feature values would reveal this party's weights", "Forbidden");
            return;
        }
        _oracle.Audit(info.Caller, info.RequestId, req.ModelId, req.Version, PredictionModes.Name(req.Mode), req.SampleIds);
        if (_oracle.Charge(info.Caller, req.SampleIds.Length) is { } over)
        {
            _quotaRefused.WithLabels(info.Caller).Inc();
            await Error(ctx, 429, over, "QuotaExceeded");
            return;
        }
        var version = req.Version ?? Models.ActiveVersion(req.ModelId);
        var lm = Models.Get(req.ModelId, version);
        var coverage = new FeatureCoverage(lm.Model.Features);
        var maskedRun = lm.Masking.Enabled || req.MaskId != null;
        if (maskedRun && await MaskCheck(lm, req) is { } bad) { await Error(ctx, 400, bad, "BadRequest"); return; }
        var results = ScoreAgreed(lm, req, coverage, _oracle.Allowed(info.Caller, req.ModelId, req.SampleIds));
        if (maskedRun) results = Mask(lm, req.MaskId!, results);
        Metrics.IncEach(_partialScores, results.Select(r => r.Status));

        using var body = new ResponseBody(256 + results.Count * 64);
        using (var w = body.Json())
        {
            w.WriteStartObject();
            w.WriteString("model_id", req.ModelId);
            w.WriteNumber("version", version);
            w.WriteString("party", _config.PartyId);
            w.WriteString("mode", PredictionModes.Name(req.Mode));
            w.WriteNumber("outputs", lm.Model.OutputCount);
            w.WriteStartArray("results");
            foreach (var r in results)
            {
                w.WriteStartObject();
                w.WriteString("sample_id", r.SampleId);
                w.WriteString("status", r.Status);
                if (r.Masked != null)
                {
                    w.WriteStartArray("masked");
                    foreach (var s in r.Masked) w.WriteNumberValue(s);
                    w.WriteEndArray();
                }
                else if (r.Scores != null)
                {
                    w.WriteStartArray("scores");
                    foreach (var s in r.Scores) w.WriteNumberValue(s);
                    w.WriteEndArray();
                }
                if (r.MissingFeatures != null)
                {
                    w.WriteStartArray("missing_features");
                    foreach (var f in r.MissingFeatures) w.WriteStringValue(f);
                    w.WriteEndArray();
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WritePropertyName("coverage");
            coverage.WriteJson(w);
            w.WriteEndObject();
        }
        await body.SendAsync(ctx.Response);
    }

    /// <summary>
    /// A masked model version needs a mask id: fresh (its time within the signature window) and never answered before
    /// for this model version (kept as long as the nonce window), so no context is ever masked twice. A mask id for an
    /// unmasked version is refused too: the parties and the initiator disagree on the registry.
    /// </summary>
    async ValueTask<string?> MaskCheck(LoadedModel lm, PartialScoreRequest req)
    {
        var sig = lm.Signature;
        if (!lm.Masking.Enabled) return $"model '{sig.ModelId}' v{sig.Version} is not masked at party '{_config.PartyId}' ('fed model masking'), but the request carries a mask_id";
        if (req.MaskId is null) return $"model '{sig.ModelId}' v{sig.Version} is masked: the request needs a 'mask_id' (a fresh one per request)";
        if (MaskIds.AgeSeconds(req.MaskId) is not { } age || Math.Abs(age) > _config.SignatureMaxAgeSeconds)
            return $"'mask_id' must be '<unix seconds>.<32 hex>' from the last {_config.SignatureMaxAgeSeconds} s";
        return await UseOnce($"mask:{sig.ModelId}:v{sig.Version}", req.MaskId) is { } used ? "'mask_id' was already used: " + used : null;
    }

    /// <summary>The ok samples' scores replaced by their masked fixed-point values (the clear scores never leave).</summary>
    IReadOnlyList<PartySampleResult> Mask(LoadedModel lm, string maskId, IReadOnlyList<PartySampleResult> results)
    {
        var ok = results.Where(r => r.Scores != null).ToArray();
        if (ok.Length == 0) return results;
        var sig = lm.Signature;
        var secrets = lm.MaskPairSecrets(_maskKeys);
        using var masker = new ScoreMasker(sig, lm.Masking, _config.PartyId, secrets, MaskContext.Request(sig.ModelId, sig.Version, maskId));
        var cols = new double[sig.OutputCount][];
        for (var c = 0; c < cols.Length; c++) cols[c] = ok.Select(r => r.Scores![c]).ToArray();
        var masked = masker.MaskBatch(ok.Select(r => r.SampleId).ToArray(), cols, ok.Length);
        var at = 0;
        return results.Select(r =>
        {
            if (r.Scores is null) return r;
            var v = new long[cols.Length];
            for (var c = 0; c < v.Length; c++) v[c] = masked[c][at];
            at++;
            return r with { Scores = null, Masked = v };
        }).ToArray();
    }

    /// <summary>
    /// With an agreed population (<paramref name="allowed"/> not null): only its samples are looked up and scored, and
    /// a sample outside it or missing here gets the one status <c>not_scored</c>, so ok vs. not found cannot reveal
    /// whether someone outside the population is this party's customer.
    /// </summary>
    IReadOnlyList<PartySampleResult> ScoreAgreed(LoadedModel lm, PartialScoreRequest req, FeatureCoverage coverage, bool[]? allowed)
    {
        if (allowed is null) return Score(lm, req, coverage);
        var inside = req.SampleIds.Where((_, i) => allowed[i]).ToArray();
        var insideSet = inside.ToHashSet(StringComparer.Ordinal);
        var scored = inside.Length == 0 ? [] : Score(lm, req with
        {
            SampleIds = inside,
            Features = req.Features?.Where(kv => insideSet.Contains(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value),
        }, coverage).ToDictionary(r => r.SampleId, StringComparer.Ordinal);
        return req.SampleIds.Select(id => scored.TryGetValue(id, out var r) && r.Status != SampleStatus.NotFound ? r
            : new PartySampleResult(id, SampleStatus.NotScored, null, null)).ToArray();
    }

    /// <summary>Scores a request (used by the endpoint; public for tests and tools).</summary>
    public IReadOnlyList<PartySampleResult> Score(LoadedModel lm, PartialScoreRequest req, FeatureCoverage coverage)
    {
        var n = req.SampleIds.Length;
        if (req.Mode == PredictionMode.Offline) return Precomputed(lm, req.SampleIds, coverage);

        var k = lm.Model.FeatureCount;
        var columns = new double[k][];
        for (var f = 0; f < k; f++) { columns[f] = new double[n]; Array.Fill(columns[f], double.NaN); }
        var found = new bool[n];
        if (req.Features != null)
        {
            var index = new Dictionary<string, int>(StringComparer.Ordinal);
            for (var f = 0; f < k; f++) { index[lm.Model.Features[f]] = f; index.TryAdd(lm.Columns[f], f); }
            for (var i = 0; i < n; i++)
            {
                if (!req.Features.TryGetValue(req.SampleIds[i], out var values)) continue;
                found[i] = true;
                foreach (var (name, v) in values)
                {
                    if (!index.TryGetValue(name, out var f))
                        throw new BadInputException($"features of sample '{req.SampleIds[i]}': model '{lm.Model.ModelId}' v{lm.Model.Version} party '{lm.Model.PartyId}' has no feature '{name}'");
                    columns[f][i] = v;
                }
            }
        }
        var table = req.Mode == PredictionMode.Hourly ? _config.HourlyFeatureTable : _config.FeatureTable;
        if (found.Contains(false))
        {
            if (table is null)
            {
                if (req.Mode == PredictionMode.Hourly)
                    throw new BadInputException($"party '{_config.PartyId}' has no hourly_feature_table configured: hourly mode is not served here");
            }
            else FetchFeatures(table, req.Mode == PredictionMode.Hourly, lm, req.SampleIds, found, columns);
        }

        // Score the found rows as one columnar batch through the one scorer.
        var rows = new List<int>(n);
        for (var i = 0; i < n; i++) if (found[i]) rows.Add(i);
        var results = new PartySampleResult[n];
        var outputs = lm.Model.OutputCount;
        if (rows.Count > 0)
        {
            var packed = rows.Count == n ? columns : columns.Select(col => rows.Select(i => col[i]).ToArray()).ToArray();
            var scores = new double[outputs][];
            for (var c = 0; c < outputs; c++) scores[c] = new double[rows.Count];
            var missing = new int[rows.Count];
            lm.Scorer.ScoreBatch(packed, rows.Count, scores, missing, coverage);
            for (var j = 0; j < rows.Count; j++)
            {
                var i = rows[j];
                if (missing[j] >= 0)
                {
                    var names = new List<string>();
                    for (var f = 0; f < k; f++) if (double.IsNaN(packed[f][j])) names.Add(lm.Model.Features[f]);
                    results[i] = new PartySampleResult(req.SampleIds[i], SampleStatus.FeaturesMissing, null, names.ToArray());
                }
                else
                {
                    var s = new double[outputs];
                    for (var c = 0; c < outputs; c++) s[c] = scores[c][j];
                    results[i] = new PartySampleResult(req.SampleIds[i], SampleStatus.Ok, s, null);
                }
            }
        }
        for (var i = 0; i < n; i++) results[i] ??= new PartySampleResult(req.SampleIds[i], SampleStatus.NotFound, null, null);
        return results;
    }

    /// <summary>Reads the newest row per sample (by dt, then hour) from a feature table into the columns.</summary>
    void FetchFeatures(string table, bool hourly, LoadedModel lm, string[] ids, bool[] found, double[][] columns)
    {
        var want = new List<int>();
        for (var i = 0; i < ids.Length; i++) if (!found[i]) want.Add(i);
        _pool.Use(w =>
        {
            var sql = FeatureSql(w, table, hourly, lm, want.Count);
            var pos = new Dictionary<string, int>(want.Count, StringComparer.Ordinal);
            foreach (var i in want) pos[ids[i]] = i;
            var newest = new Dictionary<int, string>();
            var first = hourly ? 3 : 2;
            var args = new object?[want.Count];
            for (var j = 0; j < args.Length; j++) args[j] = ids[want[j]];
            using var r = w.Query(sql, args);
            while (r.Read())
            {
                if (!pos.TryGetValue(r.GetString(0), out var i)) continue;
                var stamp = r.GetString(1) + (hourly ? "T" + r.GetString(2) : "");
                if (newest.TryGetValue(i, out var seen) && string.CompareOrdinal(seen, stamp) >= 0) continue;
                newest[i] = stamp;
                found[i] = true;
                for (var f = 0; f < columns.Length; f++) columns[f][i] = r.IsNull(first + f) ? double.NaN : r.GetDouble(first + f);
            }
            return 0;
        });
    }

    /// <summary>The query reading <paramref name="count"/> samples' features of <paramref name="lm"/> from a table;
    /// allocation-free once built.</summary>
    internal string FeatureSql(IWarehouse w, string table, bool hourly, LoadedModel lm, int count) =>
        FeatureSqlOf(lm).Sql.GetOrAdd((table, hourly, count), static (key, a) =>
        {
            var (table, hourly, count) = key;
            var d = a.w.Dialect;
            var present = a.self.TableColumns(a.w, table);
            // A column the table lacks reads as missing (NULL) for every row: the model's policy decides, coverage shows it.
            var select = string.Join(", ", a.lm.Columns.Select(c => present.Contains(c) ? d.Id(c) : "NULL"));
            return $"SELECT {d.Id("sample_id")}, {d.Id("dt")}{(hourly ? ", " + d.Id("hour") : "")}, {select} FROM {d.Id(table)} " +
                   $"WHERE {d.Id("sample_id")} IN ({string.Join(", ", Enumerable.Repeat("?", count))})";
        }, (w, self: this, lm));

    /// <summary>
    /// The feature queries of a loaded version. Per model id only the sets of the two versions requests used most
    /// recently are kept: the current one and the one before it, so requests still in flight across an activation or
    /// rollback (or from a second initiator a step behind) keep theirs. A request on another version replaces the less
    /// recently used of the two; a request on a version whose set was dropped still works, it builds its query again.
    /// So the cache holds at most two versions per model, never every version since the service started. A hit
    /// allocates nothing (one timestamp store).
    /// </summary>
    FeatureSqlSet FeatureSqlOf(LoadedModel lm)
    {
        var id = lm.Model.ModelId;
        while (true)
        {
            if (_featureSql.TryGetValue(id, out var sets))
            {
                foreach (var s in sets)
                    if (ReferenceEquals(s.Loaded, lm)) { s.LastUsed = System.Diagnostics.Stopwatch.GetTimestamp(); return s; }
                var keep = sets.Length == 1 || sets[0].LastUsed >= sets[1].LastUsed ? sets[0] : sets[1];
                var mine = new FeatureSqlSet(lm);
                if (_featureSql.TryUpdate(id, [mine, keep], sets)) return mine;
            }
            else
            {
                var mine = new FeatureSqlSet(lm);
                if (_featureSql.TryAdd(id, [mine])) return mine;
            }
        }
    }

    /// <summary>For tests: the (model id, version) pairs whose feature queries are cached.</summary>
    internal IReadOnlyList<(string ModelId, int Version)> FeatureSqlVersions() =>
        _featureSql.Values.SelectMany(sets => sets).Select(s => (s.Loaded.Model.ModelId, s.Loaded.Model.Version)).ToList();

    HashSet<string> TableColumns(IWarehouse w, string table)
    {
        lock (_tableColumns)
            if (_tableColumns.TryGetValue(table, out var cached)) return cached;
        if (!w.TableExists(table))
            throw new FedFailureException($"party '{_config.PartyId}': feature table '{table}' does not exist in {w.Description}; load features first");
        var cols = new HashSet<string>(w.Dialect.ColumnsOf(w, table), StringComparer.Ordinal);
        lock (_tableColumns) _tableColumns[table] = cols;
        return cols;
    }

    /// <summary>Offline mode: the precomputed partial scores of this model version and party in the newest dt partition.</summary>
    IReadOnlyList<PartySampleResult> Precomputed(LoadedModel lm, string[] ids, FeatureCoverage coverage)
    {
        var m = lm.Model;
        var outputs = m.OutputCount;
        var got = new Dictionary<string, double[]>(StringComparer.Ordinal);
        var filled = new Dictionary<string, int>(StringComparer.Ordinal);
        _pool.Use(w =>
        {
            var t = Schema.PartialScores(hourly: false).Name;
            if (!w.TableExists(t)) throw new FedFailureException($"party '{_config.PartyId}': no precomputed partial scores (table '{t}' missing in {w.Description}); run the batch job or use mode realtime");
            var d = w.Dialect;
            var sql = $"SELECT sample_id, class_index, partial_score FROM {d.Id(t)} WHERE model_id = ? AND version = ? AND party = ? " +
                      $"AND dt = (SELECT MAX(dt) FROM {d.Id(t)} WHERE model_id = ? AND version = ? AND party = ?) " +
                      $"AND sample_id IN ({string.Join(", ", ids.Select(_ => "?"))})";
            var args = new object?[6 + ids.Length];
            args[0] = args[3] = m.ModelId; args[1] = args[4] = m.Version; args[2] = args[5] = m.PartyId;
            for (var i = 0; i < ids.Length; i++) args[6 + i] = ids[i];
            using var r = w.Query(sql, args);
            while (r.Read())
            {
                var id = r.GetString(0);
                var c = (int)r.GetInt64(1);
                if (c < 0 || c >= outputs || r.IsNull(2)) continue;
                if (!got.TryGetValue(id, out var s)) { got[id] = s = new double[outputs]; Array.Fill(s, double.NaN); filled[id] = 0; }
                if (double.IsNaN(s[c])) filled[id]++;
                s[c] = r.GetDouble(2);
            }
            return 0;
        });
        var results = new PartySampleResult[ids.Length];
        for (var i = 0; i < ids.Length; i++)
        {
            coverage.RowsSeen++;
            if (got.TryGetValue(ids[i], out var s) && filled[ids[i]] == outputs && s.All(double.IsFinite))
            {
                coverage.RowsScored++;
                results[i] = new PartySampleResult(ids[i], SampleStatus.Ok, s, null);
            }
            else
            {
                coverage.RowsRejected++;
                results[i] = new PartySampleResult(ids[i], SampleStatus.NotFound, null, null);
            }
        }
        return results;
    }

    public static PartialScoreRequest ParseRequest(byte[] body, int maxBatch)
    {
        using var doc = ParseBody(body);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw new BadInputException("request body must be a JSON object");
        string? modelId = null; int? version = null; string[]? ids = null; string? mode = null; string? maskId = null;
        Dictionary<string, Dictionary<string, double>>? features = null;
        foreach (var p in root.EnumerateObject())
        {
            switch (p.Name)
            {
                case "model_id": modelId = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() : throw new BadInputException("'model_id' must be a string"); break;
                case "version":
                    if (p.Value.ValueKind == JsonValueKind.Null) break;
                    version = p.Value.ValueKind == JsonValueKind.Number && p.Value.TryGetInt32(out var v) && v >= 1 ? v : throw new BadInputException("'version' must be an integer >= 1");
                    break;
                case "sample_ids": ids = SampleIds.Parse(p.Value, maxBatch); break;
                case "mode": mode = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() : throw new BadInputException("'mode' must be a string"); break;
                case "features": features = Features(p.Value); break;
                case "mask_id": maskId = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() : throw new BadInputException("'mask_id' must be a string"); break;
                default: throw new BadInputException($"unknown field '{p.Name}' (expected model_id, version, sample_ids, mode, features, mask_id)");
            }
        }
        if (modelId is null) throw new BadInputException("'model_id' is required");
        Identifiers.ModelId(modelId);
        if (ids is null) throw new BadInputException("'sample_ids' is required");
        var m = PredictionModes.Parse(mode ?? throw new BadInputException("'mode' is required (realtime, hourly or offline)"));
        if (features != null && m != PredictionMode.Realtime) throw new BadInputException("inline 'features' are only accepted in realtime mode");
        if (features != null)
        {
            var set = new HashSet<string>(ids, StringComparer.Ordinal);
            foreach (var id in features.Keys)
                if (!set.Contains(id)) throw new BadInputException($"'features' has sample '{id}' that is not in 'sample_ids'");
        }
        return new PartialScoreRequest(modelId, version, ids, m, features, maskId);
    }

    static Dictionary<string, Dictionary<string, double>> Features(JsonElement el)
    {
        if (el.ValueKind != JsonValueKind.Object) throw new BadInputException("'features' must be an object {sample_id: {feature: number|null}}");
        var all = new Dictionary<string, Dictionary<string, double>>(StringComparer.Ordinal);
        foreach (var s in el.EnumerateObject())
        {
            if (s.Value.ValueKind != JsonValueKind.Object) throw new BadInputException($"features['{s.Name}'] must be an object {{feature: number|null}}");
            var values = new Dictionary<string, double>(StringComparer.Ordinal);
            foreach (var f in s.Value.EnumerateObject())
            {
                Identifiers.FeatureName(f.Name);
                values[f.Name] = f.Value.ValueKind switch
                {
                    JsonValueKind.Null => double.NaN,
                    JsonValueKind.Number when f.Value.TryGetDouble(out var d) && double.IsFinite(d) => d,
                    _ => throw new BadInputException($"features['{s.Name}']['{f.Name}'] must be a finite number or null"),
                };
            }
            all[s.Name] = values;
        }
        return all;
    }
}

/// <summary>Admin endpoints both services expose: activate a version, roll back to the previous one.</summary>
static class AdminEndpoints
{
    public static void Map(WebApplication app, ModelCache models, ServiceLog log)
    {
        app.MapPost("/v1/admin/models/{id}/activate", (HttpContext ctx, string id) => Activate(ctx, models, id, log)).Allow(Access.Admin);
        app.MapPost("/v1/admin/models/{id}/rollback", (HttpContext ctx, string id) => Rollback(ctx, models, id, log)).Allow(Access.Admin);
    }

    public static async Task Activate(HttpContext ctx, ModelCache models, string id, ServiceLog log)
    {
        Identifiers.ModelId(id);
        var body = ((RequestInfo)ctx.Items[typeof(RequestInfo)]!).Body;
        int version;
        try
        {
            using var doc = JsonDocument.Parse(body);
            version = doc.RootElement.TryGetProperty("version", out var v) && v.TryGetInt32(out var x) && x >= 1 ? x
                : throw new BadInputException("body must be {\"version\": N} with N >= 1");
        }
        catch (JsonException e) { throw new BadInputException("body must be {\"version\": N}: " + e.Message); }
        var active = models.Activate(id, version);
        log.Write(LogLevel.Information, "model activated", ("model_id", id), ("version", active));
        await ctx.Response.WriteAsJsonAsync(new { model_id = id, active_version = active });
    }

    public static async Task Rollback(HttpContext ctx, ModelCache models, string id, ServiceLog log)
    {
        Identifiers.ModelId(id);
        var active = models.Rollback(id);
        log.Write(LogLevel.Information, "model rolled back", ("model_id", id), ("version", active));
        await ctx.Response.WriteAsJsonAsync(new { model_id = id, active_version = active });
    }
}

/// <summary>Sample ids are data, but they end up in Redis keys and logs: 1-256 characters, no control characters.</summary>
public static class SampleIds
{
    public static string Check(string sampleId)
    {
        if (string.IsNullOrEmpty(sampleId) || sampleId.Length > 256 || sampleId.Any(char.IsControl))
            throw new BadInputException($"invalid sample id '{(sampleId is null ? "(null)" : sampleId.Length > 60 ? sampleId[..60] + "..." : sampleId)}': use 1-256 characters without control characters");
        return sampleId;
    }

    /// <summary>1..maxBatch distinct, valid sample ids.</summary>
    public static string[] Parse(JsonElement el, int maxBatch)
    {
        if (el.ValueKind != JsonValueKind.Array) throw new BadInputException("'sample_ids' must be an array of strings");
        var n = el.GetArrayLength();
        if (n == 0) throw new BadInputException("'sample_ids' is empty");
        if (n > maxBatch) throw new BadInputException($"'sample_ids' has {n} ids; the limit is {maxBatch} per request (max_batch): split the request");
        var ids = new string[n];
        var seen = n > 1 ? new HashSet<string>(n, StringComparer.Ordinal) : null;
        var i = 0;
        foreach (var x in el.EnumerateArray())
        {
            if (x.ValueKind != JsonValueKind.String) throw new BadInputException($"sample_ids[{i}] must be a string");
            var s = Check(x.GetString()!);
            if (seen is not null && !seen.Add(s)) throw new BadInputException($"sample id '{s}' appears twice in 'sample_ids'");
            ids[i++] = s;
        }
        return ids;
    }
}
