using System.Diagnostics;
using Confluent.Kafka;

namespace Fed.Streaming;

/// <summary>What the party and the initiator share: the consumer, batching, offset storing, metrics, shutdown.</summary>
public abstract class WorkerBase : IDisposable
{
    protected readonly IConsumer<string?, byte[]> Consumer;
    protected readonly BatchProducer Producer;
    protected readonly OffsetTracker Offsets = new();
    protected readonly TextWriter? Log;
    readonly StreamConfigBase _config;
    readonly Stopwatch _metricsClock = Stopwatch.StartNew();
    protected readonly List<ConsumeResult<string?, byte[]>> Batch = new();
    List<TopicPartition> _assignment = new();
    bool _paused;

    public StreamMetrics Metrics { get; }

    protected WorkerBase(StreamConfigBase config, StreamMetrics metrics, TextWriter? log)
    {
        KafkaNative.Ensure();
        _config = config;
        Metrics = metrics;
        Log = log;
        Producer = new BatchProducer(config.BuildProducerConfig(), log, config.ProduceTimeoutMs);
        Consumer = new ConsumerBuilder<string?, byte[]>(config.BuildConsumerConfig())
            .SetErrorHandler((_, e) => { if (e.IsFatal || e.Code != ErrorCode.Local_AllBrokersDown) log?.WriteLine($"fed stream: kafka consumer: {e.Reason}"); })
            .SetLogHandler((_, m) => { if (m.Level <= SyslogLevel.Warning) log?.WriteLine($"fed stream: librdkafka: {Fed.Core.Security.Secrets.Redact(m.Message)}"); })
            .SetPartitionsAssignedHandler((_, parts) =>
            {
                _assignment = parts.ToList();
                log?.WriteLine($"fed stream: {Metrics.Role} assigned {string.Join(", ", parts.Select(p => $"{p.Topic}[{p.Partition.Value}]"))}");
                _paused = false;
            })
            .SetPartitionsRevokedHandler((c, parts) =>
            {
                var tps = parts.Select(p => p.TopicPartition).ToList();
                OnRevoked(tps);
                StoreAdvanced();
                try { c.Commit(); } catch (KafkaException) { /* nothing stored, or the group is gone: replay is safe */ }
                Offsets.Forget(tps);
                _assignment = _assignment.Except(tps).ToList();
            })
            .Build();
    }

    /// <summary>Called when partitions are taken away: drop state built from them (their offsets are not committed).</summary>
    protected virtual void OnRevoked(IReadOnlyList<TopicPartition> partitions) { }

    /// <summary>Reads up to batch_size messages, waiting at most batch_wait_ms once the first arrived (up to 100 ms for the first).</summary>
    protected void ConsumeBatch(CancellationToken ct)
    {
        Batch.Clear();
        // Short waits while batches are in flight, so their offsets are released soon after delivery.
        var first = Consumer.Consume(_paused ? 10 : Producer.InFlight > 0 ? 5 : 100);
        if (first is null) return;
        Batch.Add(first);
        var until = Stopwatch.GetTimestamp() + _config.BatchWaitMs * Stopwatch.Frequency / 1000;
        while (Batch.Count < _config.BatchSize && !ct.IsCancellationRequested)
        {
            var r = Consumer.Consume(0);
            if (r is null)
            {
                if (Stopwatch.GetTimestamp() >= until) break;
                r = Consumer.Consume(1);
                if (r is null) continue;
            }
            Batch.Add(r);
        }
    }

    /// <summary>Pauses or resumes consumption of every assigned partition (backpressure), keeping the group membership.</summary>
    protected void SetPaused(bool pause)
    {
        if (pause == _paused || _assignment.Count == 0) return;
        if (pause) { Consumer.Pause(_assignment); Interlocked.Increment(ref Metrics.Paused); }
        else Consumer.Resume(_assignment);
        _paused = pause;
    }

    protected bool IsPaused => _paused;

    /// <summary>Releases the offsets of every batch whose outputs the broker acknowledged, and stores them.</summary>
    protected void ReleaseDelivered()
    {
        if (Producer.Completed() is { } done) Release(done);
        StoreAdvanced();
    }

    /// <summary>Closes the batch in hand (its outputs are produced, its offsets listed in the ticket) without waiting
    /// for delivery, unless too many batches are in flight. False if cancelled while waiting.</summary>
    protected bool SealBatch(CancellationToken ct)
    {
        Producer.Seal();
        return Producer.WaitForRoom(Release, ct);
    }

    void Release(List<BatchProducer.Ticket> delivered)
    {
        foreach (var t in delivered)
        {
            foreach (var (tp, o) in t.Offsets) Offsets.Done(tp, o);
            OnDelivered(t);
        }
    }

    /// <summary>Called for each batch whose outputs were all acknowledged (before its offsets are stored).</summary>
    protected virtual void OnDelivered(BatchProducer.Ticket ticket) { }

    /// <summary>Stores (for the periodic commit) every offset that moved forward.</summary>
    protected void StoreAdvanced()
    {
        foreach (var tpo in Offsets.Advance())
        {
            try { Consumer.StoreOffset(tpo); }
            catch (KafkaException e) when (e.Error.Code is ErrorCode.Local_State or ErrorCode.Local_UnknownPartition)
            {
                // The partition was revoked meanwhile; its new owner replays from the committed offset.
            }
        }
    }

    protected void MaybeEmitMetrics(bool force = false)
    {
        var interval = _config.MetricsIntervalMs;
        if (!force && (interval == 0 || _metricsClock.ElapsedMilliseconds < interval)) return;
        _metricsClock.Restart();
        long lag = 0;
        foreach (var tp in _assignment)
        {
            try
            {
                var w = Consumer.GetWatermarkOffsets(tp);
                var pos = Consumer.Position(tp);
                if (w.High != Offset.Unset && pos != Offset.Unset) lag += Math.Max(0, w.High.Value - pos.Value);
                else if (w.High != Offset.Unset) lag += w.High.Value;
            }
            catch (KafkaException) { }
        }
        Interlocked.Exchange(ref Metrics.Lag, lag);
        Metrics.Emit(Log, _config.MetricsFile);
    }

    /// <summary>True once the worker stopped having delivered its work in flight and committed its offsets.</summary>
    public bool StoppedCleanly { get; private set; }

    /// <summary>
    /// Graceful stop within shutdown_timeout_ms (the run loop has already stopped consuming): wait for the batches in
    /// flight to be acknowledged, store their offsets, commit, leave the group. A quarter of the budget (at most 2 s)
    /// is kept for the commit and the leave. A batch still undelivered at the deadline is not committed: replayed later.
    /// </summary>
    protected void Shutdown()
    {
        var sw = Stopwatch.StartNew();
        var limit = _config.ShutdownTimeoutMs;
        Producer.Drain(Release, TimeSpan.FromMilliseconds(limit - Math.Min(2000, limit / 4)));
        var undelivered = Producer.InFlight;
        StoreAdvanced();
        var committed = true;
        try { Consumer.Commit(); } catch (KafkaException e) when (e.Error.Code == ErrorCode.Local_NoOffset) { }
        catch (KafkaException e)
        {
            committed = false;
            Log?.WriteLine($"fed stream: final commit failed ({e.Error.Reason}); uncommitted messages will be replayed");
        }
        MaybeEmitMetrics(force: true);
        Consumer.Close();
        StoppedCleanly = undelivered == 0 && committed;
        Log?.WriteLine(undelivered == 0
            ? $"fed stream: {Metrics.Role} stopped in {sw.ElapsedMilliseconds} ms: work in flight drained, offsets {(committed ? "committed" : "NOT committed")}"
            : $"fed stream: {Metrics.Role} stopped in {sw.ElapsedMilliseconds} ms with {undelivered} batch(es) undelivered; their messages are not committed and will be replayed");
    }

    protected static double Ms(long fromTimestamp) => (Stopwatch.GetTimestamp() - fromTimestamp) * 1000.0 / Stopwatch.Frequency;

    protected void DeadLetter(ConsumeResult<string?, byte[]> m, string source, string reason, string error)
    {
        Producer.Add(_config.DeadLetterTopic, m.Message.Key,
            OutputMessages.DeadLetter(source, reason, error, m.Topic, m.Partition.Value, m.Offset.Value, m.Message.Key));
        Interlocked.Increment(ref Metrics.DeadLetters);
    }

    public virtual void Dispose()
    {
        Consumer.Dispose();
        Producer.Dispose();
    }
}
