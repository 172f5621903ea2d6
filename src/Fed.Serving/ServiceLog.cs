using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Fed.Core.Security;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;

namespace Fed.Serving;

/// <summary>
/// A service's structured log: Microsoft.Extensions.Logging, every line written by its JSON console formatter, one
/// object per line: <c>{"Timestamp","EventId","LogLevel","Category":service,"Message","State":{fields...}}</c>.
/// Targets: <c>stdout</c> / <c>stderr</c> (the console logger provider), <c>none</c>, or <c>file:PATH</c> (appended,
/// created 0600; the same formatter, lines handed to a background writer). Either way a request thread only formats
/// its line and queues it; when 65,536 lines are waiting, new ones are dropped (console: the provider says how many).
/// Text values pass <see cref="Secrets.Redact"/>: a message quoting a connection string never writes its password.
/// </summary>
public sealed class ServiceLog : IAsyncDisposable
{
    const int QueueLines = 65536;
    readonly ServiceProvider? _services;
    readonly ILoggerFactory? _factory;
    readonly FileLogProvider? _file;
    readonly ILogger _log;

    // The per-request line: typed fields (no boxing until the formatter writes them), one delegate per level.
    const string RequestFormat = "request {request_id} {caller} {method} {route} {status} {duration_ms}";
    static readonly EventId RequestEvent = new(1, "request");
    static readonly Action<ILogger, string, string, string, string, int, double, Exception?> RequestInfo =
        LoggerMessage.Define<string, string, string, string, int, double>(LogLevel.Information, RequestEvent, RequestFormat);
    static readonly Action<ILogger, string, string, string, string, int, double, Exception?> RequestWarning =
        LoggerMessage.Define<string, string, string, string, int, double>(LogLevel.Warning, RequestEvent, RequestFormat);
    static readonly Action<ILogger, string, string, string, string, int, double, Exception?> RequestError =
        LoggerMessage.Define<string, string, string, string, int, double>(LogLevel.Error, RequestEvent, RequestFormat);

    public ServiceLog(string service, string target)
    {
        var file = target.StartsWith("file:", StringComparison.Ordinal) ? target[5..] : null;
        if (target is not ("stdout" or "stderr") && file is null)
        {
            _log = NullLogger.Instance;
            return;
        }
        var sc = new ServiceCollection();
        sc.AddLogging(b => b.SetMinimumLevel(LogLevel.Information).AddJsonConsole(o =>
        {
            o.UseUtcTimestamp = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
            o.JsonWriterOptions = new JsonWriterOptions { Indented = false };
        }));
        sc.Configure<ConsoleLoggerOptions>(o =>
        {
            o.LogToStandardErrorThreshold = target == "stderr" ? LogLevel.Trace : LogLevel.None;
            o.MaxQueueLength = QueueLines;
            o.QueueFullMode = ConsoleLoggerQueueFullMode.DropWrite;
        });
        _services = sc.BuildServiceProvider();
        if (file is null)
        {
            _factory = _services.GetRequiredService<ILoggerFactory>();
        }
        else
        {
            // The console provider is never built here: its JSON formatter writes into the file instead.
            var json = _services.GetServices<ConsoleFormatter>().Single(f => f.Name == ConsoleFormatterNames.Json);
            _file = new FileLogProvider(json, SecretFiles.OpenAppend(file));
            _factory = new LoggerFactory([_file], new LoggerFilterOptions { MinLevel = LogLevel.Information });
        }
        _log = _factory.CreateLogger(service);
    }

    public bool Enabled => _log.IsEnabled(LogLevel.Information);
    /// <summary>Lines dropped because the file writer was too far behind (console targets: the provider logs its count).</summary>
    public long Dropped => _file?.Dropped ?? 0;

    /// <summary>The per-request line (the hot path).</summary>
    public void Request(LogLevel level, string requestId, string caller, string method, string route, int status, double durationMs)
    {
        var line = level >= LogLevel.Error ? RequestError : level == LogLevel.Warning ? RequestWarning : RequestInfo;
        line(_log, requestId, caller, method, route, status, Math.Round(durationMs, 3), null);
    }

    /// <summary>An event line: <paramref name="msg"/> and fields, text redacted.</summary>
    public void Write(LogLevel level, string msg, params (string Key, object? Value)[] fields)
    {
        if (!_log.IsEnabled(level)) return;
        _log.Log(level, default, new Fields(Secrets.Redact(msg), fields), null, static (s, _) => s.Message);
    }

    /// <summary>The state of an event line: the JSON formatter writes its fields under "State", its text as "Message".</summary>
    sealed class Fields : IReadOnlyList<KeyValuePair<string, object?>>
    {
        readonly KeyValuePair<string, object?>[] _items;

        public Fields(string message, (string Key, object? Value)[] fields)
        {
            Message = message;
            _items = new KeyValuePair<string, object?>[fields.Length];
            for (var i = 0; i < fields.Length; i++)
            {
                var (k, v) = fields[i];
                _items[i] = new(k, v switch
                {
                    null or int or long or bool => v,
                    double d => Math.Round(d, 3),
                    string s => Secrets.Redact(s),
                    _ => Secrets.Redact(Convert.ToString(v, CultureInfo.InvariantCulture) ?? ""),
                });
            }
        }

        public string Message { get; }
        public int Count => _items.Length;
        public KeyValuePair<string, object?> this[int index] => _items[index];
        public IEnumerator<KeyValuePair<string, object?>> GetEnumerator() => ((IEnumerable<KeyValuePair<string, object?>>)_items).GetEnumerator();
        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
        public override string ToString() => Message;
    }

    public async ValueTask DisposeAsync()
    {
        // The console provider flushes its queue when disposed; the file provider drains and closes the file.
        _factory?.Dispose();
        if (_file != null)
        {
            _file.Dispose(); // the factory does not own providers given to its constructor
            await _file.Completion;
        }
        if (_services != null) await _services.DisposeAsync();
    }
}

/// <summary>
/// Writes log lines formatted by a <see cref="ConsoleFormatter"/> (the JSON one) to a file: the library has no file
/// target. Lines are formatted on the logging thread and queued; a background task writes whole lines, batched up to
/// 64 KiB and at most every 50 ms (one system call per batch under load, not one per request).
/// </summary>
sealed class FileLogProvider : ILoggerProvider
{
    readonly ConsoleFormatter _formatter;
    readonly Channel<string> _lines = Channel.CreateBounded<string>(new BoundedChannelOptions(65536) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });
    long _dropped;

    [ThreadStatic] static StringWriter? t_writer;

    public FileLogProvider(ConsoleFormatter formatter, Stream output)
    {
        _formatter = formatter;
        Completion = Task.Run(() => Drain(output));
    }

    public Task Completion { get; }
    public long Dropped => Interlocked.Read(ref _dropped);

    public ILogger CreateLogger(string categoryName) => new FileLogger(this, categoryName);

    void Write<TState>(in LogEntry<TState> entry)
    {
        var w = t_writer ??= new StringWriter(CultureInfo.InvariantCulture);
        var sb = w.GetStringBuilder();
        sb.Clear();
        _formatter.Write(in entry, null, w);
        if (sb.Length == 0) return;
        if (!_lines.Writer.TryWrite(sb.ToString())) Interlocked.Increment(ref _dropped);
    }

    static readonly TimeSpan FlushInterval = TimeSpan.FromMilliseconds(50);

    async Task Drain(Stream output)
    {
        var batch = new byte[64 * 1024];
        var len = 0;
        try
        {
            while (await _lines.Reader.WaitToReadAsync())
            {
                while (_lines.Reader.TryRead(out var line))
                {
                    var n = Encoding.UTF8.GetMaxByteCount(line.Length) <= batch.Length - len ? -1 : Encoding.UTF8.GetByteCount(line);
                    if (n > batch.Length - len) { await output.WriteAsync(batch.AsMemory(0, len)); len = 0; }
                    if (n > batch.Length) await output.WriteAsync(Encoding.UTF8.GetBytes(line));
                    else len += Encoding.UTF8.GetBytes(line, 0, line.Length, batch, len);
                }
                if (len > 0) { await output.WriteAsync(batch.AsMemory(0, len)); len = 0; }
                await output.FlushAsync();
                // Let lines gather: under load one write per interval, instead of a wake-up and a write per request.
                await Task.Delay(FlushInterval);
            }
        }
        finally
        {
            await output.DisposeAsync();
        }
    }

    public void Dispose() => _lines.Writer.TryComplete();

    sealed class FileLogger(FileLogProvider provider, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel)) return;
            provider.Write(new LogEntry<TState>(logLevel, category, eventId, state, exception, formatter));
        }
    }
}
