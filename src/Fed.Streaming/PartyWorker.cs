using System.Diagnostics;
using Confluent.Kafka;
using Fed.Core;
using Fed.Core.Scoring;
using Fed.Warehouse;

namespace Fed.Streaming;

/// <summary>
/// A party's streaming scorer: consumes feature events, scores every requested model with its active version
/// through <see cref="PartialScorer"/> (the one scorer), and produces partial scores to the initiator's topic keyed by
/// request id. The registry is polled every registry_poll_ms: a newly activated version is loaded and used from the
/// next event on, without stopping; an event is scored entirely with the version current when it is processed.
/// Offsets are stored only after the batch's partial scores and dead letters were acknowledged by the broker.
/// </summary>
public sealed class PartyWorker : WorkerBase
{
    readonly PartyConfig _config;
    readonly IWarehouse _warehouse;
    readonly ModelRegistry _registry;
    readonly Dictionary<string, Slot> _models = new(StringComparer.Ordinal);
    readonly Dictionary<string, (long Until, string Error)> _unknown = new(StringComparer.Ordinal);
    readonly Stopwatch _pollClock = Stopwatch.StartNew();

    sealed class Slot(ScoringModel model)
    {
        public readonly ScoringModel Model = model;
        public readonly PartialScorer Scorer = new(model);
        public readonly double[] Features = new double[model.FeatureCount];
        public readonly double[] Scores = new double[model.OutputCount];
        public readonly string[] Columns = model.Columns;
    }

    public PartyWorker(PartyConfig config, TextWriter? log = null)
        : base(config, new StreamMetrics("party", config.Party), log)
    {
        config.Check();
        _config = config;
        _warehouse = WarehouseFactory.Open(config.Warehouse);
        _registry = new ModelRegistry(_warehouse);
    }

    /// <summary>Runs until cancelled; then commits what is done and leaves the group.</summary>
    public void Run(CancellationToken ct)
    {
        Consumer.Subscribe(_config.InputTopic);
        Log?.WriteLine($"fed stream party '{_config.Party}': {_config.InputTopic} -> {_config.PartialsTopic} (dead letters: {_config.DeadLetterTopic})");
        try
        {
            while (!ct.IsCancellationRequested)
            {
                if (_pollClock.ElapsedMilliseconds >= _config.RegistryPollMs) { PollRegistry(); _pollClock.Restart(); }
                MaybeEmitMetrics();
                ReleaseDelivered();
                var t0 = Stopwatch.GetTimestamp();
                ConsumeBatch(ct);
                if (Batch.Count == 0) continue;
                var t1 = Stopwatch.GetTimestamp();
                Producer.Open.Started = t1;
                var offsets = Producer.Open.Offsets;
                foreach (var m in Batch)
                {
                    Offsets.Begin(m.TopicPartition, m.Offset.Value);
                    offsets.Add((m.TopicPartition, m.Offset.Value));
                    Handle(m);
                }
                Interlocked.Add(ref Metrics.EventsIn, Batch.Count);
                var t2 = Stopwatch.GetTimestamp();
                // Offsets are released when the broker acknowledged the batch's outputs (ReleaseDelivered).
                if (!SealBatch(ct)) break;
                var t3 = Stopwatch.GetTimestamp();
                Metrics.AddStage("consume", (t1 - t0) * 1000.0 / Stopwatch.Frequency);
                Metrics.AddStage("score", (t2 - t1) * 1000.0 / Stopwatch.Frequency);
                Metrics.AddStage("wait_delivery", (t3 - t2) * 1000.0 / Stopwatch.Frequency);
            }
        }
        finally
        {
            Shutdown();
        }
    }

    /// <summary>Batch latency: first message of the batch in hand to every output acknowledged.</summary>
    protected override void OnDelivered(BatchProducer.Ticket ticket) => Metrics.Latency.Record(Ms(ticket.Started));

    void Handle(ConsumeResult<string?, byte[]> m)
    {
        FeatureEvent e;
        try { e = FeatureEvent.Parse(m.Message.Value ?? []); }
        catch (MalformedMessageException x) { DeadLetter(m, "party:" + _config.Party, x.Reason, x.Message); return; }
        foreach (var modelId in e.ModelIds)
        {
            try
            {
                var slot = Get(modelId);
                var model = slot.Model;
                for (var f = 0; f < slot.Features.Length; f++)
                    slot.Features[f] = e.Features.TryGetValue(model.Features[f], out var v) ? v
                        : e.Features.TryGetValue(slot.Columns[f], out v) ? v : double.NaN;
                slot.Scorer.ScoreRow(slot.Features, slot.Scores);
                var msg = new PartialScoreMessage
                {
                    RequestId = e.EventId, ModelId = model.ModelId, Version = model.Version, Party = _config.Party,
                    SampleId = e.SampleId, Scores = (double[])slot.Scores.Clone(), EventTime = e.EventTime, Checksum = model.Checksum,
                };
                Producer.Add(_config.PartialsTopic, e.EventId, msg.ToJson());
                Interlocked.Increment(ref Metrics.EventsOut);
            }
            catch (UnknownModelException x) { DeadLetter(m, "party:" + _config.Party, "unknown_model", x.Message); }
            catch (MissingFeatureException x) { DeadLetter(m, "party:" + _config.Party, "missing_feature", x.Message); }
        }
    }

    Slot Get(string modelId)
    {
        if (_models.TryGetValue(modelId, out var s)) return s;
        if (_unknown.TryGetValue(modelId, out var u) && Environment.TickCount64 < u.Until) throw new UnknownModelException(u.Error);
        try
        {
            var model = _registry.Load(modelId, _config.Party);
            s = new Slot(model);
            _models[modelId] = s;
            _unknown.Remove(modelId);
            lock (Metrics.ActiveVersions) Metrics.ActiveVersions[modelId] = $"v{model.Version}";
            Log?.WriteLine($"fed stream party '{_config.Party}': model '{modelId}' v{model.Version} loaded ({model.FeatureCount} features)");
            return s;
        }
        catch (UnknownModelException x)
        {
            // Remember for one poll period, so a flood of events for an unknown model does not hammer the warehouse.
            _unknown[modelId] = (Environment.TickCount64 + _config.RegistryPollMs, x.Message);
            throw;
        }
    }

    /// <summary>Swaps in a newly activated version of every loaded model; the next event uses it.</summary>
    void PollRegistry()
    {
        foreach (var (modelId, slot) in _models.ToList())
        {
            try
            {
                var entry = _registry.Resolve(modelId, _config.Party);
                if (entry.Version == slot.Model.Version && entry.Checksum == slot.Model.Checksum) continue;
                var model = _registry.Load(modelId, _config.Party, entry.Version);
                _models[modelId] = new Slot(model);
                Interlocked.Increment(ref Metrics.ModelSwitches);
                lock (Metrics.ActiveVersions) Metrics.ActiveVersions[modelId] = $"v{model.Version}";
                Log?.WriteLine($"fed stream party '{_config.Party}': model '{modelId}' now v{model.Version} (was v{slot.Model.Version})");
            }
            catch (UnknownModelException x)
            {
                _models.Remove(modelId);
                lock (Metrics.ActiveVersions) Metrics.ActiveVersions.Remove(modelId);
                Log?.WriteLine($"fed stream party '{_config.Party}': model '{modelId}' no longer scorable: {x.Message}");
            }
            catch (FedException x)
            {
                Log?.WriteLine($"fed stream party '{_config.Party}': registry poll failed, keeping v{slot.Model.Version} of '{modelId}': {x.Message}");
            }
        }
    }

    public override void Dispose()
    {
        base.Dispose();
        _warehouse.Dispose();
    }
}
