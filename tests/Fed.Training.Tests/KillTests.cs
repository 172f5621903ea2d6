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
        var epochSeen = new TaskCompletionSource();
        void Log(string s) { output.WriteLine(s); if (s.Contains("epoch 2")) epochSeen.TrySetResult(); }
        // Guest and arbiter run as `fed train party` runs them, with the output directory: a model file would be written
        // into outDir the moment a party believed training had finished.
        PartyConfig Config(string party, string role) => new()
        {
            Party = party, Role = role, Guest = "guest", Hosts = ["host"], Arbiter = "arbiter", Out = outDir,
            Data = role == "guest" ? parties[0].Path : role == "host" ? parties[1].Path : null, LabelColumn = role == "guest" ? "y" : null,
            KeyBits = 1024, InsecureTestKeyBits = true, MaxIter = 50,
        };
        var hostTable = PartyTable.Load(parties[1].Path, "id", null);

        using var killHost = new CancellationTokenSource();
        var guest = PartyRunner.RunRoleAsync(nets[0], Config("guest", "guest"), Log);
        var host = Task.Run(() => new HostRole(nets[1], hostTable, "guest", "arbiter", ["host"], Fed.Core.Model.ModelKind.Logistic, true, Log).RunAsync(killHost.Token));
        var arbiter = PartyRunner.RunRoleAsync(nets[2], Config("arbiter", "arbiter"), Log);

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
        Assert.False(File.Exists(Path.Combine(outDir, "report.json")));
        await nets[0].DisposeAsync();
        await nets[2].DisposeAsync();
    }
}
