using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using Fed.Core;
using Fed.Warehouse;

namespace Fed.Cli;

/// <summary>An option of a command. Flags take no value; Multiple options may repeat (--party a --party b).</summary>
public sealed record CliOption(string Name, string Help, bool Required = false, bool Multiple = false, bool Flag = false, string? Default = null);

/// <summary>Options several components share, declared once.</summary>
public static class CliOptions
{
    /// <summary>Read it with <see cref="CliArgs.Warehouse"/>: --warehouse, else FED_WAREHOUSE, else the default.</summary>
    public static readonly CliOption Warehouse = new("warehouse",
        $"warehouse: {WarehouseFactory.AcceptedForms}; else env {WarehouseFactory.EnvironmentVariable}, else sqlite:{WarehouseFactory.DefaultPath}");

    /// <summary>Without it, a result with zero predictions or zero rows scored exits <see cref="ExitCodes.Empty"/>.</summary>
    public static readonly CliOption AllowEmpty = new("allow-empty", $"exit 0 even when a daily run scores nothing (default: exit {ExitCodes.Empty})", Flag: true);
}

/// <summary>The exit codes of every fed command (README "Exit codes"; tests hold them).</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    public const int Failure = 1;
    public const int BadInput = 2;
    public const int Empty = 3;
}

/// <summary>A leaf command such as "predict batch". Each component contributes its commands in Commands/*.cs.</summary>
public sealed record CliCommand(string Path, string Summary, IReadOnlyList<CliOption> Options, Func<CliArgs, CliOutput, int> Run)
{
    public string Usage()
    {
        var lines = new List<string> { $"usage: fed {Path} {string.Join(' ', Options.Select(Synopsis))} [--json] [--verbose]", "", Summary, "", "options:" };
        foreach (var o in Options)
            lines.Add($"  --{o.Name,-22} {o.Help}{(o.Required ? " (required)" : "")}{(o.Multiple ? " (repeatable)" : "")}{(o.Default is null ? "" : $" (default: {o.Default})")}");
        lines.Add($"  --{"json",-22} one single-line JSON document on stdout (also for errors)");
        lines.Add($"  --{"verbose",-22} on an internal error, print the stack trace");
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
            : throw new BadInputException($"fed {command.Path}: --{name} expects an integer, got '{ErrorText.Cut(s)}'");
    }
    public int? IntOpt(string name) => Opt(name) is null ? null : Int(name);
    public double Double(string name, double fallback)
    {
        var s = Opt(name);
        if (s is null) return fallback;
        return double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && double.IsFinite(v) ? v
            : throw new BadInputException($"fed {command.Path}: --{name} expects a finite number, got '{ErrorText.Cut(s)}'");
    }
    /// <summary>Repeated NAME=VALUE pairs, e.g. --party guest=path.csv.</summary>
    public IReadOnlyList<(string Key, string Value)> Pairs(string name) => All(name).Select(s =>
    {
        var i = s.IndexOf('=');
        if (i <= 0 || i == s.Length - 1) throw new BadInputException($"fed {command.Path}: --{name} expects NAME=VALUE, got '{ErrorText.Cut(s)}'");
        return (s[..i], s[(i + 1)..]);
    }).ToList();

    /// <summary>THE warehouse of a command: --warehouse, else FED_WAREHOUSE, else the default (<see cref="WarehouseFactory.Resolve"/>).
    /// A declared default on the option is ignored on purpose: it would hide FED_WAREHOUSE.</summary>
    public IWarehouse Warehouse() => WarehouseFactory.Open(values.TryGetValue("warehouse", out var v) && v.Count > 0 ? v[^1] : null);

    /// <summary>Refuses an empty result unless --allow-empty (exit <see cref="ExitCodes.Empty"/>).</summary>
    public void RequireNonEmpty(long count, string what)
    {
        if (count == 0 && !Flag("allow-empty"))
            throw new EmptyResultException($"{what}; a scheduler would not notice, so this exits {ExitCodes.Empty} (pass --allow-empty to accept an empty result)");
    }
}

/// <summary>Human output on stdout, or ONE single-line JSON document on stdout with --json (written by <see cref="CliApp"/> at the end).</summary>
public sealed class CliOutput(bool json, TextWriter stdout, TextWriter stderr)
{
    public bool Json { get; } = json;
    public TextWriter Out { get; } = stdout;
    public TextWriter Err { get; } = stderr;
    internal object? Document { get; private set; }

    /// <summary>A line for people (suppressed in --json mode, where stdout is reserved for the document).</summary>
    public void Say(string line) { if (!Json) Out.WriteLine(line); }
    /// <summary>Progress and notes for people: always on stderr.</summary>
    public void Progress(string line) => Err.WriteLine(line);
    /// <summary>The command's result: the JSON document with --json (snake_case keys, "ok": true added).</summary>
    public void Result(object result) => Document = result;

    /// <summary>Progress on a terminal (rows/s, ETA) for long work; a no-op when stderr is not a terminal or with --json.</summary>
    public CliProgress Bar(string label, long? total, string unit = "rows") => CliProgress.Start(this, label, total, unit);

    /// <summary>A component's progress callback: lines matching <paramref name="pattern"/> (groups "done", optional
    /// "note" and "total") move the bar when it is shown; every other line, or every line off a terminal, goes to stderr as is.</summary>
    public Action<string> Lines(CliProgress bar, string pattern)
    {
        var re = new System.Text.RegularExpressions.Regex(pattern, System.Text.RegularExpressions.RegexOptions.CultureInvariant);
        return line =>
        {
            if (bar.Visible && re.Match(line) is { Success: true } m
                && long.TryParse(m.Groups["done"].Value.Replace(",", ""), NumberStyles.Integer, CultureInfo.InvariantCulture, out var done))
                bar.Report(done, m.Groups["note"].Success ? m.Groups["note"].Value : null,
                    long.TryParse(m.Groups["total"].Value.Replace(",", ""), NumberStyles.Integer, CultureInfo.InvariantCulture, out var total) ? total : null);
            else Progress(line);
        };
    }
}

/// <summary>Maps what went wrong to an exit code and a stable error code (never a .NET class name).</summary>
public static class ErrorCodes
{
    public static (int Exit, string Code) Of(Exception e) => e switch
    {
        EmptyResultException => (ExitCodes.Empty, "empty_result"),
        ModelFormatException => (ExitCodes.BadInput, "bad_model_file"),
        UnknownModelException => (ExitCodes.BadInput, "unknown_model"),
        IncompletePartiesException => (ExitCodes.BadInput, "incomplete_parties"),
        MissingFeatureException => (ExitCodes.BadInput, "missing_feature"),
        ProvenanceException => (ExitCodes.BadInput, "checksum_mismatch"),
        BadInputException => (ExitCodes.BadInput, "bad_input"),
        FedException f => (f.ExitCode, "failure"),
        IOException or UnauthorizedAccessException => (ExitCodes.Failure, "io_error"),
        _ => (ExitCodes.Failure, "internal_error"),
    };

    public const string Usage = "usage";
}

public static class CliApp
{
    /// <summary>snake_case keys for records such as registry entries; dictionary keys are kept as they are.</summary>
    static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = false,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static string Version =>
        typeof(CliApp).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0]
        ?? typeof(CliApp).Assembly.GetName().Version?.ToString() ?? "0";

    public static int Run(string[] args, IReadOnlyList<CliCommand> commands, TextWriter? stdout = null, TextWriter? stderr = null)
    {
        stdout ??= Console.Out;
        stderr ??= Console.Error;
        // Known before parsing, so that even a usage error answers in JSON.
        var json = args.Contains("--json");
        var verbose = args.Contains("--verbose");
        var output = new CliOutput(json, stdout, stderr);
        CliCommand? cmd = null;
        try
        {
            var parser = Parser.Build(commands);
            // --json and --verbose apply to every command (and to --version); they are read above, not parsed.
            var parsed = parser.Root.Parse(args.Where(a => a is not ("--json" or "--verbose")).ToArray());
            var leaf = parser.Leaves.GetValueOrDefault(parsed.CommandResult.Command);
            var path = leaf?.Path ?? CommandPath(parsed.CommandResult.Command);

            if (parsed.GetResult(parser.Help) != null)
            {
                if (json) output.Result(new { ok = true, command = path, help = leaf?.Usage() ?? GroupUsage(parser, parsed.CommandResult.Command) });
                else stdout.WriteLine(leaf?.Usage() ?? GroupUsage(parser, parsed.CommandResult.Command));
                return Finish(output, 0);
            }
            if (parsed.GetResult(parser.VersionOption) != null && parsed.Errors.Count == 0)
            {
                output.Say($"fed {Version}");
                output.Result(new { ok = true, version = Version });
                return Finish(output, 0);
            }
            if (parsed.Errors.Count > 0 || leaf is null)
            {
                var message = UsageMessage(parsed, path);
                var hint = TypoHint(parsed);
                stderr.WriteLine($"fed{(path.Length == 0 ? "" : " " + path)}: {message}{(hint is null ? "" : "; " + hint)}");
                stderr.WriteLine(leaf is null
                    ? $"run 'fed{(path.Length == 0 ? "" : " " + path)} --help' for the list of commands"
                    : $"run 'fed {leaf.Path} --help' for its options");
                return Error(output, path, ExitCodes.BadInput, ErrorCodes.Usage, message + (hint is null ? "" : "; " + hint));
            }

            cmd = leaf;
            var values = new Dictionary<string, List<string>>();
            foreach (var (opt, symbol) in parser.OptionsOf[leaf])
            {
                if (parsed.GetResult(symbol) is not { Implicit: false }) continue;
                if (opt.Flag) { if (parsed.GetValue((Option<bool>)symbol)) values[opt.Name] = ["true"]; }
                else if (opt.Multiple) values[opt.Name] = [.. parsed.GetValue((Option<string[]>)symbol) ?? []];
                else if (parsed.GetValue((Option<string>)symbol) is { } v) values[opt.Name] = [v];
            }
            var code = leaf.Run(new CliArgs(leaf, values), output);
            if (code != 0 && output.Document is null)
                return Error(output, leaf.Path, code, code == ExitCodes.BadInput ? "bad_input" : "failure", $"exit {code}");
            return Finish(output, code);
        }
        catch (Exception e)
        {
            var (exit, code) = ErrorCodes.Of(e);
            var where = cmd is null ? "fed" : $"fed {cmd.Path}";
            // An error quoting a connection string never shows its password.
            var message = Fed.Core.Security.Secrets.Redact(e is FedException or IOException or UnauthorizedAccessException
                ? e.Message
                : $"internal error: {e.Message}");
            stderr.WriteLine($"{where}: error: {ErrorText.Cut(message, 2000)}");
            if (code == "internal_error")
            {
                if (verbose) stderr.WriteLine(e.ToString());
                else stderr.WriteLine($"this is a bug in fed; run the same command again with --verbose for the trace");
            }
            return Error(output, cmd?.Path ?? "", exit, code, ErrorText.Cut(message, 2000));
        }
    }

    /// <summary>Writes the document (with --json) and returns the exit code.</summary>
    static int Finish(CliOutput output, int code)
    {
        if (!output.Json) return code;
        var node = output.Document is null ? new JsonObject() : JsonSerializer.SerializeToNode(output.Document, output.Document.GetType(), JsonOptions);
        if (node is JsonObject o)
        {
            // "ok" always comes first: true for exit 0 unless the command said otherwise.
            var ok = o["ok"]?.DeepClone() ?? JsonValue.Create(code == 0);
            o.Remove("ok");
            o.Insert(0, "ok", ok);
        }
        output.Out.WriteLine(Fed.Core.Security.Secrets.Redact(node?.ToJsonString(JsonOptions) ?? "null"));
        return code;
    }

    static int Error(CliOutput output, string command, int exit, string code, string message)
    {
        if (output.Json)
            output.Out.WriteLine(new JsonObject
            {
                ["ok"] = false, ["command"] = command, ["exit_code"] = exit, ["error_code"] = code, ["error"] = message,
            }.ToJsonString(JsonOptions));
        return exit;
    }

    /// <summary>One line: the first unknown word (cut), else the library's messages; "needs a command" for a bare group.</summary>
    static string UsageMessage(ParseResult parsed, string path)
    {
        var where = path.Length == 0 ? "fed" : "fed " + path;
        if (parsed.UnmatchedTokens.Count > 0)
            return $"unknown {(parsed.UnmatchedTokens[0].StartsWith('-') ? "option" : "command or argument")} '{ErrorText.Cut(parsed.UnmatchedTokens[0], 80)}'";
        var errors = parsed.Errors.Select(e => e.Message).Where(m => !m.StartsWith("Required command")).Distinct().ToList();
        return errors.Count > 0 ? ErrorText.Cut(string.Join("; ", errors), 1000) : $"'{where}' needs a command";
    }

    static string CommandPath(Command c)
    {
        var names = new List<string>();
        for (var x = c; x != null && x is not RootCommand; x = x.Parents.OfType<Command>().FirstOrDefault()) names.Insert(0, x.Name);
        return string.Join(' ', names);
    }

    static string GroupUsage(Parser parser, Command group)
    {
        var prefix = CommandPath(group);
        var lines = new List<string> { $"usage: fed {(prefix.Length > 0 ? prefix + " " : "")}COMMAND [options] (--help on any command)", "", "commands:" };
        foreach (var c in parser.Leaves.Values.Where(c => prefix.Length == 0 || c.Path.StartsWith(prefix + " ")))
            lines.Add($"  {c.Path,-26} {c.Summary}");
        if (prefix.Length == 0) lines.AddRange(["", "  --version                  print the version", "  --json, --verbose, --help   on every command"]);
        return string.Join('\n', lines);
    }

    /// <summary>System.CommandLine's own typo suggestions ("did you mean ..."), without its help text; the unknown word is
    /// named in the error line only, never in a usage line.</summary>
    static string? TypoHint(ParseResult parsed)
    {
        if (parsed.Action is not ParseErrorAction action) return null;
        action.ShowHelp = false;
        action.ShowTypoCorrections = true;
        var text = new StringWriter();
        parsed.Invoke(new InvocationConfiguration { Output = text, Error = text });
        // "'predcit' was not matched. Did you mean one of the following?" then one suggestion per line.
        var suggestions = new List<string>();
        var inList = false;
        foreach (var line in text.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (line.Contains("was not matched")) { inList = suggestions.Count == 0; continue; }
            if (inList && !parsed.Errors.Any(e => e.Message.Trim() == line) && line is not ("-h" or "-?" or "/h" or "/?" or "--help"))
                suggestions.Add(line);
        }
        return suggestions.Count == 0 ? null : $"did you mean {string.Join(" or ", suggestions.Select(x => $"'{x}'"))}?";
    }

    /// <summary>The System.CommandLine tree built from the declarative commands.</summary>
    sealed class Parser
    {
        public required RootCommand Root { get; init; }
        public required HelpOption Help { get; init; }
        public required VersionOption VersionOption { get; init; }
        public Dictionary<Command, CliCommand> Leaves { get; } = [];
        public Dictionary<CliCommand, List<(CliOption, Option)>> OptionsOf { get; } = [];

        public static Parser Build(IReadOnlyList<CliCommand> commands)
        {
            var root = new RootCommand("fed: federated prediction at big-data scale");
            var help = root.Options.OfType<HelpOption>().Single();
            var version = root.Options.OfType<VersionOption>().Single();
            root.Options.Add(new Option<bool>("--json") { Recursive = true, Description = "one single-line JSON document on stdout" });
            root.Options.Add(new Option<bool>("--verbose") { Recursive = true, Description = "print the stack trace of an internal error" });
            var parser = new Parser { Root = root, Help = help, VersionOption = version };
            foreach (var c in commands)
            {
                Command parent = root;
                foreach (var word in c.Path.Split(' '))
                {
                    var next = parent.Subcommands.FirstOrDefault(s => s.Name == word);
                    if (next is null) parent.Subcommands.Add(next = new Command(word));
                    parent = next;
                }
                if (!parser.Leaves.TryAdd(parent, c)) throw new InvalidOperationException($"command '{c.Path}' declared twice");
                parent.Description = c.Summary;
                var options = new List<(CliOption, Option)>();
                foreach (var o in c.Options)
                {
                    Option symbol = o.Flag ? new Option<bool>("--" + o.Name)
                        : o.Multiple ? new Option<string[]>("--" + o.Name) { Arity = ArgumentArity.OneOrMore, AllowMultipleArgumentsPerToken = false }
                        : new Option<string>("--" + o.Name);
                    symbol.Description = o.Help;
                    symbol.Required = o.Required;
                    parent.Options.Add(symbol);
                    options.Add((o, symbol));
                }
                parser.OptionsOf[c] = options;
            }
            return parser;
        }
    }
}
