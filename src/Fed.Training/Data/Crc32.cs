namespace Fed.Training.Data;

/// <summary>CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), as zlib/Python's binascii.crc32 compute it.
/// System.IO.Hashing is not available from the project's package mirror, so it lives here.</summary>
public static class Crc32
{
    static readonly uint[] Table = Build();

    static uint[] Build()
    {
        var t = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            var c = i;
            for (var k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }

    public static uint Compute(ReadOnlySpan<byte> data)
    {
        var c = 0xFFFFFFFFu;
        foreach (var b in data) c = Table[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }

    /// <summary>CRC-32 of the UTF-8 bytes of <paramref name="s"/>.</summary>
    public static uint Compute(string s) => Compute(System.Text.Encoding.UTF8.GetBytes(s));
}

/// <summary>
/// The train/test split every party computes on its own ids, so no message is needed to agree on it:
/// an id is a test row when crc32(id) % 10 &lt; <see cref="TestBuckets"/> (default 3, i.e. ~30% test).
/// TestBuckets = 0 trains on every aligned row.
/// </summary>
public sealed record SplitRule(int TestBuckets = 3)
{
    public bool IsTrain(string id) => Crc32.Compute(id) % 10 >= (uint)TestBuckets;
}
