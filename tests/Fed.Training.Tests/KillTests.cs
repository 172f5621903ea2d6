using Fed.Core;
using Fed.Training.Data;
using Fed.Training.Protocol;
using Fed.Training.Train;
using Fed.Training.Transport;
using Xunit.Abstractions;

namespace Fed.Training.Tests;

/// <summary>
/// A host vanishes mid-training: its HTTP/2 endpoint goes away without a word (no abort message) and its role stops.
/// Every other party must end with a clear error naming the problem, and no model file may be written.
/// </summary>
public class KillTests(ITestOutputHelper output)
{
    [Fact]
    public async Task KillingAHostMidTrainingStopsEveryPartyWithoutModels()
    {
        var parties = TrainingFixtures.Parties("breast_cancer");
        var outDir = TrainingFixtures.TempDir();
        var timeouts = new TransportTimeouts { Liveness = TimeSpan.FromSeconds(4), Send = TimeSpan.FromSeconds(8) };
        var names = new[] { "guest", "host", "arbiter" };
        var nets = new List<HttpMessenger>();
        foreach (var n in names) nets.Add(await HttpMessenger.StartAsync(n, PartyCertificates.Create(n), timeouts: timeouts));
        var eps = nets.Select(m => new PeerEndpoint(m.Self, m.Url, m.CertSha256)).ToList();
        foreach (var m in nets) m.Connect(eps);
        var o = new TrainOptions { KeyBits = 1024, MaxIter = 50 };
        var guestTable = PartyTable.Load(parties[0].Path, "id", "y");
        var hostTable = PartyTable.Load(parties[1].Path, "id", null);
        var epochSeen = new TaskCompletionSource();
        void Log(string s) { output.WriteLine(s); if (s.Contains("epoch 2")) epochSeen.TrySetResult(); }

        using var killHost = new CancellationTokenSource();
        var guest = LocalTraining.Guarded(nets[0], () => new GuestRole(nets[0], guestTable, o, ["host"], "arbiter", "ecdh", Log).RunAsync(default));
        var host = Task.Run(() => new HostRole(nets[1], hostTable, "guest", o.Kind, Log).RunAsync(killHost.Token));
        var arbiter = LocalTraining.Guarded(nets[2], () => new ArbiterRole(nets[2], "guest", ["host"], Log).RunAsync(default));

        await epochSeen.Task.WaitAsync(TimeSpan.FromMinutes(5));
        killHost.Cancel();                 // the host process "dies": its work stops ...
        await nets[1].DisposeAsync();      // ... and its endpoint disappears, with no abort sent.

        var g = await Assert.ThrowsAnyAsync<FedException>(() => guest.WaitAsync(TimeSpan.FromMinutes(3)));
        var a = await Assert.ThrowsAnyAsync<FedException>(() => arbiter.WaitAsync(TimeSpan.FromMinutes(3)));
        output.WriteLine("guest: " + g.Message);
        output.WriteLine("arbiter: " + a.Message);
        Assert.Matches("host.*(vanished|unreachable)|stopped", g.Message);
        Assert.Matches("host|guest", a.Message);
        await Assert.ThrowsAnyAsync<Exception>(() => host);
        Assert.Empty(Directory.GetFiles(outDir, "*.model.json"));
        await nets[0].DisposeAsync();
        await nets[2].DisposeAsync();
    }
}
