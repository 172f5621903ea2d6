using System.Reflection;
using System.Runtime.InteropServices;

namespace Fed.Streaming;

/// <summary>
/// Makes Confluent.Kafka load the librdkafka bundled with it (the librdkafka.redist package, copied under
/// <c>runtimes/linux-&lt;arch&gt;/native</c> of the application), never a system one. Why: the bundle's default
/// <c>librdkafka.so</c> needs <c>libsasl2.so.3</c>, which Debian 12 lacks, so .NET's own probing fails over to the
/// system's <c>librdkafka.so</c> (Debian's 2.0.2 from librdkafka-dev), and the client then dies on its first Consume
/// with EntryPointNotFoundException. The bundle's self-contained <c>centos8-librdkafka.so</c> loads on Debian, and is
/// what "librdkafka" resolves to here; where it is absent the bundle's <c>librdkafka.so</c>. If neither loads, the
/// first Kafka client fails with a message naming the files, rather than running on an unknown library.
/// Idempotent; call before the first Kafka client is built.
/// </summary>
public static class KafkaNative
{
    static int _done;

    /// <summary>The bundled librdkafka files tried, in order (empty off Linux, where .NET's probing finds the bundle).</summary>
    public static IReadOnlyList<string> Candidates { get; } = FindCandidates();

    public static void Ensure()
    {
        if (Interlocked.Exchange(ref _done, 1) == 1) return;
        if (Candidates.Count == 0) return;
        NativeLibrary.SetDllImportResolver(typeof(Confluent.Kafka.Library).Assembly, Resolve);
    }

    static IReadOnlyList<string> FindCandidates()
    {
        if (!OperatingSystem.IsLinux()) return [];
        var arch = RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant(); // x64, arm64, ...
        var baseDir = AppContext.BaseDirectory;
        var native = Path.Combine(baseDir, "runtimes", "linux-" + arch, "native");
        // A RID-specific publish flattens native assets into the application folder.
        return [Path.Combine(native, "centos8-librdkafka.so"), Path.Combine(baseDir, "centos8-librdkafka.so"),
                Path.Combine(native, "librdkafka.so"), Path.Combine(baseDir, "librdkafka.so")];
    }

    static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path)
    {
        if (name is not ("librdkafka" or "centos8-librdkafka")) return IntPtr.Zero;
        var errors = new List<string>();
        foreach (var file in Candidates)
        {
            if (!File.Exists(file)) continue;
            try { return NativeLibrary.Load(file); }
            catch (DllNotFoundException e) { errors.Add($"{file}: {e.Message}"); }
        }
        throw new DllNotFoundException(
            $"the librdkafka bundled with Confluent.Kafka (librdkafka.redist) was not found or does not load; tried {string.Join(", ", Candidates)}" +
            (errors.Count > 0 ? $" ({string.Join("; ", errors)})" : "") + ". Rebuild Fed so the package's runtimes folder is copied.");
    }
}
