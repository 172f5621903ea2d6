using System.Globalization;
using System.Text.Json;
using Fed.Core;

namespace Fed.Cli;

/// <summary>An option of a command. Flags take no value; Multiple options may repeat (--party a --party b).</summary>
public sealed record CliOption(string Name, string Help, bool Required = false, bool Multiple = false, bool Flag = false, string? Default = null);

/// <summary>A leaf command such as "predict batch". Each component contributes its commands in Commands/*.cs.</summary>
public sealed record CliCommand(string Path, string Summary, IReadOnlyList<CliOption> Options, Func<CliArgs, CliOutput, int> Run)
{
    public string Usage()
    {
        var lines = new List<string> { $"usage: fed {Path} {string.Join(' ', Options.Select(Synopsis))} [--json]", "", Summary, "", "options:" };
        foreach (var o in Options)
            lines.Add($"  --{o.Name,-22} {o.Help}{(o.Required ? " (required)" : "")}{(o.Multiple ? " (repeatable)" : "")}{(o.Default is null ? "" : $" (default: {o.Default})")}");
        lines.Add($"  --{"json",-22} machine-readable output on stdout");
        lines.Add($"  --{"help",-22} this text");
        return string.Join('\n', lines);
    }

    /// <summary>"--model-id MODEL_ID", "[--hour HOUR]", "--party PARTY ..." for a repeatable one.</summary>
    static string Synopsis(CliOption o)
    {
        var text = o.Flag ? $"--{o.Name}" : $"--{o.Name} {o.Name.ToUpperInvariant().Replace('-', '_')}";
        if (o.Multiple) text += " ...";
        return o.Required ? text : $"[{text}]";
    }
}

/// <summary>Parsed option values, with typed accessors that turn a bad value into exit code 2.</summary>
public sealed class CliArgs(CliCommand command, Dictionary<string, List<string>> values)
{
    public string Get(string name) => Opt(name) ?? throw new BadInputException($"fed {command.Path}: --{name} is required");
    public string? Opt(string name)
    {
        if (values.TryGetValue(name, out var v) && v.Count > 0) return v[^1];
        return command.Options.FirstOrDefault(o => o.Name == name)?.Default;
    }
    public IReadOnlyList<string> All(string name) => values.TryGetValue(name, out var v) ? v : [];
    public bool Flag(string name) => values.ContainsKey(name);
    public int Int(string name, int? fallback = null)
    {
        var s = fallback is null ? Get(name) : Opt(name);
        if (s is null) return fallback!.Value;
        return int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v
            : throw new BadInputException($"fed {command.Path}: --{name} expects an integer, got '{s}'");
    }
    public int? IntOpt(string name) => Opt(name) is null ? null : Int(name);
    public double Double(string name, double fallback)
    {
        var s = Opt(name);
        if (s is null) return fallback;
        return double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && double.IsFinite(v) ? v
            : throw new BadInputException($"fed {command.Path}: --{name} expects a finite number, got '{s}'");
    }
    /// <summary>Repeated NAME=VALUE pairs, e.g. --party guest=path.csv.</summary>
    public IReadOnlyList<(string Key, string Value)> Pairs(string name) => All(name).Select(s =>
    {
        var i = s.IndexOf('=');
        if (i <= 0 || i == s.Length - 1) throw new BadInputException($"fed {command.Path}: --{name} expects NAME=VALUE, got '{s}'");
        return (s[..i], s[(i + 1)..]);
    }).ToList();
}

/// <summary>Human output on stderr-free stdout, or one JSON document with --json.</summary>
public sealed class CliOutput(bool json, TextWriter stdout, TextWriter stderr)
{
    public bool Json { get; } = json;
    public TextWriter Out { get; } = stdout;
    public TextWriter Err { get; } = stderr;
    static readonly JsonSerializerOptions Options = new() { WriteIndented = true };

    /// <summary>A line for people (suppressed in --json mode, where stdout is reserved for the document).</summary>
    public void Say(string line) { if (!Json) Out.WriteLine(line); }
    /// <summary>Progress and notes for people: always on stderr.</summary>
    public void Progress(string line) => Err.WriteLine(line);
    /// <summary>The command's result: printed as JSON with --json.</summary>
    public void Result(object result) { if (Json) Out.WriteLine(Fed.Core.Security.Secrets.Redact(JsonSerializer.Serialize(result, Options))); }
}

public static class CliApp
{
    public static int Run(string[] args, IReadOnlyList<CliCommand> commands, TextWriter? stdout = null, TextWriter? stderr = null)
    {
        stdout ??= Console.Out;
        stderr ??= Console.Error;
        var json = args.Contains("--json");
        var words = args.TakeWhile(a => !a.StartsWith("--")).ToList();
        var help = args.Contains("--help") || args.Contains("-h");

        CliCommand? cmd = null;
        var used = 0;
        for (var n = words.Count; n > 0 && cmd is null; n--)
        {
            cmd = commands.FirstOrDefault(c => c.Path == string.Join(' ', words.Take(n)));
            used = n;
        }
        if (cmd is null)
        {
            var prefix = string.Join(' ', words);
            var matching = commands.Where(c => prefix.Length == 0 || c.Path.StartsWith(prefix + " ")).ToList();
            var w = help || matching.Count > 0 && words.Count > 0 ? stdout : stderr;
            if (words.Count > 0 && matching.Count == 0) stderr.WriteLine($"fed: unknown command '{prefix}'");
            w.WriteLine($"usage: fed {(prefix.Length > 0 ? prefix + " " : "")}COMMAND [options] (--help on any command)\n\ncommands:");
            foreach (var c in (matching.Count > 0 ? matching : commands.ToList()))
                w.WriteLine($"  {c.Path,-26} {c.Summary}");
            return help && (matching.Count > 0 || words.Count == 0) ? 0 : 2;
        }
        if (words.Count > used)
        {
            stderr.WriteLine($"fed {cmd.Path}: unexpected argument '{words[used]}'\n\n{cmd.Usage()}");
            return 2;
        }
        if (help) { stdout.WriteLine(cmd.Usage()); return 0; }

        var values = new Dictionary<string, List<string>>();
        var rest = args.Skip(used).ToList();
        for (var i = 0; i < rest.Count; i++)
        {
            var a = rest[i];
            if (a == "--json") continue;
            if (!a.StartsWith("--")) { stderr.WriteLine($"fed {cmd.Path}: unexpected argument '{a}'\n\n{cmd.Usage()}"); return 2; }
            var name = a[2..];
            string? inline = null;
            var eq = name.IndexOf('=');
            if (eq > 0) { inline = name[(eq + 1)..]; name = name[..eq]; }
            var opt = cmd.Options.FirstOrDefault(o => o.Name == name);
            if (opt is null) { stderr.WriteLine($"fed {cmd.Path}: unknown option --{name}\n\n{cmd.Usage()}"); return 2; }
            if (!values.TryGetValue(name, out var list)) values[name] = list = [];
            if (opt.Flag) { list.Add("true"); continue; }
            var value = inline ?? (i + 1 < rest.Count ? rest[++i] : null);
            if (value is null) { stderr.WriteLine($"fed {cmd.Path}: --{name} needs a value"); return 2; }
            if (!opt.Multiple && list.Count > 0) { stderr.WriteLine($"fed {cmd.Path}: --{name} given twice"); return 2; }
            list.Add(value);
        }
        var missing = cmd.Options.Where(o => o.Required && !values.ContainsKey(o.Name)).Select(o => "--" + o.Name).ToList();
        if (missing.Count > 0) { stderr.WriteLine($"fed {cmd.Path}: missing {string.Join(", ", missing)}\n\n{cmd.Usage()}"); return 2; }

        var output = new CliOutput(json, stdout, stderr);
        try
        {
            return cmd.Run(new CliArgs(cmd, values), output);
        }
        catch (FedException e)
        {
            return Fail(output, cmd, e.Message, e.ExitCode, e.GetType().Name);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Fail(output, cmd, e.Message, 1, e.GetType().Name);
        }
    }

    static int Fail(CliOutput output, CliCommand cmd, string message, int code, string type)
    {
        message = Fed.Core.Security.Secrets.Redact(message); // an error quoting a connection string never shows its password
        output.Err.WriteLine($"fed {cmd.Path}: error: {message}");
        if (output.Json)
            output.Out.WriteLine(JsonSerializer.Serialize(new { ok = false, exit_code = code, error = message, error_type = type }));
        return code;
    }
}
