using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit;

namespace Fed.TestSupport;

/// <summary>Where tests find the repository and the servers scripts/test.sh started.</summary>
public static class TestEnvironment
{
    public static string RepoRoot { get; } = FindRoot();

    static string FindRoot()
    {
        var dir = AppContext.BaseDirectory;
        while (dir != null && !File.Exists(Path.Combine(dir, "Fed.sln"))) dir = Path.GetDirectoryName(dir);
        return dir ?? throw new InvalidOperationException("repository root (Fed.sln) not found above " + AppContext.BaseDirectory);
    }

    /// <summary>The public data sets: FED_SHARED_DATA, else ../shared/data beside the repository (as CI lays it out).</summary>
    public static string SharedData { get; } = Environment.GetEnvironmentVariable("FED_SHARED_DATA") is { Length: > 0 } d
        ? d : Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "data"));

    /// <summary>A server's address from the environment. Missing means the test FAILS: a skipped test proves nothing.</summary>
    public static string Require(string variable)
    {
        var v = Environment.GetEnvironmentVariable(variable);
        if (string.IsNullOrWhiteSpace(v))
            Assert.Fail($"{variable} is not set: run the tests with scripts/test.sh, which installs and starts the servers they need");
        return v!;
    }
}

/// <summary>
/// Validates SQL against the real Spark SQL and HiveQL grammars (dt-sql-parser, through tools/sqlcheck),
/// one node process per batch.
/// </summary>
public static class SqlGrammar
{
    public sealed record Result(string Dialect, string Sql, bool Ok, string Errors);

    public static IReadOnlyList<Result> Validate(IEnumerable<(string Dialect, string Sql)> statements)
    {
        var items = statements.ToList();
        var check = Path.Combine(TestEnvironment.RepoRoot, "tools", "sqlcheck", "check.mjs");
        Assert.True(File.Exists(Path.Combine(TestEnvironment.RepoRoot, "tools", "sqlcheck", "node_modules", "dt-sql-parser", "package.json")),
            "dt-sql-parser is not installed: run scripts/install-deps.sh (scripts/test.sh does)");
        var psi = new ProcessStartInfo("node") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(check);
        psi.ArgumentList.Add("--json");
        using var p = Process.Start(psi)!;
        var input = new JsonArray(items.Select(i => (JsonNode)new JsonObject { ["dialect"] = i.Dialect, ["sql"] = i.Sql }).ToArray());
        p.StandardInput.Write(input.ToJsonString());
        p.StandardInput.Close();
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode is 0 or 1, $"sqlcheck failed ({p.ExitCode}): {err.Result}");
        var results = JsonNode.Parse(output)!.AsArray();
        Assert.Equal(items.Count, results.Count);
        return items.Select((it, i) => new Result(it.Dialect, it.Sql, results[i]!["ok"]!.GetValue<bool>(),
            results[i]!["errors"]!.ToJsonString(new JsonSerializerOptions { WriteIndented = false }))).ToList();
    }

    /// <summary>Asserts every statement is valid in every given dialect, listing each failure with its SQL.</summary>
    public static void AssertValid(IEnumerable<string> statements, params string[] dialects)
    {
        var results = Validate(statements.SelectMany(s => dialects.Select(d => (d, s))));
        var bad = results.Where(r => !r.Ok).ToList();
        Assert.True(bad.Count == 0, string.Join("\n\n", bad.Select(b => $"[{b.Dialect}] {b.Errors}\n{b.Sql}")));
        Assert.NotEmpty(results);
    }
}
