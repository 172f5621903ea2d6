using System.Reflection;
using System.Runtime.InteropServices;

namespace Fed.Streaming;

/// <summary>
/// Makes Confluent.Kafka find the system librdkafka (Debian's librdkafka1 / librdkafka-dev) instead of the
/// librdkafka.redist package, which the NuGet mirror lacks. Maps "librdkafka" to librdkafka.so.1 when the
/// unversioned name is absent, and "libdl" to libdl.so.2. Idempotent; call before the first Kafka client.
/// </summary>
public static class KafkaNative
{
    static int _done;

    public static void Ensure()
    {
        if (Interlocked.Exchange(ref _done, 1) == 1) return;
        try
        {
            NativeLibrary.SetDllImportResolver(typeof(Confluent.Kafka.Library).Assembly, Resolve);
        }
        catch (InvalidOperationException) { /* a resolver was already set by the host */ }
    }

    static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path)
    {
        string[] candidates = name switch
        {
            "librdkafka" => ["librdkafka.so", "librdkafka.so.1"],
            "libdl" => ["libdl.so.2", "libdl.so"],
            _ => [],
        };
        foreach (var c in candidates)
            if (NativeLibrary.TryLoad(c, assembly, path, out var h)) return h;
        return IntPtr.Zero;
    }
}
