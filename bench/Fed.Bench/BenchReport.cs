using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Fed.Bench;

/// <summary>
/// One benchmark figure and the baseline measured beside it in the same run (the bench convention).
/// Written to bench/results/&lt;name&gt;.json. "ratio" is value / baseline_value.
/// </summary>
public sealed record BenchFigure(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("metric")] string Metric,
    [property: JsonPropertyName("unit")] string Unit,
    [property: JsonPropertyName("value")] double Value,
    [property: JsonPropertyName("baseline")] string Baseline,
    [property: JsonPropertyName("baseline_value")] double BaselineValue,
    [property: JsonPropertyName("rows")] long Rows)
{
    [JsonPropertyName("ratio")] public double Ratio => BaselineValue == 0 ? double.NaN : Value / BaselineValue;
    [JsonPropertyName("date")] public string Date { get; init; } = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ");
    /// <summary>Goal, peak memory, where the time goes: anything a reader needs to judge the figure.</summary>
    [JsonPropertyName("details")] public Dictionary<string, object>? Details { get; init; }
}

/// <summary>A benchmark: found by reflection, run by name (`fed-bench NAME`) or all together (`fed-bench all`).</summary>
public interface IBenchmark
{
    /// <summary>File name under bench/results, e.g. "paillier".</summary>
    string Name { get; }
    /// <summary>Runs the benchmark and its same-run baseline; returns the figures to write.</summary>
    IReadOnlyList<BenchFigure> Run(BenchContext context);
}

public sealed class BenchContext
{
    public required string ResultsDirectory { get; init; }
    public required string WorkDirectory { get; init; }
    /// <summary>The public data sets: FED_SHARED_DATA, else ../shared/data beside the repository.</summary>
    public string SharedData { get; } = Environment.GetEnvironmentVariable("FED_SHARED_DATA") is { Length: > 0 } d ? d
        : Path.GetFullPath(Path.Combine(FindRepoRoot(), "..", "shared", "data"));

    public static string FindRepoRoot()
    {
        var dir = AppContext.BaseDirectory;
        while (dir != null && !File.Exists(Path.Combine(dir, "Fed.sln"))) dir = Path.GetDirectoryName(dir);
        return dir ?? Directory.GetCurrentDirectory();
    }

    /// <summary>--quick: smaller sizes, for a smoke run in tests.</summary>
    public bool Quick { get; init; }
    public Action<string> Log { get; init; } = Console.Error.WriteLine;

    /// <summary>Runs an external command (e.g. python3 for a numpy or gmpy2 baseline) and returns its stdout.</summary>
    public string RunProcess(string file, IEnumerable<string> args, IDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (env != null) foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} exited {p.ExitCode}: {stderr.Result}");
        return stdout;
    }
}

public static class BenchWriter
{
    static readonly JsonSerializerOptions Options = new() { WriteIndented = true };

    public static string Write(string resultsDirectory, string name, IReadOnlyList<BenchFigure> figures)
    {
        Directory.CreateDirectory(resultsDirectory);
        var path = Path.Combine(resultsDirectory, name + ".json");
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(figures, Options));
        File.Move(tmp, path, overwrite: true);
        return path;
    }
}
