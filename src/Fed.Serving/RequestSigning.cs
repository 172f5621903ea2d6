using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Fed.Serving;

/// <summary>
/// Signed requests between parties: HMAC-SHA256, with the key shared by the pair, over
/// <c>METHOD \n REQUEST-TARGET \n TIMESTAMP \n NONCE \n CALLER \n hex(SHA-256(body))</c>, where REQUEST-TARGET is the
/// path and query exactly as sent on the wire (not decoded or normalized).
/// Headers: <c>X-Fed-Caller</c>, <c>X-Fed-Timestamp</c> (Unix seconds), <c>X-Fed-Nonce</c> (16-64 characters of
/// <c>[A-Za-z0-9_-]</c>, fresh per request), <c>X-Fed-Signature</c> (<c>v2=</c> + lower hex).
/// A request without them, with a wrong signature, with a timestamp outside the allowed age, or whose (caller, nonce)
/// was already seen within that window (<see cref="NonceStore"/>) is refused (401).
/// </summary>
public static class RequestSigning
{
    public const string CallerHeader = "X-Fed-Caller";
    public const string TimestampHeader = "X-Fed-Timestamp";
    public const string NonceHeader = "X-Fed-Nonce";
    public const string SignatureHeader = "X-Fed-Signature";
    const string Prefix = "v2=";

    public static string Sign(byte[] key, string method, string pathAndQuery, long timestamp, string nonce, string caller, ReadOnlySpan<byte> body)
    {
        Span<byte> mac = stackalloc byte[32];
        Mac(key, method, pathAndQuery, timestamp, nonce, caller, body, mac);
        return Prefix + Convert.ToHexStringLower(mac);
    }

    /// <summary>A fresh nonce: 128 random bits, 32 hex digits.</summary>
    public static string NewNonce() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    /// <summary>HMAC-SHA256 of the canonical text, built as UTF-8 on the stack (no intermediate strings).</summary>
    static void Mac(byte[] key, string method, string pathAndQuery, long timestamp, string nonce, string caller, ReadOnlySpan<byte> body, Span<byte> mac)
    {
        Span<byte> bodyHash = stackalloc byte[32];
        SHA256.HashData(body, bodyHash);
        var max = method.Length + Encoding.UTF8.GetMaxByteCount(pathAndQuery.Length + nonce.Length + caller.Length) + 20 + 64 + 5;
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
        n += Encoding.UTF8.GetBytes(nonce, text[n..]);
        text[n++] = (byte)'\n';
        n += Encoding.UTF8.GetBytes(caller, text[n..]);
        text[n++] = (byte)'\n';
        Convert.TryToHexStringLower(bodyHash, text[n..], out w);
        n += w;
        HMACSHA256.HashData(key, text[..n], mac);
        if (rented != null) System.Buffers.ArrayPool<byte>.Shared.Return(rented);
    }

    /// <summary>Adds the four headers to an outgoing request (a fresh nonce unless one is given).</summary>
    public static void Apply(HttpRequestMessage request, byte[] key, string caller, ReadOnlySpan<byte> body, long? timestamp = null, string? nonce = null)
    {
        var ts = timestamp ?? DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        nonce ??= NewNonce();
        var uri = request.RequestUri!;
        var path = uri.IsAbsoluteUri ? uri.PathAndQuery : uri.OriginalString;
        request.Headers.TryAddWithoutValidation(CallerHeader, caller);
        request.Headers.TryAddWithoutValidation(TimestampHeader, ts.ToString(CultureInfo.InvariantCulture));
        request.Headers.TryAddWithoutValidation(NonceHeader, nonce);
        request.Headers.TryAddWithoutValidation(SignatureHeader, Sign(key, request.Method.Method, path, ts, nonce, caller, body));
    }

    static bool ValidNonce(string nonce) =>
        nonce.Length is >= 16 and <= 64 && nonce.All(ch => char.IsAsciiLetterOrDigit(ch) || ch is '-' or '_');

    /// <summary>Checks a request's signature and age (not yet its nonce's freshness: see <see cref="NonceStore"/>);
    /// returns null when valid, else why not (said to the caller, without the expected value).</summary>
    public static string? Verify(Func<string, byte[]?> keyOf, string method, string pathAndQuery, string? caller, string? timestamp,
        string? nonce, string? signature, ReadOnlySpan<byte> body, int maxAgeSeconds)
    {
        if (string.IsNullOrEmpty(caller) || string.IsNullOrEmpty(timestamp) || string.IsNullOrEmpty(nonce) || string.IsNullOrEmpty(signature))
            return $"unsigned request: send {CallerHeader}, {TimestampHeader}, {NonceHeader} and {SignatureHeader} (HMAC-SHA256, see docs/serving.md)";
        var key = keyOf(caller);
        if (key is null) return $"unknown caller '{(caller.Length > 64 ? caller[..64] : caller)}'";
        if (!ValidNonce(nonce)) return $"{NonceHeader} must be 16-64 characters of A-Z a-z 0-9 - _";
        if (!long.TryParse(timestamp, NumberStyles.Integer, CultureInfo.InvariantCulture, out var ts))
            return $"{TimestampHeader} must be Unix seconds";
        var age = DateTimeOffset.UtcNow.ToUnixTimeSeconds() - ts;
        if (Math.Abs(age) > maxAgeSeconds)
            return $"stale or future timestamp ({age} s old; allowed +-{maxAgeSeconds} s): check the caller's clock";
        Span<byte> expected = stackalloc byte[32], given = stackalloc byte[32];
        Mac(key, method, pathAndQuery, ts, nonce, caller, body, expected);
        // "v2=" + 64 lower-case hex digits, exactly as Sign writes it.
        if (signature.Length != 67 || !signature.StartsWith(Prefix, StringComparison.Ordinal) || signature.AsSpan(3).ContainsAnyInRange('A', 'F')
            || Convert.FromHexString(signature.AsSpan(3), given, out _, out var written) != System.Buffers.OperationStatus.Done || written != 32
            || !CryptographicOperations.FixedTimeEquals(expected, given))
            return "bad signature";
        return null;
    }
}
