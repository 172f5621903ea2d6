using System.Buffers;
using System.Diagnostics;
using System.Text.Json;
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

    sealed class Slot
    {
        public readonly ScoringModel Model;
        public readonly PartialScorer Scorer;
        public readonly double[] Features;
        public readonly double[] Scores;
        /// <summary>Event feature name -> model feature index when it is the feature's name, and when it is its column name.</summary>
        readonly Dictionary<string, (int Name, int Column)>.AlternateLookup<ReadOnlySpan<char>> _index;
        readonly byte[] _given; // per feature: 0 absent, 1 given under its column name, 2 under its name (wins)

        public Slot(ScoringModel model)
        {
            Model = model;
            Scorer = new PartialScorer(model);
            Features = new double[model.FeatureCount];
            Scores = new double[model.OutputCount];
            _given = new byte[model.FeatureCount];
            var index = new Dictionary<string, (int Name, int Column)>(StringComparer.Ordinal);
            for (var f = 0; f < model.FeatureCount; f++) index[model.Features[f]] = (f, -1);
            for (var f = 0; f < model.FeatureCount; f++) index[model.Columns[f]] = (index.TryGetValue(model.Columns[f], out var ix) ? ix.Name : -1, f);
            _index = index.GetAlternateLookup<ReadOnlySpan<char>>();
        }

        /// <summary>The event's values in model order; a feature is looked up by its name, else its column name; NaN if absent.</summary>
        public void Fill(FeatureEventReader e)
        {
            Array.Fill(Features, double.NaN);
            Array.Clear(_given);
            for (var i = 0; i < e.FeatureCount; i++)
            {
                if (!_index.TryGetValue(e.FeatureName(i), out var ix)) continue;
                var v = e.FeatureValue(i);
                if (ix.Name >= 0) { Features[ix.Name] = v; _given[ix.Name] = 2; }
                if (ix.Column >= 0 && _given[ix.Column] < 2) { Features[ix.Column] = v; _given[ix.Column] = 1; }
            }
        }
    }

    readonly FeatureEventReader _event = new();
    readonly ArrayBufferWriter<byte> _json = new(512);
    readonly Utf8JsonWriter _writer;

    public PartyWorker(PartyConfig config, TextWriter? log = null)
        : base(config, new StreamMetrics("party", config.Party), log)
    {
        config.Check();
        _config = config;
        _warehouse = WarehouseFactory.Open(config.Warehouse);
        _registry = new ModelRegistry(_warehouse);
        _writer = new Utf8JsonWriter(_json);
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
        var e = _event;
        try { e.Read(m.Message.Value ?? []); }
        catch (MalformedMessageException x) { DeadLetter(m, "party:" + _config.Party, x.Reason, x.Message); return; }
        foreach (var modelId in e.ModelIds)
        {
            try
            {
                var slot = Get(modelId);
                var model = slot.Model;
                slot.Fill(e);
                slot.Scorer.ScoreRow(slot.Features, slot.Scores);
                _json.ResetWrittenCount();
                _writer.Reset(_json);
                PartialScoreMessage.Write(_writer, e.EventId, model.ModelId, model.Version, _config.Party, e.SampleId, slot.Scores, e.EventTime, model.Checksum);
                Producer.Add(_config.PartialsTopic, e.EventId, PartSignature.Sign(_json.WrittenSpan, _config.Key));
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
        _writer.Dispose();
        _warehouse.Dispose();
    }
}
