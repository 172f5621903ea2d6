namespace Fed.Core;

/// <summary>
/// The files one command writes (data, report, manifest, id lists), staged under temporary names beside their targets
/// and renamed together by <see cref="Commit"/> at the very end. Until then nothing visible is written; a failure or
/// an unwritable target leaves no output at all, and disposing without a commit deletes the temporaries.
/// An output that is also an input, or two outputs with one path, are refused before any work.
/// </summary>
public sealed class StagedOutputs : IDisposable
{
    readonly List<(string Temp, string Final)> _files = [];
    readonly HashSet<string> _inputs;
    bool _committed;

    /// <param name="inputs">paths the command reads: an output there is refused (exit 2).</param>
    public StagedOutputs(IEnumerable<string>? inputs = null) =>
        _inputs = new HashSet<string>((inputs ?? []).Select(Path.GetFullPath), StringComparer.Ordinal);

    /// <summary>Registers an output and returns the temporary path to write it to.</summary>
    public string Stage(string path, string what = "output")
    {
        var full = Path.GetFullPath(path);
        if (_inputs.Contains(full)) throw new BadInputException($"{what} {path} is also an input of this command; refusing to overwrite an input: choose another path");
        if (_files.Any(f => f.Final == full)) throw new BadInputException($"{what} {path} is given for two outputs of this command; choose another path");
        if (Directory.Exists(full)) throw new BadInputException($"{what} {path} is a directory; give a file path");
        var dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        var temp = Path.Combine(dir, $".{Path.GetFileName(full)}.tmp-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}");
        _files.Add((temp, full));
        return temp;
    }

    /// <summary>Renames every staged file to its final name (same directory, so each rename is atomic).</summary>
    public void Commit()
    {
        foreach (var (temp, _) in _files)
            if (!File.Exists(temp)) throw new InvalidOperationException($"staged output {temp} was never written");
        foreach (var (temp, final) in _files) File.Move(temp, final, overwrite: true);
        _committed = true;
    }

    public void Dispose()
    {
        if (_committed) return;
        foreach (var (temp, _) in _files)
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
