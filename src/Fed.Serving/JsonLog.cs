using System.Buffers;
using System.Text.Json;
using System.Threading.Channels;

namespace Fed.Serving;

/// <summary>
/// Structured logs: one JSON object per line ({"ts","level","service","msg",...fields}), written by a background
/// task so a slow terminal or disk never slows a request. Fields carry the request id, caller, route, status and latency.
/// Cheap on the request path: each line is encoded once into a per-thread buffer (no boxing, no intermediate string)
/// and handed over as UTF-8 bytes; the writer wakes at most every 50 ms, so a line costs no wake-up or system call on the
/// request path. When the writer falls 65,536 lines behind, new lines are dropped and counted.
/// Targets: stdout, stderr, none, or file:PATH (appended; created with mode 0600).
/// </summary>
public sealed class JsonLog : IAsyncDisposable
{
    readonly Channel<byte[]>? _lines;
    readonly Task? _writer;
    readonly string _service;
    long _dropped;

    [ThreadStatic] static ArrayBufferWriter<byte>? t_buffer;
    [ThreadStatic] static Utf8JsonWriter? t_json;

    public JsonLog(string service, string target)
    {
        _service = service;
        var (stream, owned) = target switch
        {
            "stdout" => (Console.OpenStandardOutput(), false),
            "stderr" => (Console.OpenStandardError(), false),
            _ when target.StartsWith("file:", StringComparison.Ordinal) =>
                ((Stream)Fed.Core.Security.SecretFiles.OpenAppend(target[5..]), true),
            _ => ((Stream?)null, false),
        };
        if (stream is null) return;
        _lines = Channel.CreateBounded<byte[]>(new BoundedChannelOptions(65536) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });
        _writer = Task.Run(() => Drain(_lines.Reader, stream, owned));
    }

    static readonly TimeSpan FlushInterval = TimeSpan.FromMilliseconds(50);

    /// <summary>Writes whole lines only (batched up to 64 KiB), so lines never interleave with another writer's.</summary>
    static async Task Drain(ChannelReader<byte[]> lines, Stream output, bool owned)
    {
        var batch = new byte[64 * 1024];
        var len = 0;
        try
        {
            while (await lines.WaitToReadAsync())
            {
                while (lines.TryRead(out var line))
                {
                    if (len + line.Length > batch.Length) { await output.WriteAsync(batch.AsMemory(0, len)); len = 0; }
                    if (line.Length > batch.Length) await output.WriteAsync(line);
                    else { line.CopyTo(batch, len); len += line.Length; }
                }
                if (len > 0) { await output.WriteAsync(batch.AsMemory(0, len)); len = 0; }
                await output.FlushAsync();
                // Let lines gather: under load one write per interval, instead of a wake-up and a write per request.
                await Task.Delay(FlushInterval);
            }
        }
        finally
        {
            if (owned) await output.DisposeAsync();
        }
    }

    public bool Enabled => _lines != null;
    /// <summary>Lines dropped because the writer was too far behind.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>The per-request line (the hot path: typed fields, nothing boxed).</summary>
    public void Request(string level, string requestId, string caller, string method, string route, int status, double durationMs)
    {
        if (_lines is null) return;
        var j = Begin(level, "request");
        j.WriteString("request_id", requestId);
        j.WriteString("caller", caller);
        j.WriteString("method", method);
        j.WriteString("route", route);
        j.WriteNumber("status", status);
        j.WriteNumber("duration_ms", Math.Round(durationMs, 3));
        End(j);
    }

    /// <summary>An event line. Text values pass <see cref="Fed.Core.Security.Secrets.Redact"/>: an error message quoting a
    /// connection string never writes its password.</summary>
    public void Write(string level, string msg, params (string Key, object? Value)[] fields)
    {
        if (_lines is null) return;
        var j = Begin(level, msg);
        foreach (var (k, v) in fields)
        {
            switch (v)
            {
                case null: j.WriteNull(k); break;
                case string s: j.WriteString(k, Fed.Core.Security.Secrets.Redact(s)); break;
                case int i: j.WriteNumber(k, i); break;
                case long l: j.WriteNumber(k, l); break;
                case double d: j.WriteNumber(k, Math.Round(d, 3)); break;
                case bool b: j.WriteBoolean(k, b); break;
                default: j.WriteString(k, Fed.Core.Security.Secrets.Redact(v.ToString())); break;
            }
        }
        End(j);
    }

    Utf8JsonWriter Begin(string level, string msg)
    {
        var buf = t_buffer ??= new ArrayBufferWriter<byte>(512);
        buf.ResetWrittenCount();
        var j = t_json ??= new Utf8JsonWriter(buf);
        j.Reset(buf);
        j.WriteStartObject();
        Span<char> ts = stackalloc char[24];
        DateTime.UtcNow.TryFormat(ts, out var n, "yyyy-MM-ddTHH:mm:ss.fffZ");
        j.WriteString("ts", ts[..n]);
        j.WriteString("level", level);
        j.WriteString("service", _service);
        j.WriteString("msg", msg);
        return j;
    }

    void End(Utf8JsonWriter j)
    {
        j.WriteEndObject();
        j.Flush();
        var written = t_buffer!.WrittenSpan;
        var line = new byte[written.Length + 1];
        written.CopyTo(line);
        line[^1] = (byte)'\n';
        if (!_lines!.Writer.TryWrite(line)) Interlocked.Increment(ref _dropped);
    }

    public async ValueTask DisposeAsync()
    {
        if (_lines is null) return;
        _lines.Writer.TryComplete();
        await _writer!;
    }
}
