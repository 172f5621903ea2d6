using System.Diagnostics;
using System.Globalization;
using Confluent.Kafka;
using Fed.Core;
using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.Warehouse;
using StackExchange.Redis;

namespace Fed.Streaming;

/// <summary>
/// The initiator: joins the parties' partial scores per (request id, model id, version) within window_ms,
/// combines a complete set through <see cref="Combiner"/> (the one combiner), writes the prediction to Redis
/// (<see cref="PredictionRecord"/>) and publishes a final-score event. A request still incomplete when its window
/// expires gets an explicit incomplete record naming the missing parties (Redis key fed:incomplete:..., and an event
/// on the status topic), never a score. A partial message's offset is released only once the prediction or the
/// incomplete record is in Redis and the events are acknowledged by the broker; replays write the same bytes.
/// </summary>
public sealed class InitiatorWorker : WorkerBase
{
    readonly InitiatorConfig _config;
    readonly IWarehouse _warehouse;
    readonly ModelRegistry _registry;
    readonly ConnectionMultiplexer _redis;
    readonly IDatabase _db;
    readonly TimeSpan? _ttl;
    readonly Dictionary<(string, string, int), Join> _open = new();
    readonly Queue<Join> _byDeadline = new();
    readonly Dictionary<(string, int), (ModelSignature? Sig, long Until, string? Error)> _signatures = new();
    readonly List<Join> _ready = new();
    readonly List<Join> _expired = new();
    readonly List<(TopicPartition, long)> _releaseAfterFlush = new();
    readonly PartialScoreReader _partials = new();

    sealed class Join
    {
        public required string RequestId;
        public required string ModelId;
        public required int Version;
        public required string SampleId;
        public required string EventTime;
        public required ModelSignature Signature;
        public required long Deadline;
        public readonly Dictionary<string, double[]> Parts = new(StringComparer.Ordinal);
        public readonly List<(TopicPartition Tp, long Offset)> Offsets = new(2);
        public bool Closed;
        public Prediction Prediction;
        public string? Value;
    }

    public InitiatorWorker(InitiatorConfig config, TextWriter? log = null)
        : base(config, new StreamMetrics("initiator"), log)
    {
        config.Check();
        _config = config;
        _warehouse = WarehouseFactory.Open(config.Warehouse);
        _registry = new ModelRegistry(_warehouse);
        var options = ConfigurationOptions.Parse(config.Redis);
        options.AbortOnConnectFail = false; // start even when Redis is down; writes retry with backoff
        _redis = ConnectionMultiplexer.Connect(options);
        _db = _redis.GetDatabase();
        _ttl = config.PredictionTtlSeconds > 0 ? TimeSpan.FromSeconds(config.PredictionTtlSeconds) : null;
    }

    public void Run(CancellationToken ct)
    {
        Consumer.Subscribe(_config.PartialsTopic);
        Log?.WriteLine($"fed stream initiator: {_config.PartialsTopic} -> redis + {_config.ScoresTopic} (incomplete: {_config.StatusTopic}, dead letters: {_config.DeadLetterTopic}), window {_config.WindowMs} ms");
        try
        {
            while (!ct.IsCancellationRequested)
            {
                MaybeEmitMetrics();
                ReleaseDelivered();
                // Backpressure: too many requests waiting for their parties -> stop reading until windows close.
                SetPaused(_open.Count >= _config.MaxOpenJoins);
                var t0 = Stopwatch.GetTimestamp();
                ConsumeBatch(ct);
                var t1 = Stopwatch.GetTimestamp();
                foreach (var m in Batch)
                {
                    Offsets.Begin(m.TopicPartition, m.Offset.Value);
                    Handle(m);
                }
                Interlocked.Add(ref Metrics.EventsIn, Batch.Count);
                Expire();
                Interlocked.Exchange(ref Metrics.OpenJoins, _open.Count);
                if (_open.Count > Interlocked.Read(ref Metrics.PeakOpenJoins)) Interlocked.Exchange(ref Metrics.PeakOpenJoins, _open.Count);
                var t2 = Stopwatch.GetTimestamp();
                if (_ready.Count > 0 || _expired.Count > 0)
                    if (!WriteRedis(ct)) break;
                var t3 = Stopwatch.GetTimestamp();
                // The batch's offsets are released once Redis holds its records (above) and the broker acknowledged its events.
                var offsets = Producer.Open.Offsets;
                foreach (var j in _ready)
                {
                    Producer.Add(_config.ScoresTopic, j.RequestId, OutputMessages.Scored(j.Value!));
                    offsets.AddRange(j.Offsets);
                }
                foreach (var j in _expired)
                {
                    if (j.Value is not null) Producer.Add(_config.StatusTopic, j.RequestId, System.Text.Encoding.UTF8.GetBytes(j.Value));
                    offsets.AddRange(j.Offsets);
                }
                offsets.AddRange(_releaseAfterFlush);
                Interlocked.Add(ref Metrics.EventsOut, _ready.Count);
                _ready.Clear();
                _expired.Clear();
                _releaseAfterFlush.Clear();
                var t4 = Stopwatch.GetTimestamp();
                if (offsets.Count > 0 && !SealBatch(ct)) break;
                var t5 = Stopwatch.GetTimestamp();
                Metrics.AddStage("consume", (t1 - t0) * 1000.0 / Stopwatch.Frequency);
                Metrics.AddStage("join_combine", (t2 - t1) * 1000.0 / Stopwatch.Frequency);
                Metrics.AddStage("redis", (t3 - t2) * 1000.0 / Stopwatch.Frequency);
                Metrics.AddStage("produce", (t4 - t3) * 1000.0 / Stopwatch.Frequency);
                Metrics.AddStage("wait_delivery", (t5 - t4) * 1000.0 / Stopwatch.Frequency);
            }
        }
        finally
        {
            Shutdown();
        }
    }

    void Handle(ConsumeResult<string?, byte[]> m)
    {
        PartialScoreMessage p;
        ModelSignature sig;
        try
        {
            var value = m.Message.Value ?? [];
            p = _partials.Read(value);
            // Authenticate before anything else is believed: the party named must have signed every member.
            if (!PartSignature.IsSigned(value))
                throw new MalformedMessageException("unsigned", $"partial score naming party '{p.Party}' carries no mac");
            if (!_config.Keys.TryGetValue(p.Party, out var partyKey))
                throw new MalformedMessageException("unknown_party", $"no key for party '{p.Party}' in party_keys");
            if (!PartSignature.Verify(value, partyKey))
                throw new MalformedMessageException("bad_signature", $"partial score naming party '{p.Party}' fails that party's HMAC: forged, altered or signed with another key");
            sig = Signature(p.ModelId, p.Version);
            if (Array.IndexOf(sig.Parties, p.Party) < 0)
                throw new MalformedMessageException("bad_partial", $"model '{p.ModelId}' v{p.Version} has no party '{p.Party}' (parties: {string.Join(", ", sig.Parties)})");
            if (p.Scores.Length != sig.OutputCount)
                throw new MalformedMessageException("bad_partial", $"party '{p.Party}' sent {p.Scores.Length} score(s); model '{p.ModelId}' v{p.Version} has {sig.OutputCount} output(s)");
        }
        catch (MalformedMessageException x) { Reject(m, x.Reason, x.Message); return; }
        catch (UnknownModelException x) { Reject(m, "unknown_model", x.Message); return; }

        var key = (p.RequestId, p.ModelId, p.Version);
        if (!_open.TryGetValue(key, out var j))
        {
            j = new Join
            {
                RequestId = p.RequestId, ModelId = p.ModelId, Version = p.Version, SampleId = p.SampleId, EventTime = p.EventTime,
                Signature = sig, Deadline = Environment.TickCount64 + _config.WindowMs,
            };
            _open[key] = j;
            _byDeadline.Enqueue(j);
        }
        if (j.Parts.TryGetValue(p.Party, out var had))
        {
            if (had.AsSpan().SequenceEqual(p.Scores))
            {
                Interlocked.Increment(ref Metrics.Duplicates); // a replayed partial: nothing new
                _releaseAfterFlush.Add((m.TopicPartition, m.Offset.Value));
            }
            else Reject(m, "conflicting_partial", $"party '{p.Party}' sent different scores for request '{p.RequestId}', model '{p.ModelId}' v{p.Version}");
            return;
        }
        if (p.SampleId != j.SampleId)
        {
            Reject(m, "bad_partial", $"party '{p.Party}' names sample '{p.SampleId}' for request '{p.RequestId}', another party named '{j.SampleId}'");
            return;
        }
        j.Parts[p.Party] = p.Scores;
        j.Offsets.Add((m.TopicPartition, m.Offset.Value));
        if (j.Parts.Count < sig.Parties.Length) return;
        _open.Remove(key);
        j.Closed = true;
        j.Prediction = Combiner.Combine(sig, j.Parts, j.SampleId);
        j.Value = StreamRecords.Prediction(sig, j.SampleId, j.RequestId, j.Prediction, j.EventTime).ToJson();
        _ready.Add(j);
    }

    void Reject(ConsumeResult<string?, byte[]> m, string reason, string error)
    {
        DeadLetter(m, "initiator", reason, error);
        _releaseAfterFlush.Add((m.TopicPartition, m.Offset.Value));
    }

    void Expire()
    {
        var now = Environment.TickCount64;
        while (_byDeadline.Count > 0 && _byDeadline.Peek().Deadline <= now)
        {
            var j = _byDeadline.Dequeue();
            if (j.Closed) continue;
            j.Closed = true;
            _open.Remove((j.RequestId, j.ModelId, j.Version));
            _expired.Add(j);
        }
    }

    ModelSignature Signature(string modelId, int version)
    {
        var now = Environment.TickCount64;
        if (_signatures.TryGetValue((modelId, version), out var c) && (c.Sig is not null || now < c.Until))
            return c.Sig ?? throw new UnknownModelException(c.Error!);
        try
        {
            Identifiers.ModelId(modelId);
            var entries = _registry.List(modelId).Where(e => e.Version == version).ToList();
            if (entries.Count == 0)
                throw new UnknownModelException($"model '{modelId}' v{version} is not in the initiator's registry ({_warehouse.Description}); export it with 'fed convert'");
            var e = entries[0];
            if (!PartialModel.TryParseKind(e.Kind, out var kind)) throw new UnknownModelException($"model '{modelId}' v{version}: unknown kind '{e.Kind}'");
            var sig = new ModelSignature(modelId, version, kind, e.Classes, e.Parties);
            _signatures[(modelId, version)] = (sig, 0, null);
            return sig;
        }
        catch (BadInputException x) when (x is not UnknownModelException)
        {
            throw new UnknownModelException(x.Message);
        }
        catch (UnknownModelException x)
        {
            _signatures[(modelId, version)] = (null, now + 1000, x.Message);
            throw;
        }
    }

    /// <summary>
    /// Writes the batch's predictions and incomplete records, retrying with backoff (and consumption paused) while
    /// Redis fails. An expired request whose prediction is already in Redis (a replay after a restart, or a duplicate
    /// partial) gets no incomplete record. Returns false if cancelled before the writes succeeded.
    /// </summary>
    bool WriteRedis(CancellationToken ct)
    {
        var backoff = _config.RedisRetryInitialMs;
        var wasPaused = IsPaused;
        while (true)
        {
            try
            {
                // 1. Expired requests: skip those that were in fact scored (same event id) earlier.
                var checks = _expired.Where(j => j.Value is null)
                    .Select(j => (j, _db.StringGetAsync(PredictionKeys.Record(j.ModelId, j.Version, j.SampleId)))).ToList();
                if (checks.Count > 0) Wait(checks.Select(c => (Task)c.Item2));
                foreach (var (j, t) in checks)
                {
                    var existing = t.Result;
                    if (existing.HasValue && SameEvent(existing!, j.RequestId))
                    {
                        j.Value = null;
                        j.Closed = true;
                        Interlocked.Increment(ref Metrics.Duplicates);
                        continue;
                    }
                    var missing = j.Signature.Parties.Where(p => !j.Parts.ContainsKey(p)).ToList();
                    var arrived = j.Signature.Parties.Where(j.Parts.ContainsKey).ToList();
                    j.Value = OutputMessages.Incomplete(j.RequestId, j.ModelId, j.Version, j.SampleId, arrived, missing, _config.WindowMs, j.EventTime);
                }
                // 2. Writes, pipelined.
                var writes = new List<Task>(_ready.Count + _expired.Count);
                foreach (var j in _ready)
                    writes.Add(_db.StringSetAsync(PredictionKeys.Record(j.ModelId, j.Version, j.SampleId), j.Value, _ttl, When.Always));
                foreach (var j in _expired)
                    if (j.Value is not null)
                        writes.Add(_db.StringSetAsync(StreamRecords.IncompleteKey(j.ModelId, j.Version, j.SampleId), j.Value, _ttl, When.Always));
                Wait(writes);
                var now = DateTime.UtcNow;
                foreach (var j in _ready)
                    if (DateTime.TryParse(j.EventTime, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var et))
                        Metrics.Latency.Record((now - et).TotalMilliseconds);
                var incomplete = _expired.Count(j => j.Value is not null);
                Interlocked.Add(ref Metrics.Incomplete, incomplete);
                SetPaused(wasPaused);
                return true;
            }
            catch (Exception e) when (e is RedisException or TimeoutException or AggregateException)
            {
                Interlocked.Increment(ref Metrics.RedisRetries);
                Log?.WriteLine($"fed stream initiator: redis write failed ({Fed.Core.Security.Secrets.Redact(e is AggregateException a ? a.InnerException?.Message : e.Message)}); retrying in {backoff} ms, consumption paused");
                SetPaused(true);
                var until = Environment.TickCount64 + backoff;
                while (Environment.TickCount64 < until)
                {
                    if (ct.IsCancellationRequested) return false;
                    Consumer.Consume(Math.Max(1, (int)Math.Min(100, until - Environment.TickCount64))); // keeps the group membership; paused: returns nothing
                }
                backoff = Math.Min(backoff * 2, _config.RedisRetryMaxMs);
            }
        }
    }

    static bool SameEvent(string value, string requestId)
    {
        try { return PredictionRecord.Parse(value, "").EventId == requestId; }
        catch (FedException) { return false; }
    }

    void Wait(IEnumerable<Task> tasks)
    {
        var all = Task.WhenAll(tasks);
        if (!all.Wait(TimeSpan.FromMilliseconds(Math.Max(1000, _config.RedisRetryMaxMs))))
            throw new TimeoutException("redis did not answer in time");
    }

    protected override void OnRevoked(IReadOnlyList<TopicPartition> partitions)
    {
        // Requests with a part from a revoked partition are dropped here; the partition's new owner replays them.
        var set = partitions.ToHashSet();
        foreach (var (k, j) in _open.ToList())
            if (j.Offsets.Any(o => set.Contains(o.Tp))) { _open.Remove(k); j.Closed = true; }
    }

    public override void Dispose()
    {
        base.Dispose();
        _redis.Dispose();
        _warehouse.Dispose();
    }
}
