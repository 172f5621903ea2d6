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
        Span<byte> bodyHash = stackalloc byte[32];
        SHA256.HashData(body, bodyHash);
        var canonical = string.Create(CultureInfo.InvariantCulture,
            $"{method.ToUpperInvariant()}\n{pathAndQuery}\n{timestamp}\n{caller}\n{Convert.ToHexStringLower(bodyHash)}");
        Span<byte> mac = stackalloc byte[32];
        HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(canonical), mac);
        return "v1=" + Convert.ToHexStringLower(mac);
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
        var expected = Sign(key, method, pathAndQuery, ts, caller, body);
        if (!CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(expected), Encoding.ASCII.GetBytes(signature)))
            return "bad signature";
        return null;
    }
}
