namespace Fed.Core.Security;

/// <summary>
/// Files that must stay private to their owner: private keys, PKCS#12 bundles, model files, configs Fed writes.
/// They are created with mode 0600 from the first byte (never chmod after the fact) and replaced atomically; a key
/// file that group or others can read is refused on load unless the caller explicitly allows it.
/// </summary>
public static class SecretFiles
{
    public const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    const UnixFileMode GroupOrOthers = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <summary>Writes <paramref name="path"/> atomically (temp file + rename) with mode 0600.</summary>
    public static void Write(string path, ReadOnlySpan<byte> bytes)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var tmp = full + $".tmp-{Environment.ProcessId}-{Guid.NewGuid():N}";
        try
        {
            using (var fs = new FileStream(tmp, Private(new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None })))
            {
                fs.Write(bytes);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    public static void Write(string path, string text) => Write(path, System.Text.Encoding.UTF8.GetBytes(text));

    /// <summary>Opens a file for appending, created 0600 if new (logs that may name callers or hashes).</summary>
    public static FileStream OpenAppend(string path) =>
        new(path, Private(new FileStreamOptions { Mode = FileMode.Append, Access = FileAccess.Write, Share = FileShare.ReadWrite, BufferSize = 1 }));

    static FileStreamOptions Private(FileStreamOptions o)
    {
        if (!OperatingSystem.IsWindows()) o.UnixCreateMode = OwnerOnly;
        return o;
    }

    /// <summary>
    /// Refuses a private-key file that group or others may read or write (as ssh does), unless
    /// <paramref name="allowInsecureMode"/>. <paramref name="what"/> names the setting for the message.
    /// </summary>
    public static void CheckPrivate(string path, string what, bool allowInsecureMode)
    {
        if (OperatingSystem.IsWindows()) return;
        UnixFileMode mode;
        try { mode = File.GetUnixFileMode(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"{what}: cannot read '{path}': {e.Message}", e);
        }
        if ((mode & GroupOrOthers) != 0 && !allowInsecureMode)
            throw new BadInputException($"{what}: '{path}' holds a private key but has mode {Octal(mode)} (group/others may access it): " +
                $"run chmod 600 '{path}' (or allow it explicitly, which is insecure)");
    }

    public static string Octal(UnixFileMode mode) => Convert.ToString((int)mode & 0x1FF, 8).PadLeft(4, '0');

    /// <summary>A secret given by an environment variable or a file (one of them, or neither: null).</summary>
    public static string? ReadSecret(string? env, string? file, string what)
    {
        if (env != null && file != null) throw new BadInputException($"{what}: give the password by environment variable or by file, not both");
        if (env != null)
            return Environment.GetEnvironmentVariable(env) ?? throw new BadInputException($"{what}: environment variable '{env}' is not set");
        if (file == null) return null;
        CheckPrivate(file, what, allowInsecureMode: false);
        try { return File.ReadAllText(file).TrimEnd('\r', '\n'); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"{what}: cannot read '{file}': {e.Message}", e);
        }
    }
}
