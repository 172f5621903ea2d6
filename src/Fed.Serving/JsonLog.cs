using System.Text;
using System.Text.Json;
using System.Threading.Channels;

namespace Fed.Serving;

/// <summary>
/// Structured logs: one JSON object per line ({"ts","level","service","msg",...fields}), written by a background
/// task so a slow terminal never slows a request. Fields carry the request id, caller, route, status and latency.
/// </summary>
public sealed class JsonLog : IAsyncDisposable
{
    readonly Channel<string>? _lines;
    readonly Task? _writer;
    readonly string _service;

    public JsonLog(string service, string target)
    {
        _service = service;
        TextWriter? w = target switch { "stdout" => Console.Out, "stderr" => Console.Error, _ => null };
        if (w is null) return;
        _lines = Channel.CreateBounded<string>(new BoundedChannelOptions(65536) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });
        _writer = Task.Run(async () =>
        {
            await foreach (var line in _lines.Reader.ReadAllAsync())
            {
                w.WriteLine(line);
                if (_lines.Reader.Count == 0) w.Flush();
            }
        });
    }

    public bool Enabled => _lines != null;

    public void Write(string level, string msg, params (string Key, object? Value)[] fields)
    {
        if (_lines is null) return;
        using var ms = new MemoryStream(256);
        using (var j = new Utf8JsonWriter(ms))
        {
            j.WriteStartObject();
            j.WriteString("ts", DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ"));
            j.WriteString("level", level);
            j.WriteString("service", _service);
            j.WriteString("msg", msg);
            foreach (var (k, v) in fields)
            {
                switch (v)
                {
                    case null: j.WriteNull(k); break;
                    case string s: j.WriteString(k, s); break;
                    case int i: j.WriteNumber(k, i); break;
                    case long l: j.WriteNumber(k, l); break;
                    case double d: j.WriteNumber(k, Math.Round(d, 3)); break;
                    case bool b: j.WriteBoolean(k, b); break;
                    default: j.WriteString(k, v.ToString()); break;
                }
            }
            j.WriteEndObject();
        }
        _lines.Writer.TryWrite(Encoding.UTF8.GetString(ms.GetBuffer(), 0, (int)ms.Length));
    }

    public async ValueTask DisposeAsync()
    {
        if (_lines is null) return;
        _lines.Writer.TryComplete();
        await _writer!;
    }
}
