using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Fed.Core;
using Fed.Core.Model;
using Fed.Core.Security;
using Fed.Training.Horizontal;
using Fed.Training.Protocol;
using Xunit.Abstractions;

namespace Fed.Training.Tests.Horizontal;

/// <summary>`fed train party --role client|aggregator|coordinator --config FILE`: each role from its own config file,
/// certificate file and fixed port (what one process per role runs), against the whole topology of horizontal-local.</summary>
public class HorizontalPartyTests(ITestOutputHelper output)
{
    static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    [Fact]
    public async Task Roles_run_from_their_own_configs_and_give_the_bits_of_horizontal_local()
    {
        var dir = TrainingFixtures.TempDir();
        var clients = HorizontalFixtures.Split("breast_cancer", "iid", Path.Combine(dir, "data"));
        var (_, _, l2) = HorizontalFixtures.Reference("breast_cancer");
        var local = await HorizontalLocal.RunAsync(clients, 2, new HorizontalOptions { L2 = l2, LearningRate = 1, Rounds = 20 }, Path.Combine(dir, "local"));

        string[] aggs = ["agg1", "agg2"];
        var names = new List<string> { "coordinator" };
        names.AddRange(aggs);
        names.AddRange(clients.Select(c => c.Name));
        var certs = names.ToDictionary(n => n, n => Certificates.Create(n));
        var ports = names.ToDictionary(n => n, _ => FreePort());
        PartyConfig.PeerConfig Peer(string n) => new() { Name = n, Url = $"https://127.0.0.1:{ports[n]}", CertSha256 = Certificates.Pin(certs[n]) };
        string Write(HorizontalPartyConfig c)
        {
            var pfx = Path.Combine(dir, c.Name + ".p12");
            Certificates.WritePkcs12(certs[c.Name], pfx, null);
            c.Certificate = pfx;
            c.ListenPort = ports[c.Name];
            var path = Path.Combine(dir, c.Name + ".json");
            File.WriteAllText(path, JsonSerializer.Serialize(c));
            return path;
        }
        var configs = new Dictionary<string, (string Role, string Path)>
        {
            ["coordinator"] = ("coordinator", Write(new HorizontalPartyConfig
            {
                Name = "coordinator", Aggregators = [.. aggs], Peers = [.. aggs.Select(Peer)], Out = Path.Combine(dir, "coordinator-out"),
                L2 = l2, LearningRate = 1, Rounds = 20,
            })),
        };
        for (var a = 0; a < 2; a++)
        {
            var group = clients.Skip(3 * a).Take(3).Select(c => c.Name).ToList();
            configs[aggs[a]] = ("aggregator", Write(new HorizontalPartyConfig { Name = aggs[a], Clients = group, Peers = [.. group.Append("coordinator").Select(Peer)] }));
            foreach (var c in clients.Skip(3 * a).Take(3))
                configs[c.Name] = ("client", Write(new HorizontalPartyConfig
                {
                    Name = c.Name, Aggregator = aggs[a], Data = c.Path, Peers = [Peer(aggs[a])], Out = Path.Combine(dir, c.Name + "-out"),
                }));
        }
        var runs = configs.Select(kv => Task.Run(() => HorizontalParty.RunAsync(kv.Value.Role, HorizontalPartyConfig.Load(kv.Value.Path), output.WriteLine))).ToList();
        await Task.WhenAll(runs);

        var want = ModelFile.Read(local.ModelPath);
        foreach (var path in clients.Select(c => Path.Combine(dir, c.Name + "-out", "global.model.json")).Prepend(Path.Combine(dir, "coordinator-out", "global.model.json")))
        {
            var got = ModelFile.Read(path);
            Assert.Equal(want.Features, got.Features);
            Assert.Equal(want.Weights[0].Select(BitConverter.DoubleToInt64Bits), got.Weights[0].Select(BitConverter.DoubleToInt64Bits));
            Assert.Equal(want.Intercepts.Select(BitConverter.DoubleToInt64Bits), got.Intercepts.Select(BitConverter.DoubleToInt64Bits));
        }
        Assert.True(File.Exists(Path.Combine(dir, "coordinator-out", "report.json")));
    }

    [Fact]
    public void A_role_config_with_an_unknown_dp_level_or_key_is_refused()
    {
        var dir = TrainingFixtures.TempDir();
        var bad = Path.Combine(dir, "bad.json");
        File.WriteAllText(bad, """{"name": "coordinator", "dp_epsilon": 8, "dp_level": "organisation", "aggregators": ["agg1"], "out": "x"}""");
        var e = Assert.Throws<BadInputException>(() => HorizontalPartyConfig.Load(bad).Options());
        Assert.Contains("organisation", e.Message);
        File.WriteAllText(bad, """{"name": "coordinator", "dp_levle": "client"}""");
        Assert.Throws<BadInputException>(() => HorizontalPartyConfig.Load(bad));
        File.WriteAllText(bad, """{"name": "coordinator", "dp_level": "client"}""");
        Assert.Contains("needs --dp-epsilon", Assert.Throws<BadInputException>(() => HorizontalPartyConfig.Load(bad).Options()).Message);
    }

    [Fact]
    public void A_plan_with_an_unknown_kind_is_refused_by_the_party_not_defaulted()
    {
        var plan = HorizontalPlan.From(new HorizontalOptions(), ["f1"], ["agg1"], "coordinator", new byte[16]);
        Assert.Equal(ModelKind.Logistic, plan.ToOptions().Kind);
        var e = Assert.Throws<BadInputException>(() => (plan with { Kind = "poisson" }).ToOptions());
        Assert.Contains("'poisson'", e.Message);
    }
}
