using System.Diagnostics;
using Fed.Core.Scoring;
using StackExchange.Redis;

namespace Fed.Streaming.Tests;

/// <summary>Workers running in-process on their own threads (the kill/restart test uses child processes instead).</summary>
public sealed class Running : IDisposable
{
    readonly CancellationTokenSource _cts = new();
    readonly Thread _thread;
    Exception? _error;
    public StreamMetrics Metrics { get; }
    public StringWriter Log { get; } = new();

    Running(Action<CancellationToken> run, StreamMetrics metrics)
    {
        Metrics = metrics;
        _thread = new Thread(() => { try { run(_cts.Token); } catch (Exception e) { _error = e; } }) { IsBackground = true };
        _thread.Start();
    }

    public static Running Party(PartyConfig cfg)
    {
        var log = TextWriter.Synchronized(new StringWriter());
        var w = new PartyWorker(cfg, log);
        return new Running(ct => { using (w) w.Run(ct); }, w.Metrics);
    }

    public static Running Initiator(InitiatorConfig cfg)
    {
        var log = TextWriter.Synchronized(new StringWriter());
        var w = new InitiatorWorker(cfg, log);
        return new Running(ct => { using (w) w.Run(ct); }, w.Metrics);
    }

    public void Stop()
    {
        _cts.Cancel();
        if (!_thread.Join(TimeSpan.FromSeconds(30))) throw new TimeoutException("worker did not stop within 30 s");
        if (_error != null) throw new InvalidOperationException("worker failed: " + _error, _error);
    }

    public void Dispose() { if (_thread.IsAlive) Stop(); }
}

public static class RedisCheck
{
    /// <summary>Waits until every key exists; returns the values.</summary>
    public static Dictionary<string, string> WaitAll(IDatabase db, IReadOnlyList<string> keys, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            RedisValue[] values;
            try { values = Fed.Core.Redis.RedisStore.GetManyAsync(db, keys.Select(k => (RedisKey)k).ToArray()).GetAwaiter().GetResult(); } // per slot on a cluster
            catch (Exception e) when (e is RedisException or TimeoutException && sw.Elapsed < timeout) { Thread.Sleep(200); continue; } // e.g. Redis paused by the test
            var missing = values.Count(v => !v.HasValue);
            if (missing == 0) return keys.Zip(values).ToDictionary(p => p.First, p => (string)p.Second!);
            if (sw.Elapsed > timeout) throw new TimeoutException($"{missing} of {keys.Count} keys absent after {timeout.TotalSeconds} s, e.g. {keys.Zip(values).First(p => !p.Second.HasValue).First}");
            Thread.Sleep(100);
        }
    }

    public static void AssertBitIdentical(Prediction expected, PredictionRecord actual, string sampleId)
    {
        Assert.True(BitConverter.DoubleToInt64Bits(expected.Value) == BitConverter.DoubleToInt64Bits(actual.PredictValue),
            $"sample {sampleId}: streamed prediction {actual.PredictValue:R} differs from direct scoring {expected.Value:R}");
    }
}
