using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Fed.TestSupport;

namespace Fed.Serving.Tests;

/// <summary>The initiator on a Sentinel-managed primary (configuration string with serviceName): the cache and lookups work.</summary>
public sealed class SentinelTests
{
    [Fact]
    public async Task Through_Sentinel_predictions_are_cached_on_the_primary_and_looked_up_with_the_right_value()
    {
        await using var primary = await RedisServer.Start();
        var dir = Directory.CreateTempSubdirectory("fed-sentinel-");
        var port = LoopbackPorts.Free();
        var conf = Path.Combine(dir.FullName, "sentinel.conf");
        File.WriteAllText(conf, $"port {port}\nbind 127.0.0.1\ndir {dir.FullName}\nsentinel monitor fedprimary 127.0.0.1 {primary.Endpoint.Split(':')[1]} 1\nsentinel down-after-milliseconds fedprimary 2000\n");
        using var sentinel = Process.Start(new ProcessStartInfo("redis-server", [conf, "--sentinel"]) { RedirectStandardOutput = true, UseShellExecute = false })!;
        try
        {
            for (var i = 0; ; i++)
            {
                try { using var probe = new TcpClient(); await probe.ConnectAsync(IPAddress.Loopback, port); break; }
                catch (SocketException) when (i < 50) { await Task.Delay(100); }
            }
            await using var w = await ServingWorld.Create($"127.0.0.1:{port},serviceName=fedprimary");
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            var ids = w.SharedIds.Take(20).ToArray();
            var (s, body) = await ServingWorld.Send(http, HttpMethod.Post, w.Initiator.Url + "/v1/predict", "client", w.ClientKey, ServingWorld.PredictBody(w.ModelId, ids));
            Assert.True(s == 200, body);
            foreach (var p in JsonDocument.Parse(body).RootElement.GetProperty("predictions").EnumerateArray())
                Assert.True(p.GetProperty("cached").GetBoolean(), "not cached through Sentinel");
            // The record is on the primary Sentinel names, and a lookup returns the right bits.
            using var direct = Fed.Core.Redis.RedisStore.Connect(primary.Endpoint, abortOnConnectFail: true);
            foreach (var id in ids)
            {
                Assert.True((await direct.GetDatabase().StringGetAsync(Fed.Core.Scoring.PredictionKeys.Record(w.ModelId, 2, id))).HasValue);
                var (ls, lb) = await ServingWorld.Send(http, HttpMethod.Get, w.Initiator.Url + $"/v1/predictions/{w.ModelId}/{id}", "client", w.ClientKey, null);
                Assert.Equal(200, ls);
                Assert.Equal(BitConverter.DoubleToInt64Bits(w.Direct(id, 2)), BitConverter.DoubleToInt64Bits(JsonDocument.Parse(lb).RootElement.GetProperty("predict_value").GetDouble()));
            }
        }
        finally
        {
            if (!sentinel.HasExited) sentinel.Kill();
            await sentinel.WaitForExitAsync();
            dir.Delete(true);
        }
    }
}
