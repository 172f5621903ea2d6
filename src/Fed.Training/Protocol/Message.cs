using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Numerics;
using System.Text;
using System.Text.Json;
using Fed.Core;
using Fed.Training.Crypto;

namespace Fed.Training.Protocol;

/// <summary>
/// What may cross a party boundary. Every part of a message is named "class.name", and the class says what it is:
/// <list type="bullet">
/// <item><c>ct</c>: Paillier ciphertexts (fixed-length big-endian elements of Z*_{n^2});</item>
/// <item><c>mask</c>: values of Z_n masked by a uniformly random element of Z_n only the receiver knows;</item>
/// <item><c>pk</c>: a public key;</item>
/// <item><c>psi</c>: PSI protocol elements (blinded/hashed ids, tokens), from the PSI role classes;</item>
/// <item><c>ctl</c>: control values (small JSON: sizes, hyper-parameters, iteration, stop decision, aggregate loss);</item>
/// <item><c>score</c>: a host's partial scores of the held-out rows after training (the federated prediction the guest
/// evaluates the model with; what serving sends the initiator for those ids).</item>
/// </list>
/// The privacy test checks every recorded message against this list.
/// </summary>
public sealed class Message
{
    public static readonly string[] Classes = ["ct", "mask", "pk", "psi", "ctl", "score"];
    public Dictionary<string, byte[]> Parts { get; } = new(StringComparer.Ordinal);

    public Message Put(string name, byte[] data)
    {
        var dot = name.IndexOf('.');
        if (dot <= 0 || !Classes.Contains(name[..dot])) throw new ArgumentException($"part '{name}' has no known class prefix");
        Parts[name] = data;
        return this;
    }

    public byte[] Get(string name, string context) =>
        Parts.TryGetValue(name, out var v) ? v : throw new FedFailureException($"protocol error: {context}: message lacks part '{name}'");

    /// <summary>Refuses a message that carries anything but exactly these parts (the arbiter decrypts nothing unasked).</summary>
    public Message Exactly(string context, params string[] names)
    {
        if (Parts.Count != names.Length || names.Any(n => !Parts.ContainsKey(n)))
            throw new FedFailureException($"protocol error: {context}: refused a message with parts [{string.Join(", ", Parts.Keys.Order(StringComparer.Ordinal))}], expected [{string.Join(", ", names)}]");
        return this;
    }

    public Message Control(object value) => Put("ctl.json", JsonSerializer.SerializeToUtf8Bytes(value));
    public T Control<T>(string context) => JsonSerializer.Deserialize<T>(Get("ctl.json", context))
        ?? throw new FedFailureException($"protocol error: {context}: empty control message");

    public Message Ciphertexts(string name, PaillierPublicKey key, PaillierCiphertext[] cts) => Put("ct." + name, key.Pack(cts));
    public PaillierCiphertext[] Ciphertexts(string name, PaillierPublicKey key, int expected, string context)
    {
        PaillierCiphertext[] cts;
        try { cts = key.Unpack(Get("ct." + name, context)); }
        catch (FormatException e) { throw new FedFailureException($"protocol error: {context}: bad ciphertexts in '{name}': {e.Message} (a party using a different key?)", e); }
        if (cts.Length != expected) throw new FedFailureException($"protocol error: {context}: expected {expected} ciphertexts in '{name}', got {cts.Length}");
        return cts;
    }

    public Message Masked(string name, BigInteger[] values, int elementBytes)
    {
        var bytes = new byte[values.Length * elementBytes];
        for (var i = 0; i < values.Length; i++) BigMath.WriteFixed(values[i], bytes.AsSpan(i * elementBytes, elementBytes));
        return Put("mask." + name, bytes);
    }

    public BigInteger[] Masked(string name, int elementBytes, int expected, string context)
    {
        var bytes = Get("mask." + name, context);
        if (bytes.Length != expected * elementBytes) throw new FedFailureException($"protocol error: {context}: '{name}' has {bytes.Length} bytes, expected {expected * elementBytes}");
        return Enumerable.Range(0, expected).Select(i => BigMath.ReadFixed(bytes.AsSpan(i * elementBytes, elementBytes))).ToArray();
    }

    public byte[] Encode()
    {
        var size = 4 + Parts.Sum(p => 2 + Encoding.UTF8.GetByteCount(p.Key) + 4 + p.Value.Length);
        var buf = new byte[size];
        var at = 0;
        BinaryPrimitives.WriteInt32LittleEndian(buf, Parts.Count); at += 4;
        foreach (var (name, data) in Parts.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            var nb = Encoding.UTF8.GetBytes(name);
            BinaryPrimitives.WriteUInt16LittleEndian(buf.AsSpan(at), (ushort)nb.Length); at += 2;
            nb.CopyTo(buf, at); at += nb.Length;
            BinaryPrimitives.WriteInt32LittleEndian(buf.AsSpan(at), data.Length); at += 4;
            data.CopyTo(buf, at); at += data.Length;
        }
        return buf;
    }

    public static Message Decode(ReadOnlySpan<byte> bytes)
    {
        try
        {
            var m = new Message();
            var count = BinaryPrimitives.ReadInt32LittleEndian(bytes);
            var at = 4;
            for (var i = 0; i < count; i++)
            {
                int nl = BinaryPrimitives.ReadUInt16LittleEndian(bytes[at..]); at += 2;
                var name = Encoding.UTF8.GetString(bytes.Slice(at, nl)); at += nl;
                var dl = BinaryPrimitives.ReadInt32LittleEndian(bytes[at..]); at += 4;
                m.Put(name, bytes.Slice(at, dl).ToArray()); at += dl;
            }
            if (at != bytes.Length) throw new FormatException("trailing bytes");
            return m;
        }
        catch (Exception e) when (e is ArgumentException or FormatException or IndexOutOfRangeException or ArgumentOutOfRangeException)
        {
            throw new FedFailureException($"protocol error: malformed message: {e.Message}", e);
        }
    }
}

/// <summary>A party's view of the network: named peers, tagged one-way messages, each delivered exactly once.</summary>
public interface IMessenger : IAsyncDisposable
{
    string Self { get; }
    /// <summary>Delivers a message (retrying; idempotent by tag). Throws <see cref="FedFailureException"/> when the peer is gone.</summary>
    Task SendAsync(string to, string tag, Message message, CancellationToken ct);
    /// <summary>Waits for the message with this tag from this peer; throws when the peer vanished or aborted.</summary>
    Task<Message> ReceiveAsync(string from, string tag, CancellationToken ct);
    /// <summary>Best effort: tells every peer this party stopped with an error, so they stop too.</summary>
    Task AbortAsync(string reason);
}

/// <summary>Observes every message as it crosses a party boundary (the privacy test records them all).</summary>
public delegate void MessageTap(string from, string to, string tag, byte[] body);

/// <summary>
/// Received-message store shared by the transports: deduplicates by (sender, tag), wakes the receiver,
/// and turns a peer's abort into an error at every waiting receive.
/// </summary>
public sealed class Mailbox
{
    readonly ConcurrentDictionary<(string From, string Tag), TaskCompletionSource<Message>> slots = new();
    readonly ConcurrentDictionary<(string From, string Tag), byte> consumed = new();
    volatile string? abortReason;
    readonly CancellationTokenSource aborted = new();

    TaskCompletionSource<Message> Slot(string from, string tag) =>
        slots.GetOrAdd((from, tag), _ => new TaskCompletionSource<Message>(TaskCreationOptions.RunContinuationsAsynchronously));

    /// <summary>Stores a message; false when it was a duplicate (a retried delivery).</summary>
    public bool Deliver(string from, string tag, Message message)
    {
        if (consumed.ContainsKey((from, tag))) return false;
        return Slot(from, tag).TrySetResult(message);
    }

    public void Abort(string from, string reason)
    {
        abortReason ??= $"party '{from}' stopped: {reason}";
        aborted.Cancel();
    }

    public string? AbortReason => abortReason;
    public CancellationToken Aborted => aborted.Token;

    public async Task<Message> ReceiveAsync(string from, string tag, TimeSpan timeout, Func<Task>? whileWaiting, CancellationToken ct)
    {
        var slot = Slot(from, tag);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, aborted.Token);
        var deadline = DateTime.UtcNow + timeout;
        while (!slot.Task.IsCompleted)
        {
            if (abortReason != null) throw new FedFailureException(abortReason);
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
                throw new FedFailureException($"party '{from}' sent no '{tag}' within {timeout.TotalSeconds:0}s; stopping (raise the timeout if the party is just slow)");
            try { await slot.Task.WaitAsync(left < TimeSpan.FromSeconds(2) ? left : TimeSpan.FromSeconds(2), linked.Token); }
            catch (TimeoutException) { if (whileWaiting != null) await whileWaiting(); }
            catch (OperationCanceledException) when (abortReason != null) { throw new FedFailureException(abortReason); }
        }
        slots.TryRemove((from, tag), out _);
        consumed[(from, tag)] = 0;
        return await slot.Task;
    }
}

/// <summary>In-process network for unit tests of the roles (fed train local uses real HTTP/2 + TLS, see HttpMessenger).</summary>
public sealed class InMemoryNetwork
{
    readonly ConcurrentDictionary<string, Mailbox> boxes = new();
    public MessageTap? Tap { get; set; }
    public TimeSpan Timeout { get; set; } = TimeSpan.FromMinutes(5);

    public IMessenger Join(string party) => new Member(this, party, boxes.GetOrAdd(party, _ => new Mailbox()));

    sealed class Member(InMemoryNetwork net, string self, Mailbox box) : IMessenger
    {
        public string Self => self;
        public Task SendAsync(string to, string tag, Message message, CancellationToken ct)
        {
            var body = message.Encode();
            net.Tap?.Invoke(self, to, tag, body);
            if (!net.boxes.TryGetValue(to, out var dest)) throw new FedFailureException($"party '{to}' is not on the network");
            dest.Deliver(self, tag, Message.Decode(body));
            return Task.CompletedTask;
        }
        public Task<Message> ReceiveAsync(string from, string tag, CancellationToken ct) => box.ReceiveAsync(from, tag, net.Timeout, null, ct);
        public Task AbortAsync(string reason)
        {
            foreach (var (name, b) in net.boxes) if (name != self) b.Abort(self, reason);
            return Task.CompletedTask;
        }
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
