using System.Diagnostics;

namespace Fed.TestSupport;

/// <summary>A `dotnet fed.dll ...` child process (a stream or serve worker), its output captured to a file.</summary>
public sealed class FedProcess : IDisposable
{
    readonly Process _p;
    public string LogFile { get; }

    FedProcess(Process p, string logFile) { _p = p; LogFile = logFile; }

    public static string FedDll
    {
        get
        {
            var dir = AppContext.BaseDirectory;
            var config = dir.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}") ? "Release" : "Debug";
            while (dir != null && !File.Exists(Path.Combine(dir, "Fed.sln"))) dir = Path.GetDirectoryName(dir);
            var dll = Path.Combine(dir ?? throw new InvalidOperationException("Fed.sln not found above " + AppContext.BaseDirectory),
                "src", "Fed.Cli", "bin", config, "net10.0", "fed.dll");
            return File.Exists(dll) ? dll : throw new InvalidOperationException($"{dll} not built (the test project builds it through its project reference)");
        }
    }

    public static FedProcess Start(string logFile, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add(FedDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        var log = new StreamWriter(logFile, append: true) { AutoFlush = true };
        p.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (log) log.WriteLine(e.Data); };
        p.OutputDataReceived += (_, e) => { if (e.Data != null) lock (log) log.WriteLine(e.Data); };
        p.BeginErrorReadLine();
        p.BeginOutputReadLine();
        return new FedProcess(p, logFile);
    }

    /// <summary>SIGKILL: no shutdown code runs, nothing is committed.</summary>
    public void KillHard()
    {
        _p.Kill(entireProcessTree: false);
        _p.WaitForExit(10_000);
    }

    /// <summary>SIGTERM, then the exit code.</summary>
    public int Terminate(TimeSpan timeout)
    {
        using (var k = Process.Start("kill", ["-TERM", _p.Id.ToString()])) k.WaitForExit();
        if (!_p.WaitForExit((int)timeout.TotalMilliseconds)) { _p.Kill(); throw new TimeoutException($"no exit {timeout.TotalSeconds} s after SIGTERM; log: {File.ReadAllText(LogFile)}"); }
        _p.WaitForExit();
        return _p.ExitCode;
    }

    public bool HasExited => _p.HasExited;

    public void Dispose()
    {
        if (!_p.HasExited) { try { _p.Kill(); } catch (InvalidOperationException) { } }
        _p.Dispose();
    }
}
