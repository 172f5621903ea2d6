using System.Collections.Concurrent;
using System.Diagnostics;
using Confluent.Kafka;
using Fed.Core;

namespace Fed.Streaming;

/// <summary>
/// Produces a worker's outputs without waiting in the loop: each batch's messages belong to one ticket, sealed with
/// the input offsets the batch consumed; <see cref="Completed"/> hands back those offsets once every message of the
/// ticket is acknowledged by the broker. A failed delivery is produced again with backoff and keeps its ticket open.
/// So the next batch is read while this one is in flight, and offsets are still released only after delivery.
/// At most <see cref="MaxInFlight"/> tickets are open (bounded memory); then the worker waits.
/// </summary>
public sealed class BatchProducer : IDisposable
{
    /// <summary>Open tickets (batches) before <see cref="WaitForRoom"/> blocks.</summary>
    public const int MaxInFlight = 8;

    public sealed class Ticket
    {
        internal int Pending; // produced and not yet acknowledged
        public readonly List<(TopicPartition Tp, long Offset)> Offsets = new();
        /// <summary>Stopwatch timestamp when the ticket was opened (for the batch latency metric).</summary>
        public long Started = Stopwatch.GetTimestamp();
    }

    readonly IProducer<string?, byte[]> _producer;
    readonly List<Ticket> _inFlight = new();
    readonly ConcurrentQueue<(Ticket Ticket, string Topic, Message<string?, byte[]> Msg, string Error)> _failed = new();
    readonly TextWriter? _log;
    readonly int _timeoutMs;
    Ticket _open = new();
    long _retryAt;
    int _backoff = InitialBackoffMs;
    const int InitialBackoffMs = 50, MaxBackoffMs = 5000;

    public BatchProducer(ProducerConfig config, TextWriter? log, int timeoutMs)
    {
        KafkaNative.Ensure();
        _log = log;
        _timeoutMs = timeoutMs;
        _producer = new ProducerBuilder<string?, byte[]>(config)
            .SetErrorHandler((_, e) => { if (e.IsFatal || e.Code != ErrorCode.Local_AllBrokersDown) log?.WriteLine($"fed stream: kafka producer: {e.Reason}"); })
            .SetLogHandler((_, m) => { if (m.Level <= SyslogLevel.Warning) log?.WriteLine($"fed stream: librdkafka: {Fed.Core.Security.Secrets.Redact(m.Message)}"); })
            .Build();
    }

    /// <summary>The ticket the next <see cref="Add"/> and input offsets belong to.</summary>
    public Ticket Open => _open;

    public int InFlight => _inFlight.Count;

    /// <summary>Produces now (librdkafka batches by linger.ms); the message belongs to the open ticket.</summary>
    public void Add(string topic, string? key, byte[] value) => Produce(_open, topic, new Message<string?, byte[]> { Key = key, Value = value });

    /// <summary>Closes the open ticket (its messages and offsets are complete) and opens the next.</summary>
    public void Seal()
    {
        _inFlight.Add(_open);
        _open = new Ticket();
    }

    /// <summary>Re-produces failed deliveries when their backoff is over; returns the tickets now fully delivered.</summary>
    public List<Ticket>? Completed()
    {
        RetryFailed();
        List<Ticket>? done = null;
        for (var i = 0; i < _inFlight.Count; i++)
        {
            if (Volatile.Read(ref _inFlight[i].Pending) != 0) continue;
            (done ??= new()).Add(_inFlight[i]);
            _inFlight.RemoveAt(i--);
        }
        if (done != null && _failed.IsEmpty) _backoff = InitialBackoffMs;
        return done;
    }

    /// <summary>Waits while <see cref="MaxInFlight"/> tickets are open (broker slow or down); false if cancelled meanwhile.</summary>
    public bool WaitForRoom(Action<List<Ticket>> release, CancellationToken ct)
    {
        var waitingSince = Stopwatch.GetTimestamp();
        while (_inFlight.Count >= MaxInFlight)
        {
            if (Completed() is { } done) { release(done); continue; }
            if (ct.WaitHandle.WaitOne(1)) return false;
            if (Stopwatch.GetElapsedTime(waitingSince).TotalMilliseconds >= _timeoutMs)
            {
                _log?.WriteLine($"fed stream: {_inFlight.Sum(t => Volatile.Read(ref t.Pending))} message(s) not yet delivered, waiting (broker down?)");
                waitingSince = Stopwatch.GetTimestamp();
            }
        }
        return true;
    }

    /// <summary>Shutdown: waits up to <paramref name="timeout"/> for the open tickets, releasing those delivered.</summary>
    public void Drain(Action<List<Ticket>> release, TimeSpan timeout)
    {
        if (_open.Offsets.Count > 0 || Volatile.Read(ref _open.Pending) > 0) Seal();
        var sw = Stopwatch.StartNew();
        while (true)
        {
            if (Completed() is { } done) release(done);
            if (_inFlight.Count == 0 || sw.Elapsed >= timeout) return;
            _producer.Flush(TimeSpan.FromMilliseconds(Math.Min(100, Math.Max(1, (timeout - sw.Elapsed).TotalMilliseconds))));
        }
    }

    void RetryFailed()
    {
        if (_failed.IsEmpty || Environment.TickCount64 < _retryAt) return;
        var n = 0;
        string? error = null;
        while (_failed.TryDequeue(out var f))
        {
            Produce(f.Ticket, f.Topic, f.Msg, countNew: false);
            n++;
            error = f.Error;
        }
        _log?.WriteLine($"fed stream: {n} message(s) failed delivery ({error}); produced again, next retry after {_backoff} ms");
        _retryAt = Environment.TickCount64 + _backoff;
        _backoff = Math.Min(_backoff * 2, MaxBackoffMs);
    }

    void Produce(Ticket ticket, string topic, Message<string?, byte[]> msg, bool countNew = true)
    {
        if (countNew) Interlocked.Increment(ref ticket.Pending);
        while (true)
        {
            try
            {
                // The report arrives on the producer's poll thread: a failure is retried by the worker (RetryFailed).
                _producer.Produce(topic, msg, r =>
                {
                    if (r.Error.IsError) _failed.Enqueue((ticket, topic, msg, r.Error.Reason));
                    else Interlocked.Decrement(ref ticket.Pending);
                });
                return;
            }
            catch (ProduceException<string?, byte[]> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
            {
                _producer.Poll(TimeSpan.FromMilliseconds(10)); // backpressure from the local queue
            }
            catch (ProduceException<string?, byte[]> e)
            {
                throw new FedFailureException($"cannot produce to '{topic}': {e.Error.Reason}", e);
            }
        }
    }

    public void Dispose()
    {
        // Shutdown already drained within its bound; what is left is uncommitted and replayed, so do not wait long.
        try { _producer.Flush(TimeSpan.FromSeconds(1)); } catch (KafkaException) { }
        _producer.Dispose();
    }
}
