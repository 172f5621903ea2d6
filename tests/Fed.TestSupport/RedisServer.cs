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

/// <summary>
/// A Redis Cluster of a test's (or benchmark's) own: 3 masters + 3 replicas on free loopback ports, started and
/// stopped by the same script CI uses (<c>scripts/services.sh start|stop redis-cluster</c>) in a run directory of its
/// own, so a test may kill a node without touching the shared cluster. Stopped and removed on dispose.
/// </summary>
public sealed class RedisClusterServer : IAsyncDisposable
{
    readonly string _run, _script;

    RedisClusterServer(string run, string script, string endpoints) => (_run, _script, Endpoints) = (run, script, endpoints);

    /// <summary>"127.0.0.1:P1,...,127.0.0.1:P6", a StackExchange.Redis configuration string.</summary>
    public string Endpoints { get; }

    public static async Task<RedisClusterServer> Start(string repoRoot)
    {
        var run = Directory.CreateTempSubdirectory("fed-rc-").FullName;
        var script = Path.Combine(repoRoot, "scripts", "services.sh");
        await Services(script, run, "start");
        var env = File.ReadAllLines(Path.Combine(run, "redis-cluster.env"));
        var list = env.Single(l => l.StartsWith("export FED_TEST_REDIS_CLUSTER=", StringComparison.Ordinal)).Split('=', 2)[1];
        return new RedisClusterServer(run, script, list);
    }

    static async Task Services(string script, string run, string verb)
    {
        var psi = new ProcessStartInfo("bash", [script, verb, "redis-cluster"]) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.Environment["FED_RUN_DIR"] = run;
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0) throw new InvalidOperationException($"services.sh {verb} redis-cluster failed ({p.ExitCode}): {await err}");
    }

    /// <summary>The node's pid (from its pidfile) for a port.</summary>
    public int Pid(int port) => int.Parse(File.ReadAllText(Path.Combine(_run, "redis-cluster", port.ToString(), "redis.pid")).Trim());

    /// <summary>Runs redis-cli against one node and returns its output.</summary>
    public static string Cli(int port, params string[] args)
    {
        var psi = new ProcessStartInfo("redis-cli", ["-h", "127.0.0.1", "-p", port.ToString(), .. args]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return output;
    }

    public async ValueTask DisposeAsync()
    {
        try { await Services(_script, _run, "stop"); }
        finally { try { Directory.Delete(_run, true); } catch (IOException) { } }
    }
}
