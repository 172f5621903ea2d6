using System.Text.Json;

namespace Fed.Streaming;

/// <summary>
/// Latency histogram with logarithmic buckets (about 4% wide) from 10 µs to ~100 s: constant memory,
/// percentiles accurate to a bucket. Thread-safe for concurrent <see cref="Record"/>.
/// </summary>
public sealed class LatencyHistogram
{
    const double Min = 0.01; // ms
    const double Growth = 1.04;
    static readonly double LogGrowth = Math.Log(Growth);
    readonly long[] _counts = new long[420];
    long _count;
    double _max;
    readonly object _maxLock = new();

    public void Record(double ms)
    {
        if (!(ms >= 0)) ms = 0;
        var i = ms <= Min ? 0 : Math.Min(_counts.Length - 1, 1 + (int)(Math.Log(ms / Min) / LogGrowth));
        Interlocked.Increment(ref _counts[i]);
        Interlocked.Increment(ref _count);
        if (ms > _max) lock (_maxLock) if (ms > _max) _max = ms;
    }

    public long Count => Interlocked.Read(ref _count);
    public double Max => _max;

    /// <summary>Upper bound of the bucket holding the p-th percentile (p in 0..100), ms.</summary>
    public double Percentile(double p)
    {
        var n = Count;
        if (n == 0) return 0;
        var rank = (long)Math.Ceiling(p / 100.0 * n);
        if (rank < 1) rank = 1;
        long seen = 0;
        for (var i = 0; i < _counts.Length; i++)
        {
            seen += Interlocked.Read(ref _counts[i]);
            if (seen >= rank) return Math.Min(_max, i == 0 ? Min : Min * Math.Pow(Growth, i));
        }
        return _max;
    }

    public void Reset()
    {
        for (var i = 0; i < _counts.Length; i++) Interlocked.Exchange(ref _counts[i], 0);
        Interlocked.Exchange(ref _count, 0);
        lock (_maxLock) _max = 0;
    }

    public Dictionary<string, object> Summary() => new()
    {
        ["count"] = Count, ["p50"] = Round(Percentile(50)), ["p90"] = Round(Percentile(90)),
        ["p99"] = Round(Percentile(99)), ["max"] = Round(Max),
    };

    static double Round(double v) => Math.Round(v, 3);
}

/// <summary>
/// Counters of one worker, written as one JSON line on stderr every metrics period
/// (<c>{"fed_stream_metrics": {...}}</c>) and, if configured, to a metrics file. See docs/streaming.md.
/// Counters are cumulative since start; latency histograms too.
/// </summary>
public sealed class StreamMetrics(string role, string? party = null)
{
    public string Role { get; } = role;
    public long EventsIn;
    public long EventsOut;
    public long DeadLetters;
    public long Duplicates;
    public long Incomplete;
    public long RedisRetries;
    public long Lag;
    public long OpenJoins;
    public long PeakOpenJoins;
    public long Paused;
    public long ModelSwitches;
    public readonly Dictionary<string, string> ActiveVersions = new();
    /// <summary>Party: consume-to-delivered time of a batch's messages. Initiator: event_time to Redis write acknowledged.</summary>
    public readonly LatencyHistogram Latency = new();
    /// <summary>Time per stage per batch (ms), to show where the time goes.</summary>
    public readonly Dictionary<string, double> StageMs = new();
    readonly DateTime _start = DateTime.UtcNow;

    public void AddStage(string stage, double ms)
    {
        lock (StageMs) StageMs[stage] = StageMs.GetValueOrDefault(stage) + ms;
    }

    public Dictionary<string, object?> Snapshot()
    {
        var d = new Dictionary<string, object?>
        {
            ["role"] = Role,
            ["party"] = party,
            ["time"] = DateTime.UtcNow.ToString("O"),
            ["uptime_s"] = Math.Round((DateTime.UtcNow - _start).TotalSeconds, 1),
            ["events_in"] = Interlocked.Read(ref EventsIn),
            ["events_out"] = Interlocked.Read(ref EventsOut),
            ["dead_letters"] = Interlocked.Read(ref DeadLetters),
            ["duplicates"] = Interlocked.Read(ref Duplicates),
            ["lag"] = Interlocked.Read(ref Lag),
            ["paused"] = Interlocked.Read(ref Paused),
            ["latency_ms"] = Latency.Summary(),
        };
        if (Role == "initiator")
        {
            d["open_joins"] = Interlocked.Read(ref OpenJoins);
            d["peak_open_joins"] = Interlocked.Read(ref PeakOpenJoins);
            d["incomplete"] = Interlocked.Read(ref Incomplete);
            d["redis_retries"] = Interlocked.Read(ref RedisRetries);
        }
        else
        {
            d["model_switches"] = Interlocked.Read(ref ModelSwitches);
            lock (ActiveVersions) d["active_versions"] = new Dictionary<string, string>(ActiveVersions);
        }
        lock (StageMs) d["stage_ms"] = StageMs.ToDictionary(p => p.Key, p => Math.Round(p.Value, 1));
        return d;
    }

    public string ToJsonLine() => JsonSerializer.Serialize(new Dictionary<string, object> { ["fed_stream_metrics"] = Snapshot() });

    /// <summary>Writes the metrics line to <paramref name="err"/> and (atomically) to <paramref name="file"/>.</summary>
    public void Emit(TextWriter? err, string? file)
    {
        var line = ToJsonLine();
        err?.WriteLine(line);
        if (file is null) return;
        try
        {
            var tmp = file + ".tmp";
            File.WriteAllText(tmp, line + "\n");
            File.Move(tmp, file, overwrite: true);
        }
        catch (IOException e) { err?.WriteLine($"fed stream: cannot write metrics file {file}: {e.Message}"); }
    }
}

/// <summary>
/// Which offsets of each partition may be committed: the lowest offset still in work, or one past the last
/// offset seen when none is. A message's offset is released with <see cref="Done"/> only once everything it caused
/// (Redis write, produced messages) is durable, so a restart replays every message whose effect could be lost.
/// </summary>
public sealed class OffsetTracker
{
    sealed class Partition
    {
        public readonly SortedSet<long> Pending = new();
        public long Next = -1; // one past the highest offset seen
        public long Stored = -1;
    }

    readonly Dictionary<Confluent.Kafka.TopicPartition, Partition> _parts = new();

    public void Begin(Confluent.Kafka.TopicPartition tp, long offset)
    {
        if (!_parts.TryGetValue(tp, out var p)) _parts[tp] = p = new Partition();
        p.Pending.Add(offset);
        if (offset + 1 > p.Next) p.Next = offset + 1;
    }

    public void Done(Confluent.Kafka.TopicPartition tp, long offset)
    {
        if (_parts.TryGetValue(tp, out var p)) p.Pending.Remove(offset);
    }

    public int PendingCount => _parts.Values.Sum(p => p.Pending.Count);

    /// <summary>Offsets that moved forward since the last call (to store for commit).</summary>
    public List<Confluent.Kafka.TopicPartitionOffset> Advance()
    {
        var list = new List<Confluent.Kafka.TopicPartitionOffset>();
        foreach (var (tp, p) in _parts)
        {
            var commit = p.Pending.Count > 0 ? p.Pending.Min : p.Next;
            if (commit > p.Stored)
            {
                p.Stored = commit;
                list.Add(new Confluent.Kafka.TopicPartitionOffset(tp, commit));
            }
        }
        return list;
    }

    public void Forget(IEnumerable<Confluent.Kafka.TopicPartition> partitions)
    {
        foreach (var tp in partitions) _parts.Remove(tp);
    }
}
