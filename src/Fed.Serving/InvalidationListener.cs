using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using Fed.Core;
using StackExchange.Redis;

namespace Fed.Serving;

/// <summary>
/// Redis server-assisted client-side caching, broadcast mode: one connection of its own runs
/// <c>CLIENT TRACKING ON REDIRECT &lt;its own id&gt; BCAST PREFIX &lt;prefix&gt;</c> and <c>SUBSCRIBE __redis__:invalidate</c>,
/// so Redis (6.0 or later) sends it the name of every key under the prefix that changes (SET, DEL, expiry, eviction),
/// or null when the whole keyspace is flushed. Needs no admin rights and no server-wide setting, and costs the
/// server nothing for keys outside the prefix. StackExchange.Redis cannot run it: its subscriber connection does not
/// tell its client id. When the connection drops, changes may have gone unreported: <c>down</c> runs first, then the
/// listener reconnects (100 ms .. 2 s apart) and runs <c>up</c> once tracking is on again.
/// </summary>
sealed class InvalidationListener : IDisposable
{
    const string Channel = "__redis__:invalidate";
    public const string ClientName = "fed-near-cache"; // in CLIENT LIST, so an operator can tell this connection apart

    readonly EndPoint _endpoint;
    readonly ConfigurationOptions _options;
    readonly string _prefix;
    readonly Action<string> _changed;
    readonly Action _flushed, _down, _up;
    readonly Action<string> _log;
    readonly CancellationTokenSource _stop = new();
    Resp? _conn;
    long _lastReply; // Environment.TickCount64 of the last reply on the tracking connection
    volatile bool _silent; // the heartbeat closed the connection
    internal const int PingEveryMs = 1000, DeadAfterMs = 3000;

    InvalidationListener(EndPoint endpoint, ConfigurationOptions options, string prefix, Action<string> changed, Action flushed,
        Action down, Action up, Action<string> log)
    {
        (_endpoint, _options, _prefix, _changed, _flushed, _down, _up, _log) = (endpoint, options, prefix, changed, flushed, down, up, log);
    }

    /// <summary>Connects and turns tracking on before returning (so a server that cannot do it is refused at startup), then listens.</summary>
    public static InvalidationListener Start(string redisConfig, string prefix, Action<string> changed, Action flushed, Action down, Action up, Action<string> log)
    {
        var options = ConfigurationOptions.Parse(redisConfig);
        if (options.EndPoints.Count != 1)
            throw new FedFailureException($"near_cache needs exactly one Redis endpoint to track (the primary); '{Fed.Core.Security.Secrets.Redact(redisConfig)}' has {options.EndPoints.Count}. " +
                                          "Turn near_cache off (max_entries 0) for a cluster or sentinel setup.");
        var l = new InvalidationListener(options.EndPoints[0], options, prefix, changed, flushed, down, up, log);
        try { l._conn = Task.Run(() => l.Connect(CancellationToken.None)).GetAwaiter().GetResult(); } // off the caller's context: no deadlock under one
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or RedisServerError or System.Security.Authentication.AuthenticationException)
        {
            throw new FedFailureException($"near_cache needs Redis client tracking (Redis 6.0 or later, CLIENT TRACKING allowed) on {options.EndPoints[0]}, " +
                                          $"and turning it on failed: {e.Message}. Use such a server, or turn near_cache off (max_entries 0).", e);
        }
        _ = Task.Run(l.Run);
        return l;
    }

    async Task Run()
    {
        var delay = 100;
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                _conn ??= await Connect(_stop.Token);
                _up();
                delay = 100;
                await Listen(_conn, _stop.Token);
            }
            catch (Exception e) when (!_stop.IsCancellationRequested)
            {
                _down();
                _log(_silent ? $"the tracking connection answered nothing for {DeadAfterMs} ms; reconnecting" : e.Message);
                _silent = false;
            }
            catch (Exception) { return; }
            finally
            {
                _conn?.Dispose();
                _conn = null;
            }
            try { await Task.Delay(delay, _stop.Token); } catch (OperationCanceledException) { return; }
            delay = Math.Min(2000, delay * 2);
        }
    }

    /// <summary>Connects and turns tracking on, within the Redis string's connectTimeout (at least 1 s): a server that
    /// accepts the connection and then says nothing must not stall startup or the reconnect loop.</summary>
    async Task<Resp> Connect(CancellationToken stop)
    {
        using var within = CancellationTokenSource.CreateLinkedTokenSource(stop);
        within.CancelAfter(Math.Max(1000, _options.ConnectTimeout));
        var ct = within.Token;
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        Stream stream;
        try
        {
            await socket.ConnectAsync(_endpoint, ct);
            stream = new NetworkStream(socket, ownsSocket: true);
        }
        catch { socket.Dispose(); throw; }
        try
        {
            if (_options.Ssl)
            {
                var ssl = new SslStream(stream, leaveInnerStreamOpen: false);
                var host = _options.SslHost ?? (_endpoint as DnsEndPoint)?.Host ?? (_endpoint as IPEndPoint)?.Address.ToString() ?? "";
                await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = host }, ct);
                stream = ssl;
            }
            var resp = new Resp(stream);
            if (!string.IsNullOrEmpty(_options.Password)) await resp.Call(ct, "AUTH", _options.Password);
            await resp.Call(ct, "CLIENT", "SETNAME", ClientName);
            var id = (long)(await resp.Call(ct, "CLIENT", "ID"))!;
            await resp.Call(ct, "CLIENT", "TRACKING", "ON", "REDIRECT", id.ToString(CultureInfo.InvariantCulture), "BCAST", "PREFIX", _prefix);
            await resp.Call(ct, "SUBSCRIBE", Channel); // ["subscribe", channel, 1]: from here on every change is reported
            return resp;
        }
        catch { await stream.DisposeAsync(); throw; }
    }

    async Task Listen(Resp resp, CancellationToken ct)
    {
        Volatile.Write(ref _lastReply, Environment.TickCount64);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var heartbeat = Heartbeat(resp, stop.Token);
        try
        {
            while (true)
            {
                var reply = await resp.Read(ct);
                Volatile.Write(ref _lastReply, Environment.TickCount64);
                switch (reply)
                {
                    case object?[] { Length: 3 } m when m[0] is "message": // ["message", "__redis__:invalidate", [key, ...] or null]
                        if (m[2] is object?[] keys) foreach (var k in keys) { if (k is string key) _changed(key); }
                        else _flushed();
                        break;
                    case object?[] { Length: 2 } p when p[0] is "pong": break;
                    default: throw new IOException("unexpected reply on the tracking connection");
                }
            }
        }
        finally
        {
            stop.Cancel();
            await heartbeat;
        }
    }

    /// <summary>
    /// A connection can die without a reset (a dropped route, a frozen server), and then no invalidation would ever
    /// arrive again: a PING goes out every second, and a connection that has answered nothing for 3 s is closed, which
    /// ends <see cref="Listen"/> and counts as down.
    /// </summary>
    async Task Heartbeat(Resp resp, CancellationToken ct)
    {
        try
        {
            while (true)
            {
                await Task.Delay(PingEveryMs, ct);
                if (Environment.TickCount64 - Volatile.Read(ref _lastReply) > DeadAfterMs) { _silent = true; resp.Dispose(); return; }
                await resp.Send(ct, "PING");
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException) { } // Listen's read reports it
    }

    public void Dispose()
    {
        _stop.Cancel();
        _conn?.Dispose();
    }

    /// <summary>The server's error reply.</summary>
    sealed class RedisServerError(string message) : Exception(message);

    /// <summary>Just enough RESP2 for the commands above and pub/sub messages: strings, integers, bulk strings and arrays.</summary>
    sealed class Resp(Stream stream) : IDisposable
    {
        public void Dispose() => stream.Dispose();

        readonly byte[] _buf = new byte[64 * 1024];
        int _start, _end;

        public async Task<object?> Call(CancellationToken ct, params string[] args)
        {
            await Send(ct, args);
            var reply = await Read(ct);
            return reply is RedisServerError e ? throw e : reply;
        }

        public async Task Send(CancellationToken ct, params string[] args)
        {
            var sb = new StringBuilder().Append('*').Append(args.Length).Append("\r\n");
            foreach (var a in args) sb.Append('$').Append(Encoding.UTF8.GetByteCount(a)).Append("\r\n").Append(a).Append("\r\n");
            await stream.WriteAsync(Encoding.UTF8.GetBytes(sb.ToString()), ct);
            await stream.FlushAsync(ct);
        }

        public async Task<object?> Read(CancellationToken ct)
        {
            var line = await Line(ct);
            var rest = line[1..];
            switch (line[0])
            {
                case '+': return rest;
                case '-': return new RedisServerError(rest);
                case ':': return long.Parse(rest, CultureInfo.InvariantCulture);
                case '$':
                    var len = int.Parse(rest, CultureInfo.InvariantCulture);
                    if (len < 0) return null;
                    while (_end - _start < len + 2) await Fill(ct);
                    var s = Encoding.UTF8.GetString(_buf, _start, len);
                    _start += len + 2;
                    return s;
                case '*':
                    var n = int.Parse(rest, CultureInfo.InvariantCulture);
                    if (n < 0) return null;
                    var items = new object?[n];
                    for (var i = 0; i < n; i++) items[i] = await Read(ct);
                    return items;
                default: throw new IOException($"not a RESP reply: '{line}'");
            }
        }

        async Task<string> Line(CancellationToken ct)
        {
            while (true)
            {
                var at = _buf.AsSpan(_start, _end - _start).IndexOf("\r\n"u8);
                if (at > 0)
                {
                    var s = Encoding.UTF8.GetString(_buf, _start, at);
                    _start += at + 2;
                    return s;
                }
                await Fill(ct);
            }
        }

        async Task Fill(CancellationToken ct)
        {
            if (_start > 0) { Buffer.BlockCopy(_buf, _start, _buf, 0, _end - _start); _end -= _start; _start = 0; }
            if (_end == _buf.Length) throw new IOException("RESP reply larger than 64 KB on the tracking connection");
            var n = await stream.ReadAsync(_buf.AsMemory(_end), ct);
            if (n == 0) throw new IOException("Redis closed the tracking connection");
            _end += n;
        }
    }
}
