namespace Fed.Training.Psi;

// Wire messages. Every field is a byte array of fixed-size elements concatenated (32 bytes for tokens and
// X25519 points, the RSA modulus length for RSA elements), so any transport can carry them as-is
// (System.Text.Json writes byte[] as base64). None of them contains an id or SHA-256(id).

/// <summary>Guest -> host (ECDH): X25519(a, H(id)) for each guest id, in the guest's order.</summary>
public sealed record EcdhPsiRequest(byte[] GuestPoints);

/// <summary>Host -> guest (ECDH): X25519(b, guest point) in request order, and X25519(b, H(id)) for each host id,
/// sorted bytewise (so the order says nothing about the host's rows).</summary>
public sealed record EcdhPsiResponse(byte[] DoubledGuestPoints, byte[] HostPoints);

/// <summary>Host -> guest (RSA), first message: the host's RSA public key, big-endian.</summary>
public sealed record RsaPsiPublicKey(byte[] Modulus, byte[] Exponent);

/// <summary>Guest -> host (RSA): FDH(id) * r^e mod n per guest id (uniformly random to the host).</summary>
public sealed record RsaPsiRequest(byte[] Blinded);

/// <summary>Host -> guest (RSA): blinded^d mod n in request order, and the host's own tokens
/// SHA-256(tag || FDH(id)^d mod n), sorted bytewise.</summary>
public sealed record RsaPsiResponse(byte[] Signatures, byte[] HostTokens);

/// <summary>Guest -> each host, last message: the final intersection as 32-byte tokens that host itself produced
/// (ECDH: its host points; RSA: its host tokens), in the aligned row order. Reveals to a host only which of its
/// own rows are in the intersection of all parties, and their order.</summary>
public sealed record PsiAlignment(byte[] Tokens);
