using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Fed.Core.Security;

/// <summary>
/// Self-signed certificates (ECDSA P-256, server + client auth) and their SHA-256 pins: what the training transport
/// and the serving services authenticate peers by. No CA is involved: each side is configured with the other's pin.
/// </summary>
public static class Certificates
{
    public static X509Certificate2 Create(string name, TimeSpan? lifetime = null, IEnumerable<string>? dnsNames = null, IEnumerable<IPAddress>? addresses = null)
    {
        using var ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest($"CN=fed-{name}", ec, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddDnsName("localhost");
        foreach (var d in dnsNames ?? []) san.AddDnsName(d);
        foreach (var a in addresses ?? []) san.AddIpAddress(a);
        req.CertificateExtensions.Add(san.Build());
        req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false)); // server + client auth
        using var cert = req.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.Add(lifetime ?? TimeSpan.FromDays(30)));
        return X509CertificateLoader.LoadPkcs12(cert.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>The pin: lower-case hex SHA-256 of the DER certificate.</summary>
    public static string Pin(X509Certificate cert) => Convert.ToHexStringLower(SHA256.HashData(cert.GetRawCertData()));

    /// <summary>Checks a configured pin's form (64 hex digits) and returns it lower-case.</summary>
    public static string CheckPin(string? pin, string what) =>
        pin is { Length: 64 } && pin.All(char.IsAsciiHexDigit) ? pin.ToLowerInvariant()
            : throw new BadInputException($"{what}: must be the SHA-256 pin of a certificate (64 hex digits, printed by `fed serve cert` / `fed train cert`), got '{pin}'");

    /// <summary>Writes the certificate with its private key as PKCS#12, mode 0600, encrypted with the password if one is given.</summary>
    public static void WritePkcs12(X509Certificate2 cert, string path, string? password) =>
        SecretFiles.Write(path, cert.Export(X509ContentType.Pkcs12, password));

    /// <summary>Loads a PKCS#12 (certificate + private key). A file group or others can read is refused unless allowed.</summary>
    public static X509Certificate2 LoadPkcs12(string path, string? password, string what, bool allowInsecureMode = false)
    {
        SecretFiles.CheckPrivate(path, what, allowInsecureMode);
        try { return X509CertificateLoader.LoadPkcs12FromFile(path, password); }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"{what}: cannot load the PKCS#12 certificate '{path}' ({(password is null ? "no password given" : "with the given password")}): {e.Message}", e);
        }
    }
}
