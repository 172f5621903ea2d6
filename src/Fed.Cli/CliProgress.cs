using Spectre.Console;
using Spectre.Console.Rendering;

namespace Fed.Cli;

/// <summary>
/// A progress bar on stderr (Spectre.Console) for long work: done/total, rate per second and ETA. Only when stderr is
/// a terminal and the command is not in --json mode; otherwise every call is a no-op, so scripts and logs stay clean.
/// </summary>
public sealed class CliProgress : IDisposable
{
    readonly ProgressTask? _task;
    readonly Task? _display;
    readonly TaskCompletionSource? _done;
    readonly string _label;

    CliProgress(string label) => _label = label;

    CliProgress(string label, long? total, string unit) : this(label)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        var ready = new ManualResetEventSlim();
        _done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        ProgressTask? task = null;
        var done = _done.Task;
        _display = Task.Run(() => console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RateColumn(unit), new RemainingTimeColumn())
            .Start(ctx =>
            {
                task = ctx.AddTask(Markup.Escape(label), maxValue: total is > 0 ? total.Value : 1);
                task.IsIndeterminate = total is null or <= 0;
                ready.Set();
                done.Wait();
                if (!task.IsIndeterminate) task.Value = task.MaxValue;
                task.StopTask();
            }));
        ready.Wait();
        _task = task;
    }

    public bool Visible => _task != null;

    internal static CliProgress Start(CliOutput output, string label, long? total, string unit) =>
        !output.Json && ReferenceEquals(output.Err, Console.Error) && !Console.IsErrorRedirected && Environment.GetEnvironmentVariable("TERM") != "dumb"
            ? new CliProgress(label, total, unit)
            : new CliProgress(label);

    /// <summary>Work done so far, with an optional note (e.g. "loss 0.213") and the total once it is known (then a
    /// bar of unknown length gets its length, and so an ETA).</summary>
    public void Report(long done, string? note = null, long? total = null)
    {
        if (_task is null) return;
        if (total is > 0 && _task.IsIndeterminate) { _task.MaxValue = total.Value; _task.IsIndeterminate = false; }
        _task.Value = done;
        if (note != null) _task.Description = Markup.Escape($"{_label} {note}");
    }

    public void Dispose()
    {
        if (_done is null) return;
        _done.TrySetResult();
        _display!.Wait();
    }

    /// <summary>Rows (or epochs, ids) per second.</summary>
    sealed class RateColumn(string unit) : ProgressColumn
    {
        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            new Text(task.Speed is { } s ? $"{s.ToString(s >= 100 ? "N0" : "N2")} {unit}/s" : $"- {unit}/s");
    }
}
