using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Fed.TestSupport;

/// <summary>Free loopback TCP ports (the OS picks one; a short race with other processes is accepted in tests).</summary>
public static class LoopbackPorts
{
    public static int Free()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}

/// <summary>
/// A redis-server of a test's (or benchmark's) own on a free loopback port, no persistence, extra arguments as given
/// (e.g. --requirepass, --rename-command). For what the shared server of scripts/test.sh must not be used for:
/// FLUSHALL, or a server set up to refuse something. Killed, and its directory removed, on dispose.
/// </summary>
public sealed class RedisServer : IAsyncDisposable
{
    readonly Process _proc;
    readonly DirectoryInfo _dir;

    RedisServer(Process proc, DirectoryInfo dir, int port) => (_proc, _dir, Endpoint) = (proc, dir, $"127.0.0.1:{port}");

    /// <summary>host:port, as a StackExchange.Redis configuration string.</summary>
    public string Endpoint { get; }

    public static async Task<RedisServer> Start(params string[] extra)
    {
        var port = LoopbackPorts.Free();
        var dir = Directory.CreateTempSubdirectory("fed-redis-");
        var proc = Process.Start(new ProcessStartInfo("redis-server",
            ["--port", port.ToString(), "--bind", "127.0.0.1", "--dir", dir.FullName, "--save", "", "--appendonly", "no", .. extra])
            { RedirectStandardOutput = true, UseShellExecute = false })!;
        var server = new RedisServer(proc, dir, port);
        for (var i = 0; ; i++) // up once it accepts connections (a probe that needs no password)
        {
            try { using var probe = new TcpClient(); await probe.ConnectAsync(IPAddress.Loopback, port); return server; }
            catch (SocketException) when (i < 40) { await Task.Delay(100); }
            catch { await server.DisposeAsync(); throw; }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_proc.HasExited) _proc.Kill();
        await _proc.WaitForExitAsync();
        _proc.Dispose();
        _dir.Delete(true);
    }
}
