using System.Security.Cryptography;

namespace Fed.SparkPredict;

/// <summary>A write-only stream that hashes what passes through (the manifest's sha256, without reading the file again).</summary>
sealed class HashingStream(Stream inner) : Stream
{
    readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    long _pos;
    public string Hex() => Convert.ToHexStringLower(_sha.GetHashAndReset());
    public override void Write(ReadOnlySpan<byte> buffer) { _sha.AppendData(buffer); inner.Write(buffer); _pos += buffer.Length; }
    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
    public override void Flush() => inner.Flush();
    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => _pos;
    public override long Position { get => _pos; set => throw new NotSupportedException(); }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    protected override void Dispose(bool disposing) { if (disposing) { inner.Dispose(); _sha.Dispose(); } base.Dispose(disposing); }
}
