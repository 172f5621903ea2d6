using Fed.Core;
using Fed.Training.Crypto;
using Fed.Training.Data;
using Fed.Training.Protocol;
using Fed.Training.Train;
using Xunit.Abstractions;

namespace Fed.Training.Tests;

/// <summary>
/// The training trust model is enforced by each party from its own configuration (issue 12, item 6): a modified guest
/// is played by wrapping the honest guest's messenger and rewriting what it sends.
/// </summary>
public class TrustTests(ITestOutputHelper output)
{
    /// <summary>Rewrites messages the wrapped party sends (a guest that deviates from the protocol); it knows the
    /// arbiter's public key once the party received it.</summary>
    sealed class TamperingMessenger(IMessenger inner, Func<string, string, Message, PaillierPublicKey?, Message> rewrite) : IMessenger
    {
        PaillierPublicKey? key;
        public string Self => inner.Self;
        public Task SendAsync(string to, string tag, Message message, CancellationToken ct) => inner.SendAsync(to, tag, rewrite(to, tag, message, key), ct);
        public async Task<Message> ReceiveAsync(string from, string tag, CancellationToken ct)
        {
            var m = await inner.ReceiveAsync(from, tag, ct);
            if (tag == "pubkey") key = PaillierPublicKey.FromBytes(m.Get("pk.paillier", "test"));
            return m;
        }
        public Task AbortAsync(string reason) => inner.AbortAsync(reason);
        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }

    static readonly TrainOptions Test = new() { KeyBits = 1024, InsecureTestKeyBits = true, MaxIter = 2 };

    sealed record Run(Task<PartyOutcome> Guest, Task<PartyOutcome> Host, Task<PartyOutcome> Arbiter);

    /// <summary>Guest, host and arbiter of breast_cancer on an in-process network; each role's own settings.</summary>
    Run Start(TrainOptions guestOptions, string arbiterNamedByGuest = "arbiter", bool hostAllowsTestKeys = true, bool arbiterAllowsTestKeys = true,
        Func<string, string, Message, PaillierPublicKey?, Message>? tamper = null)
    {
        var parties = TrainingFixtures.Parties("breast_cancer");
        var net = new InMemoryNetwork { Timeout = TimeSpan.FromMinutes(2) };
        IMessenger g = net.Join("guest"), h = net.Join("host"), a = net.Join("arbiter");
        if (tamper != null) g = new TamperingMessenger(g, tamper);
        var guestTable = PartyTable.Load(parties[0].Path, "id", "y");
        var hostTable = PartyTable.Load(parties[1].Path, "id", null);
        return new Run(
            LocalTraining.Guarded(g, () => new GuestRole(g, guestTable, guestOptions, ["host"], arbiterNamedByGuest, "ecdh", output.WriteLine).RunAsync(default)),
            LocalTraining.Guarded(h, () => new HostRole(h, hostTable, "guest", "arbiter", ["host"], guestOptions.Kind, hostAllowsTestKeys, output.WriteLine).RunAsync(default)),
            LocalTraining.Guarded(a, () => new ArbiterRole(a, "guest", ["host"], arbiterAllowsTestKeys, output.WriteLine).RunAsync(default)));
    }

    static async Task<Exception> Fails(Task<PartyOutcome> role)
    {
        var e = await Assert.ThrowsAnyAsync<FedException>(() => role.WaitAsync(TimeSpan.FromMinutes(3)));
        return e;
    }

    [Fact]
    public async Task HostRefusesAGuestThatNamesItselfArbiter()
    {
        var run = Start(Test, arbiterNamedByGuest: "guest");
        var e = await Fails(run.Host);
        Assert.Contains("names 'guest' as arbiter", e.Message);
        Assert.Contains("configuration says 'arbiter'", e.Message);
        await Fails(run.Guest); // stopped by the host's abort: nothing was aligned, no key was used
    }

    [Fact]
    public void A1024BitKeyIsRefusedWithoutTheTestFlag()
    {
        var e = Assert.Throws<BadInputException>(() => new TrainOptions { KeyBits = 1024 }.Validate());
        Assert.Contains("1024-bit Paillier key is refused", e.Message);
        Assert.Contains("--insecure-test-key-bits", e.Message);
        new TrainOptions { KeyBits = 1024, InsecureTestKeyBits = true }.Validate();
        new TrainOptions { KeyBits = 2048 }.Validate();
    }

    [Fact]
    public async Task HostRefusesA1024BitKeyItsOwnConfigurationDoesNotAllow()
    {
        // the guest and the arbiter agree on a test key; the host's configuration does not allow one
        var run = Start(Test, hostAllowsTestKeys: false);
        var e = await Fails(run.Host);
        Assert.Contains("host: the arbiter's public key: a 1024-bit Paillier key is refused", e.Message);
        await Fails(run.Guest);
    }

    [Fact]
    public async Task ArbiterRefusesToGenerateA1024BitKeyItsOwnConfigurationDoesNotAllow()
    {
        var run = Start(Test, arbiterAllowsTestKeys: false);
        var e = await Fails(run.Arbiter);
        Assert.Contains("arbiter: the planned key: a 1024-bit Paillier key is refused", e.Message);
    }

    [Fact]
    public async Task GuestRefusesABatchBelowTheMinimum()
    {
        // breast_cancer: guest 10 features, host 20: minimum 2 x max(11, 20) = 40 rows
        Assert.Equal(40, BatchPlan.MinimumBatch(10, [20]));
        var run = Start(Test with { BatchSize = 39 });
        var e = await Fails(run.Guest);
        Assert.Contains("mini-batches of 39 rows are below the minimum of 40", e.Message);
    }

    static Message WithBatch(Message m, int batch)
    {
        var plan = m.Control<Plan>("plan") with { BatchSize = batch };
        return new Message().Control(plan);
    }

    [Fact]
    public async Task HostAndArbiterEachRefuseAPlanWithABatchBelowTheMinimum()
    {
        // an honest guest (full batches) whose plan is rewritten on the wire to 20-row batches
        var run = Start(Test, tamper: (to, tag, m, _) => tag == "plan" ? WithBatch(m, 20) : m);
        var h = await Fails(run.Host);
        var a = await Fails(run.Arbiter);
        Assert.Contains("host: mini-batches of 20 rows are below the minimum of 40", h.Message + a.Message);
        // whichever refuses first aborts the other; at least one refusal is each party's own (both are checked below)
        Assert.True(h.Message.Contains("host: mini-batches of 20 rows") || a.Message.Contains("arbiter: mini-batches of 20 rows"));
    }

    [Fact]
    public async Task ArbiterChecksTheBatchRuleItself()
    {
        // the arbiter alone: a plan with 20-row batches is refused before any key is made
        var net = new InMemoryNetwork { Timeout = TimeSpan.FromMinutes(1) };
        var g = net.Join("guest"); var a = net.Join("arbiter"); net.Join("host");
        var plan = new Plan("logistic", [], 1, 500, 400, 3, 2, 0.3, 0.01, 20, 1e-6, null, 42, 1024, 20, "m", 1, ["guest", "host"], [10, 20]);
        await g.SendAsync("arbiter", "plan", new Message().Control(plan), default);
        var e = await Assert.ThrowsAsync<BadInputException>(() => new ArbiterRole(a, "guest", ["host"], true).RunAsync(default));
        Assert.Contains("arbiter: mini-batches of 20 rows are below the minimum of 40", e.Message);
    }

    [Fact]
    public async Task HostChecksTheBatchRuleItself()
    {
        var run = Start(Test, tamper: (to, tag, m, _) => tag == "plan" && to == "host" ? WithBatch(m, 20) : m);
        var e = await Fails(run.Host);
        Assert.Contains("host: mini-batches of 20 rows are below the minimum of 40", e.Message);
    }

    [Fact]
    public async Task ArbiterRefusesToDecryptAnExtraCiphertext()
    {
        // the guest smuggles one more ciphertext (e.g. a host's [[z_h]]) into its gradient for decryption
        var run = Start(Test, tamper: (to, tag, m, key) =>
        {
            if (tag.EndsWith(".grad") && to == "arbiter")
            {
                var cts = key!.Unpack(m.Get("ct.g", "test"));
                return new Message().Ciphertexts("g", key, [.. cts, cts[0]]);
            }
            return m;
        });
        var e = await Fails(run.Arbiter);
        Assert.Contains("gradient of guest: expected 11 ciphertexts in 'g', got 12", e.Message);
        await Fails(run.Guest);
    }

    [Fact]
    public async Task ArbiterRefusesAnExtraMaskedForward()
    {
        // the guest asks for the sines and cosines of one more value than the batch has rows
        var run = Start(Test, tamper: (to, tag, m, key) =>
        {
            if (tag.EndsWith(".sig") && to == "arbiter")
            {
                var cts = key!.Unpack(m.Get("ct.s", "test"));
                return new Message().Ciphertexts("s", key, [.. cts, cts[0]]);
            }
            return m;
        });
        var e = await Fails(run.Arbiter);
        Assert.Contains("masked forward: expected 355 ciphertexts in 's', got 356", e.Message);
    }

    [Fact]
    public async Task ArbiterRefusesAnExtraPartInAMessageItDecrypts()
    {
        var run = Start(Test, tamper: (to, tag, m, _) =>
        {
            if (tag.EndsWith(".loss") && to == "arbiter") m.Put("ct.extra", m.Get("ct.loss", "test"));
            return m;
        });
        var e = await Fails(run.Arbiter);
        Assert.Contains("loss: refused a message with parts [ct.extra, ct.loss], expected [ct.loss]", e.Message);
    }
}
