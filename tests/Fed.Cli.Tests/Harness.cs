using System.Diagnostics;
using System.Text.Json.Nodes;
using Fed.TestSupport;
using Microsoft.Data.Sqlite;

namespace Fed.Cli.Tests;

/// <summary>Runs `fed` as a user does: a real process, in a fresh working directory, with a chosen environment.</summary>
public sealed class Harness
{
    public string Dir { get; } = Directory.CreateTempSubdirectory("fed-cli-").FullName;
    public Dictionary<string, string?> Env { get; } = new() { ["FED_WAREHOUSE"] = null };

    public static string Samples => System.IO.Path.Combine(TestEnvironment.RepoRoot, "samples", "breast_cancer");
    public static string Data => System.IO.Path.Combine(TestEnvironment.SharedData, "breast_cancer");

    public sealed record Result(int Code, string Out, string Err)
    {
        public JsonObject Json => JsonNode.Parse(Out)!.AsObject();
        public override string ToString() => $"exit {Code}\nstdout: {Out}\nstderr: {Err}";
    }

    public Result Fed(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Dir };
        psi.ArgumentList.Add(FedProcess.FedDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in Env) { if (v is null) psi.Environment.Remove(k); else psi.Environment[k] = v; }
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(120_000)) { p.Kill(true); throw new TimeoutException(string.Join(' ', args)); }
        return new Result(p.ExitCode, output, err.Result);
    }

    /// <summary>In-process run (fast), for checks that need no environment of their own.</summary>
    public static Result InProcess(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        var code = CliApp.Run(args, FedCommands.All, o, e);
        return new Result(code, o.ToString(), e.ToString());
    }

    public string Path(string name) => System.IO.Path.Combine(Dir, name);

    /// <summary>Every file under the working directory with its size and content hash: "nothing written" is checked on this.</summary>
    public string Files() => string.Join("\n", Directory.EnumerateFiles(Dir, "*", SearchOption.AllDirectories).Order()
        .Select(f => $"{System.IO.Path.GetRelativePath(Dir, f)} {Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(f)))[..16]}"));

    /// <summary>Row counts of every table of a SQLite warehouse ("" if the file does not exist).</summary>
    public static string Rows(string dbPath)
    {
        if (!File.Exists(dbPath)) return "";
        using var c = new SqliteConnection($"Data Source={dbPath};Mode=ReadOnly;Pooling=False");
        c.Open();
        var tables = new List<string>();
        using (var cmd = c.CreateCommand())
        {
            cmd.CommandText = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name";
            using var r = cmd.ExecuteReader();
            while (r.Read()) tables.Add(r.GetString(0));
        }
        return string.Join(", ", tables.Select(t =>
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = $"SELECT COUNT(*) FROM \"{t}\"";
            return $"{t}={cmd.ExecuteScalar()}";
        }));
    }
}
