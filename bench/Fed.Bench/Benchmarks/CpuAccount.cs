using System.Globalization;

namespace Fed.Bench.Benchmarks;

/// <summary>
/// Where the CPU goes during a benchmark phase, from /proc (Linux): this process's threads grouped by name
/// (named worker threads, librdkafka's "rdk:*" threads, the rest of the runtime), the servers listening on given
/// loopback ports (the Kafka broker, Redis), and the whole machine. CPU seconds, not wall time.
/// </summary>
public sealed class CpuAccount
{
    static readonly double Tick = 100.0; // USER_HZ on Linux
    readonly Dictionary<string, double> _threads;
    readonly Dictionary<string, (int Pid, double Cpu)> _servers;
    readonly double _machine;
    readonly double _self;

    CpuAccount(Dictionary<string, double> threads, Dictionary<string, (int, double)> servers, double machine, double self)
    {
        _threads = threads;
        _servers = servers;
        _machine = machine;
        _self = self;
    }

    /// <summary>Snapshot now; <paramref name="servers"/> maps a label to a server's pid (see <see cref="PidListening"/>).</summary>
    public static CpuAccount Take(IReadOnlyDictionary<string, int> servers)
    {
        var threads = new Dictionary<string, double>();
        foreach (var dir in SafeDirs("/proc/self/task"))
            if (ReadStat(Path.Combine(dir, "stat")) is { } s) threads[Path.GetFileName(dir) + "/" + Group(s.Comm)] = s.Cpu;
        var srv = new Dictionary<string, (int, double)>();
        foreach (var (label, pid) in servers)
            if (ReadStat($"/proc/{pid}/stat") is { } s) srv[label] = (pid, s.Cpu);
        return new CpuAccount(threads, srv, MachineBusy(), ReadStat("/proc/self/stat")?.Cpu ?? 0);
    }

    /// <summary>CPU seconds per group between <paramref name="start"/> and now.</summary>
    public static Dictionary<string, object> Since(CpuAccount start, double wallSeconds, IReadOnlyDictionary<string, int> servers)
    {
        var end = Take(servers);
        var groups = new Dictionary<string, double>();
        foreach (var (key, cpu) in end._threads)
        {
            var group = key[(key.IndexOf('/') + 1)..];
            groups[group] = groups.GetValueOrDefault(group) + cpu - start._threads.GetValueOrDefault(key);
        }
        var self = end._self - start._self;
        var result = new Dictionary<string, object>
        {
            ["wall_s"] = Math.Round(wallSeconds, 2),
            ["machine_busy_cpu_s"] = Math.Round(end._machine - start._machine, 2),
            ["machine_capacity_cpu_s"] = Math.Round(wallSeconds * Environment.ProcessorCount, 2),
            ["bench_process_cpu_s"] = Math.Round(self, 2),
        };
        // Threads that ended during the phase are in the process total but in no live group.
        groups["exited threads"] = self - groups.Values.Sum();
        result["bench_process_by_thread_cpu_s"] = groups.Where(g => Math.Abs(g.Value) >= 0.005)
            .OrderByDescending(g => g.Value).ToDictionary(g => g.Key, g => (object)Math.Round(g.Value, 2));
        foreach (var (label, (pid, cpu)) in end._servers)
            if (start._servers.TryGetValue(label, out var s0) && s0.Pid == pid) result[label + "_cpu_s"] = Math.Round(cpu - s0.Cpu, 2);
        return result;
    }

    /// <summary>librdkafka names its threads rdk:main, rdk:broker-1, ...; .NET worker threads carry their Thread.Name.</summary>
    static string Group(string comm) => comm.StartsWith("rdk:", StringComparison.Ordinal) ? "librdkafka (all clients)"
        : comm.StartsWith("fed-", StringComparison.Ordinal) ? comm : ".NET runtime + other";

    static IEnumerable<string> SafeDirs(string path)
    {
        try { return Directory.GetDirectories(path); } catch (IOException) { return []; }
    }

    static (string Comm, double Cpu)? ReadStat(string path)
    {
        string text;
        try { text = File.ReadAllText(path); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
        var open = text.IndexOf('(');
        var close = text.LastIndexOf(')');
        if (open < 0 || close < open) return null;
        var f = text[(close + 2)..].Split(' ');
        // Fields after the comm: state is [0], utime [11], stime [12].
        return (text[(open + 1)..close], (double.Parse(f[11], CultureInfo.InvariantCulture) + double.Parse(f[12], CultureInfo.InvariantCulture)) / Tick);
    }

    static double MachineBusy()
    {
        var f = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // cpu user nice system idle iowait irq softirq steal ...
        double V(int i) => double.Parse(f[i], CultureInfo.InvariantCulture);
        return (V(1) + V(2) + V(3) + V(6) + V(7) + V(8)) / Tick;
    }

    /// <summary>The process with a listening TCP socket on <paramref name="port"/>: socket inode from /proc/net/tcp, then /proc/*/fd.</summary>
    public static int? PidListening(int port)
    {
        var hex = port.ToString("X4", CultureInfo.InvariantCulture);
        string? inode = null;
        foreach (var table in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
        {
            if (!File.Exists(table)) continue;
            foreach (var line in File.ReadLines(table).Skip(1))
            {
                var c = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (c.Length > 9 && c[3] == "0A" && c[1].EndsWith(":" + hex, StringComparison.Ordinal)) { inode = c[9]; break; }
            }
            if (inode != null) break;
        }
        if (inode == null) return null;
        var target = $"socket:[{inode}]";
        foreach (var dir in SafeDirs("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            foreach (var fd in SafeFiles(Path.Combine(dir, "fd")))
            {
                try { if (new FileInfo(fd).LinkTarget == target) return pid; }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
            }
        }
        return null;
    }

    static IEnumerable<string> SafeFiles(string path)
    {
        try { return Directory.GetFiles(path); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return []; }
    }
}
