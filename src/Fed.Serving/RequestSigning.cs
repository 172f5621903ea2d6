using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Fed.Serving;

/// <summary>
/// Signed requests between parties: HMAC-SHA256, with the key shared by the pair, over
/// <c>METHOD \n PATH(+query) \n TIMESTAMP \n CALLER \n hex(SHA-256(body))</c>.
/// Headers: <c>X-Fed-Caller</c>, <c>X-Fed-Timestamp</c> (Unix seconds), <c>X-Fed-Signature</c> (<c>v1=</c> + lower hex).
/// A request without them, with a wrong signature, or with a timestamp outside the allowed age is refused (401).
/// </summary>
public static class RequestSigning
{
    public const string CallerHeader = "X-Fed-Caller";
    public const string TimestampHeader = "X-Fed-Timestamp";
    public const string SignatureHeader = "X-Fed-Signature";

    public static string Sign(byte[] key, string method, string pathAndQuery, long timestamp, string caller, ReadOnlySpan<byte> body)
    {
        Span<byte> mac = stackalloc byte[32];
        Mac(key, method, pathAndQuery, timestamp, caller, body, mac);
        return "v1=" + Convert.ToHexStringLower(mac);
    }

    /// <summary>HMAC-SHA256 of the canonical text, built as UTF-8 on the stack (no intermediate strings).</summary>
    static void Mac(byte[] key, string method, string pathAndQuery, long timestamp, string caller, ReadOnlySpan<byte> body, Span<byte> mac)
    {
        Span<byte> bodyHash = stackalloc byte[32];
        SHA256.HashData(body, bodyHash);
        var max = method.Length + Encoding.UTF8.GetMaxByteCount(pathAndQuery.Length + caller.Length) + 20 + 64 + 4;
        var rented = max > 1024 ? System.Buffers.ArrayPool<byte>.Shared.Rent(max) : null;
        var text = rented ?? stackalloc byte[1024];
        var n = 0;
        foreach (var ch in method) text[n++] = (byte)char.ToUpperInvariant(ch); // HTTP methods are ASCII
        text[n++] = (byte)'\n';
        n += Encoding.UTF8.GetBytes(pathAndQuery, text[n..]);
        text[n++] = (byte)'\n';
        timestamp.TryFormat(text[n..], out var w, default, CultureInfo.InvariantCulture);
        n += w;
        text[n++] = (byte)'\n';
        n += Encoding.UTF8.GetBytes(caller, text[n..]);
        text[n++] = (byte)'\n';
        Convert.TryToHexStringLower(bodyHash, text[n..], out w);
        n += w;
        HMACSHA256.HashData(key, text[..n], mac);
        if (rented != null) System.Buffers.ArrayPool<byte>.Shared.Return(rented);
    }

    /// <summary>Adds the three headers to an outgoing request.</summary>
    public static void Apply(HttpRequestMessage request, byte[] key, string caller, ReadOnlySpan<byte> body, long? timestamp = null)
    {
        var ts = timestamp ?? DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var uri = request.RequestUri!;
        var path = uri.IsAbsoluteUri ? uri.PathAndQuery : uri.OriginalString;
        request.Headers.TryAddWithoutValidation(CallerHeader, caller);
        request.Headers.TryAddWithoutValidation(TimestampHeader, ts.ToString(CultureInfo.InvariantCulture));
        request.Headers.TryAddWithoutValidation(SignatureHeader, Sign(key, request.Method.Method, path, ts, caller, body));
    }

    /// <summary>Checks a request; returns null when valid, else why not (said to the caller, without the expected value).</summary>
    public static string? Verify(Func<string, byte[]?> keyOf, string method, string pathAndQuery, string? caller, string? timestamp,
        string? signature, ReadOnlySpan<byte> body, int maxAgeSeconds, out byte[]? key)
    {
        key = null;
        if (string.IsNullOrEmpty(caller) || string.IsNullOrEmpty(timestamp) || string.IsNullOrEmpty(signature))
            return $"unsigned request: send {CallerHeader}, {TimestampHeader} and {SignatureHeader} (HMAC-SHA256, see docs/serving.md)";
        key = keyOf(caller);
        if (key is null) return $"unknown caller '{(caller.Length > 64 ? caller[..64] : caller)}'";
        if (!long.TryParse(timestamp, NumberStyles.Integer, CultureInfo.InvariantCulture, out var ts))
            return $"{TimestampHeader} must be Unix seconds";
        var age = DateTimeOffset.UtcNow.ToUnixTimeSeconds() - ts;
        if (Math.Abs(age) > maxAgeSeconds)
            return $"stale or future timestamp ({age} s old; allowed +-{maxAgeSeconds} s): check the caller's clock";
        Span<byte> expected = stackalloc byte[32], given = stackalloc byte[32];
        Mac(key, method, pathAndQuery, ts, caller, body, expected);
        // "v1=" + 64 lower-case hex digits, exactly as Sign writes it.
        if (signature.Length != 67 || !signature.StartsWith("v1=", StringComparison.Ordinal) || signature.AsSpan(3).ContainsAnyInRange('A', 'F')
            || Convert.FromHexString(signature.AsSpan(3), given, out _, out var written) != System.Buffers.OperationStatus.Done || written != 32
            || !CryptographicOperations.FixedTimeEquals(expected, given))
            return "bad signature";
        return null;
    }
}
