using Confluent.Kafka;
using Fed.Core;

namespace Fed.Streaming;

/// <summary>
/// Produces a batch of messages and waits until every one of them is acknowledged by the broker;
/// failed deliveries are produced again with backoff until they succeed or the worker is cancelled.
/// A worker releases its input offsets only after <see cref="FlushAll"/> returned true.
/// </summary>
public sealed class BatchProducer : IDisposable
{
    readonly IProducer<string?, byte[]> _producer;
    readonly List<(string Topic, Message<string?, byte[]> Msg)> _batch = new();
    readonly List<(string Topic, Message<string?, byte[]> Msg)> _failed = new();
    readonly TextWriter? _log;
    readonly int _timeoutMs;
    string? _lastError;

    public BatchProducer(ProducerConfig config, TextWriter? log, int timeoutMs)
    {
        KafkaNative.Ensure();
        _log = log;
        _timeoutMs = timeoutMs;
        _producer = new ProducerBuilder<string?, byte[]>(config)
            .SetErrorHandler((_, e) => { if (e.IsFatal || e.Code != ErrorCode.Local_AllBrokersDown) log?.WriteLine($"fed stream: kafka producer: {e.Reason}"); })
            .SetLogHandler((_, m) => { if (m.Level <= SyslogLevel.Warning) log?.WriteLine($"fed stream: librdkafka: {m.Message}"); })
            .Build();
    }

    public int Count => _batch.Count;

    public void Add(string topic, string? key, byte[] value) => _batch.Add((topic, new Message<string?, byte[]> { Key = key, Value = value }));

    /// <summary>Produces the batch; returns false only when cancelled before every message was delivered.</summary>
    public bool FlushAll(CancellationToken ct)
    {
        var pending = new List<(string, Message<string?, byte[]>)>(_batch);
        _batch.Clear();
        var backoff = 50;
        while (pending.Count > 0)
        {
            _failed.Clear();
            foreach (var (topic, msg) in pending) ProduceOne(topic, msg);
            var left = _producer.Flush(TimeSpan.FromMilliseconds(_timeoutMs));
            if (left > 0)
            {
                // Undelivered within the timeout: they will still be retried by librdkafka; wait for their reports.
                while (_producer.Flush(TimeSpan.FromMilliseconds(_timeoutMs)) > 0)
                {
                    _log?.WriteLine($"fed stream: {left} message(s) not yet delivered, waiting (broker down?)");
                    if (ct.IsCancellationRequested) return false;
                }
            }
            List<(string, Message<string?, byte[]>)> again;
            lock (_failed) again = new(_failed);
            if (again.Count == 0) return true;
            _log?.WriteLine($"fed stream: {again.Count} message(s) failed delivery ({_lastError}); retrying in {backoff} ms");
            if (ct.WaitHandle.WaitOne(backoff)) return false;
            backoff = Math.Min(backoff * 2, 5000);
            pending = again;
        }
        return true;
    }

    void ProduceOne(string topic, Message<string?, byte[]> msg)
    {
        while (true)
        {
            try
            {
                _producer.Produce(topic, msg, r =>
                {
                    if (r.Error.IsError)
                        lock (_failed) { _failed.Add((topic, msg)); _lastError = r.Error.Reason; }
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
        try { _producer.Flush(TimeSpan.FromSeconds(5)); } catch (KafkaException) { }
        _producer.Dispose();
    }
}
