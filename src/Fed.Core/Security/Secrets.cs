using System.Text.RegularExpressions;

namespace Fed.Core.Security;

/// <summary>
/// The one redaction helper: every connection setting, error message and log value that may carry a password goes
/// through it before it is shown (health endpoints, logs, error messages, --json). It masks the values of
/// password-like settings in Redis configuration strings (<c>password=...</c>), ODBC connection strings
/// (<c>PWD=</c>, <c>Pwd</c>, <c>Password=</c>, braced values included), Kafka properties (<c>sasl.password</c>,
/// <c>ssl.key.password</c>, <c>ssl.keystore.password</c>, ..., <c>*.secret</c>) and URL user info
/// (<c>redis://user:pass@host</c>).
/// </summary>
public static partial class Secrets
{
    public const string Mask = "***";

    /// <summary>True for a setting name whose value is secret (case-insensitive, Kafka dotted names included).</summary>
    public static bool IsSecretKey(string key)
    {
        var k = key.Trim().ToLowerInvariant();
        return k is "pwd" or "pass" or "passwd" or "password" or "token" or "apikey" or "api_key"
            || k.EndsWith("password", StringComparison.Ordinal) || k.EndsWith(".secret", StringComparison.Ordinal)
            || k.EndsWith("_secret", StringComparison.Ordinal) || k.EndsWith("secret.key", StringComparison.Ordinal)
            || k.EndsWith(".key.pem", StringComparison.Ordinal) || k.EndsWith("keystore.key", StringComparison.Ordinal)
            || k.EndsWith("sasl.jaas.config", StringComparison.Ordinal);
    }

    /// <summary>A setting's value as it may be shown.</summary>
    public static string Value(string key, string? value) => value is null ? "" : IsSecretKey(key) ? Mask : Redact(value);

    /// <summary>A settings dictionary (e.g. Kafka properties) as it may be shown.</summary>
    public static Dictionary<string, string> Settings(IEnumerable<KeyValuePair<string, string>> settings) =>
        settings.ToDictionary(kv => kv.Key, kv => Value(kv.Key, kv.Value), StringComparer.Ordinal);

    /// <summary>Any text (a connection string, an exception message) with secret values masked.</summary>
    public static string Redact(string? text)
    {
        if (string.IsNullOrEmpty(text)) return text ?? "";
        var s = KeyValue().Replace(text, m => m.Groups["k"].Value + m.Groups["eq"].Value + Mask);
        return UserInfo().Replace(s, m => m.Groups["scheme"].Value + m.Groups["user"].Value + ":" + Mask + "@");
    }

    // name = value, value braced ({...}, ODBC), quoted, or up to the next separator (; , & whitespace or quote).
    [GeneratedRegex("""(?<k>\b(?:[A-Za-z0-9_.\-]*password|pwd|passwd|pass|token|apikey|api_key|[A-Za-z0-9_.\-]*[._]secret|sasl\.jaas\.config|ssl\.key\.pem))(?<eq>\s*[=:]\s*)(?:\{(?:[^}]|\}\})*\}|"[^"]*"|'[^']*'|[^;,&\s"']*)""",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex KeyValue();

    [GeneratedRegex("""(?<scheme>\b[a-z][a-z0-9+.\-]*://)(?<user>[^:/@\s]*):[^@/\s]*@""", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex UserInfo();
}
