using System.Reflection;
using Fed.Bench;

// fed-bench all | NAME... [--quick] [--results DIR]
var quick = args.Contains("--quick");
var results = Path.GetFullPath(ArgValue("--results") ?? Path.Combine(BenchContext.FindRepoRoot(), "bench", "results"));
var names = args.Where((a, i) => !a.StartsWith("--") && (i == 0 || args[i - 1] != "--results")).ToList();
var all = typeof(IBenchmark).Assembly.GetTypes()
    .Where(t => typeof(IBenchmark).IsAssignableFrom(t) && !t.IsAbstract && !t.IsInterface)
    .Select(t => (IBenchmark)Activator.CreateInstance(t)!)
    .OrderBy(b => b.Name, StringComparer.Ordinal).ToList();
if (names.Count == 0 || args.Contains("--help"))
{
    Console.WriteLine("usage: fed-bench all | NAME... [--quick] [--results DIR]");
    Console.WriteLine("benchmarks: " + string.Join(", ", all.Select(b => b.Name)));
    return names.Count == 0 && !args.Contains("--help") ? 2 : 0;
}
var selected = names.Contains("all") ? all : all.Where(b => names.Contains(b.Name)).ToList();
var unknown = names.Where(n => n != "all" && all.All(b => b.Name != n)).ToList();
if (unknown.Count > 0) { Console.Error.WriteLine($"unknown benchmark(s): {string.Join(", ", unknown)}"); return 2; }
var work = Path.Combine(Path.GetTempPath(), "fed-bench-" + Environment.ProcessId);
Directory.CreateDirectory(work);
try
{
    foreach (var b in selected)
    {
        Console.Error.WriteLine($"== {b.Name}");
        var figures = b.Run(new BenchContext { ResultsDirectory = results, WorkDirectory = work, Quick = quick });
        var path = BenchWriter.Write(results, b.Name, figures);
        foreach (var f in figures)
            Console.WriteLine($"{f.Name,-40} {f.Metric,-18} {f.Value,14:G6} {f.Unit,-10} vs {f.Baseline} {f.BaselineValue:G6} (x{f.Ratio:F2})");
        Console.Error.WriteLine($"   wrote {path}");
    }
}
finally { Directory.Delete(work, recursive: true); }
return 0;

string? ArgValue(string name) { var i = Array.IndexOf(args, name); return i >= 0 && i + 1 < args.Length ? args[i + 1] : null; }

