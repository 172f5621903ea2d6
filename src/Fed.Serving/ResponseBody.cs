using System.Buffers;
using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Fed.Serving;

/// <summary>
/// A JSON response built in a pooled buffer and sent with Content-Length in one write. Streaming it unsized would
/// make Kestrel use chunked encoding, which sends the body and the terminating chunk separately: the caller then
/// wakes up twice per answer. Build synchronously, then <see cref="SendAsync"/> once; dispose returns the buffer.
/// </summary>
public sealed class ResponseBody : IBufferWriter<byte>, IDisposable
{
    byte[] _buffer;
    int _length;

    public ResponseBody(int capacity = 4096) => _buffer = ArrayPool<byte>.Shared.Rent(capacity);

    /// <summary>A writer over this buffer (caller disposes it, or flushes before sending).</summary>
    public Utf8JsonWriter Json() => new(this);

    public ReadOnlyMemory<byte> Written => _buffer.AsMemory(0, _length);

    public void Advance(int count) => _length += count;

    public Memory<byte> GetMemory(int sizeHint = 0) { Reserve(sizeHint); return _buffer.AsMemory(_length); }

    public Span<byte> GetSpan(int sizeHint = 0) { Reserve(sizeHint); return _buffer.AsSpan(_length); }

    void Reserve(int sizeHint)
    {
        var need = _length + Math.Max(sizeHint, 256);
        if (need <= _buffer.Length) return;
        var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(need, _buffer.Length * 2));
        _buffer.AsSpan(0, _length).CopyTo(bigger);
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = bigger;
    }

    public Task SendAsync(HttpResponse response, int status = 200) => SendAsync(response, Written, status);

    /// <summary>Sends bytes that are already a whole JSON document (e.g. a cached record) the same way.</summary>
    public static Task SendAsync(HttpResponse response, ReadOnlyMemory<byte> json, int status = 200)
    {
        response.StatusCode = status;
        response.ContentType = "application/json";
        response.ContentLength = json.Length;
        return response.Body.WriteAsync(json).AsTask();
    }

    public void Dispose()
    {
        var b = _buffer;
        _buffer = [];
        _length = 0;
        if (b.Length > 0) ArrayPool<byte>.Shared.Return(b);
    }
}
