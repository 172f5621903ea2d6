using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Fed.Core.Security;
using Fed.TestSupport;
using Xunit.Abstractions;

namespace Fed.Serving.Tests;

/// <summary>
/// Real `fed serve` processes (two parties and an initiator, TLS with pinned client certificates, the shipped setting)
/// on loopback, with their configs written to files the way an operator would.
/// </summary>
public sealed class ServeProcesses : IAsyncLifetime
{
    public ServingWorld World { get; private set; } = null!;
    public Dictionary<string, FedProcess> Procs { get; } = new();
    public Dictionary<string, int> Ports { get; } = new();
    public string Url(string service) => $"https://127.0.0.1:{Ports[service]}";

    public static readonly JsonSerializerOptions ConfigJson = new() { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, WriteIndented = true };

    public async Task InitializeAsync()
    {
        World = ServingWorld.Prepare(ServingWorld.RequireRedis(), tls: true);
        foreach (var s in new[] { "guest", "host", "initiator" }) Ports[s] = LoopbackPorts.Free();
        foreach (var p in ServingWorld.PartyIds)
        {
            var cfg = World.PartyConfig(p, $"file:{World.Dir}/{p}.jsonl");
            cfg.Listen = Url(p);
            Procs[p] = Start(p, "party", cfg);
        }
        var ic = World.InitiatorConfig(ServingWorld.PartyIds.ToDictionary(p => p, Url), $"file:{World.Dir}/initiator.jsonl");
        ic.Listen = Url("initiator");
        ic.NearCache = new NearCacheConfig(); // off: this suite is about the front door
        Procs["initiator"] = Start("initiator", "initiator", ic);
        using var http = World.ClientFor("admin");
        foreach (var s in Ports.Keys) await WaitHealthy(http, Url(s), Procs[s]);
    }

    FedProcess Start(string name, string role, ServingConfig cfg)
    {
        var path = Path.Combine(World.Dir, name + ".config.json");
        File.WriteAllText(path, JsonSerializer.Serialize(cfg, cfg.GetType(), ConfigJson));
        return FedProcess.Start(Path.Combine(World.Dir, name + ".out"), "serve", role, "--config", path);
    }

    public static async Task WaitHealthy(HttpClient http, string url, FedProcess proc)
    {
        for (var i = 0; ; i++)
        {
            if (proc.HasExited) throw new InvalidOperationException($"fed serve exited: {File.ReadAllText(proc.LogFile)}");
            try { if ((await http.GetAsync(url + "/healthz")).IsSuccessStatusCode) return; }
            catch (HttpRequestException) when (i < 600) { }
            await Task.Delay(100);
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var p in Procs.Values) p.Dispose();
        if (World != null) await World.DisposeAsync();
    }
}

/// <summary>
/// The attack suite of issue #12 against real `fed serve` processes: every route x every spelling x {unsigned, bad
/// signature, expired, replayed, no client certificate, an unpinned certificate, another caller's certificate}; all
/// must be refused (401, or no TLS session at all). It prints its counts.
/// </summary>
public sealed class SecurityTests(ServeProcesses f, ITestOutputHelper output) : IClassFixture<ServeProcesses>
{
    ServingWorld W => f.World;

    /// <summary>One HTTP/1.1 request written byte for byte over TLS (so the request target is exactly as given:
    /// HttpClient would normalize dot segments). Returns the status code, or -1 when no HTTP answer came (handshake refused).</summary>
    async Task<int> Raw(string service, X509Certificate2? clientCert, string method, string target, byte[] body, IEnumerable<(string, string)> headers)
    {
        var pins = new[] { "guest", "host", "initiator" }.Select(n => Certificates.Pin(W.Certs[n])).ToHashSet();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            using var tcp = new TcpClient();
            await tcp.ConnectAsync(IPAddress.Loopback, f.Ports[service], cts.Token);
            await using var ssl = new SslStream(tcp.GetStream(), false);
            await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = "localhost",
                ClientCertificates = clientCert is null ? null : new X509CertificateCollection { clientCert },
                RemoteCertificateValidationCallback = (_, c, _, _) => c != null && pins.Contains(Certificates.Pin(c)),
                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            }, cts.Token);
            var head = new StringBuilder($"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{f.Ports[service]}\r\nConnection: close\r\n");
            if (body.Length > 0) head.Append($"Content-Type: application/json\r\nContent-Length: {body.Length}\r\n");
            foreach (var (k, v) in headers) head.Append($"{k}: {v}\r\n");
            head.Append("\r\n");
            await ssl.WriteAsync(Encoding.ASCII.GetBytes(head.ToString()), cts.Token);
            await ssl.WriteAsync(body, cts.Token);
            await ssl.FlushAsync(cts.Token);
            var buf = new byte[256];
            var n = 0;
            while (n < 12)
            {
                var m = await ssl.ReadAsync(buf.AsMemory(n), cts.Token);
                if (m == 0) return -1;
                n += m;
            }
            var line = Encoding.ASCII.GetString(buf, 0, n);
            return line.StartsWith("HTTP/1.1 ", StringComparison.Ordinal) ? int.Parse(line.AsSpan(9, 3)) : throw new InvalidDataException(line);
        }
        catch (Exception e) when (e is IOException or AuthenticationException or SocketException or ObjectDisposedException)
        {
            return -1;
        }
    }

    static (string, string)[] Signed(byte[] key, string caller, string method, string target, byte[] body, long? ts = null, string? nonce = null)
    {
        var t = ts ?? DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        nonce ??= RequestSigning.NewNonce();
        return [(RequestSigning.CallerHeader, caller), (RequestSigning.TimestampHeader, t.ToString()), (RequestSigning.NonceHeader, nonce),
            (RequestSigning.SignatureHeader, RequestSigning.Sign(key, method, target, t, nonce, caller, body))];
    }

    /// <summary>Every way of writing a path that a router or proxy might treat as the same route.</summary>
    public static IEnumerable<(string Name, string Target)> Spellings(string p)
    {
        var segs = p[1..].Split('/');
        yield return ("as-is", p);
        yield return ("upper", p.ToUpperInvariant());
        yield return ("V1", "/V1" + p[3..]);
        yield return ("title-case", "/" + string.Join('/', segs.Select(s => s.Length > 0 ? char.ToUpperInvariant(s[0]) + s[1..] : s)));
        yield return ("%2F", "/" + string.Join("%2F", segs));
        yield return ("%2f", "/" + string.Join("%2f", segs));
        yield return ("//", "//" + string.Join("//", segs));
        yield return ("/./", "/./" + string.Join("/./", segs));
        yield return ("../", "/" + segs[0] + "/x/../" + string.Join('/', segs.Skip(1)));
        yield return ("%2e%2e", "/" + segs[0] + "/x/%2e%2e/" + string.Join('/', segs.Skip(1)));
        yield return ("trailing /", p + "/");
        yield return ("%76 (v)", "/%761/" + string.Join('/', segs.Skip(1)));
        yield return ("query", p + "?x=1");
        yield return ("query version", p + "?version=1&debug=true");
    }

    static readonly string[] Methods = ["GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"];

    sealed record Route(string Service, string Method, string Path, byte[] Body);

    List<Route> Routes()
    {
        var m = W.ModelId;
        var id = W.SharedIds[0];
        var partial = Encoding.UTF8.GetBytes($"{{\"model_id\":\"{m}\",\"sample_ids\":[\"{id}\"],\"mode\":\"realtime\"}}");
        var activate = "{\"version\":2}"u8.ToArray();
        var list = new List<Route>
        {
            new("initiator", "POST", "/v1/predict", Encoding.UTF8.GetBytes(ServingWorld.PredictBody(m, [id]))),
            new("initiator", "GET", $"/v1/predictions/{m}/{id}", []),
            new("initiator", "GET", "/v1/no-such-route", []),
        };
        foreach (var s in new[] { "initiator", "guest", "host" })
        {
            list.Add(new(s, "POST", $"/v1/admin/models/{m}/activate", activate));
            list.Add(new(s, "POST", $"/v1/admin/models/{m}/rollback", []));
            list.Add(new(s, "GET", "/readyz", []));
            list.Add(new(s, "GET", "/metrics", []));
        }
        foreach (var s in new[] { "guest", "host" }) list.Add(new(s, "POST", "/v1/partial-scores", partial));
        return list;
    }

    [Fact]
    public async Task Every_route_under_every_spelling_and_method_refuses_unsigned_bad_expired_replayed_and_uncertified_requests()
    {
        var stranger = Certificates.Create("stranger");
        var wrongKey = RandomNumberGenerator.GetBytes(32);
        var tried = 0;
        var refused = 0;
        var failures = new List<string>();
        var perMode = new SortedDictionary<string, (int Tried, int Refused)>();
        var work = new List<(string Mode, Route R, string Spelling, string Method, string Target)>();
        foreach (var r in Routes())
        {
            foreach (var (name, target) in Spellings(r.Path)) work.Add(("", r, name, r.Method, target));
            foreach (var method in Methods.Where(x => x != r.Method)) work.Add(("", r, "as-is", method, r.Path));
        }
        string[] modes = ["unsigned", "bad signature", "expired", "replayed", "no client certificate", "unpinned certificate", "another caller's certificate"];
        var admin = W.Certs["admin"];
        var originals = new List<int>(); // what the first, genuine sending of each replayed request got
        var jobs = work.SelectMany(w => modes.Select(mode => w with { Mode = mode })).ToList();
        await Parallel.ForEachAsync(jobs, new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (j, _) =>
        {
            var (mode, r, spelling, method, target) = j;
            var body = method is "GET" or "HEAD" ? [] : r.Body;
            // The admin caller's key and certificate: every failure below is the attack's, not a missing right.
            int status = mode switch
            {
                "unsigned" => await Raw(r.Service, admin, method, target, body, []),
                "bad signature" => await Raw(r.Service, admin, method, target, body, Signed(wrongKey, "admin", method, target, body)),
                "expired" => await Raw(r.Service, admin, method, target, body, Signed(W.AdminKey, "admin", method, target, body, DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 600)),
                "replayed" => await Replay(r.Service, admin, method, target, body, originals),
                "no client certificate" => await Raw(r.Service, null, method, target, body, Signed(W.AdminKey, "admin", method, target, body)),
                "unpinned certificate" => await Raw(r.Service, stranger, method, target, body, Signed(W.AdminKey, "admin", method, target, body)),
                _ => await Raw(r.Service, W.Certs[r.Service == "initiator" ? "client" : "feeder"], method, target, body, Signed(W.AdminKey, "admin", method, target, body)),
            };
            // No TLS session without a pinned certificate: nothing reaches HTTP. Otherwise 401.
            var ok = mode is "no client certificate" or "unpinned certificate" ? status == -1 : status == 401;
            lock (failures)
            {
                tried++;
                var (t, rf) = perMode.GetValueOrDefault(mode);
                perMode[mode] = (t + 1, rf + (ok ? 1 : 0));
                if (ok) refused++;
                else failures.Add($"{mode}: {method} {target} on {r.Service} ({spelling}) -> {status}");
            }
        });
        var summary = $"security suite: tried {tried}, refused {refused}\n" + string.Join("\n", perMode.Select(m => $"  {m.Key}: tried {m.Value.Tried}, refused {m.Value.Refused}"));
        output.WriteLine(summary);
        Console.WriteLine(summary);
        // Control: every genuine original passed authentication (so each replay was refused for being a replay).
        output.WriteLine("genuine originals by status: " + string.Join(", ", originals.GroupBy(x => x).OrderBy(g => g.Key).Select(g => $"{g.Key}: {g.Count()}")));
        Assert.Equal(jobs.Count(j => j.Mode == "replayed"), originals.Count);
        Assert.DoesNotContain(401, originals);
        Assert.DoesNotContain(-1, originals);
        Assert.Contains(200, originals);
        Assert.True(failures.Count == 0, $"{failures.Count} of {tried} not refused:\n" + string.Join("\n", failures.Take(50)));
        Assert.Equal(tried, refused);
        Assert.Equal(jobs.Count, tried);
        Assert.True(tried > 1000, $"only {tried} attempts");
        foreach (var p in f.Procs.Values) Assert.False(p.HasExited);
    }

    /// <summary>Sends a correctly signed request once (as the admin would), then the very same bytes again; returns the
    /// second answer.</summary>
    async Task<int> Replay(string service, X509Certificate2 cert, string method, string target, byte[] body, List<int> originals)
    {
        var headers = Signed(W.AdminKey, "admin", method, target, body);
        var first = await Raw(service, cert, method, target, body, headers);
        lock (originals) originals.Add(first);
        return await Raw(service, cert, method, target, body, headers);
    }

    int ActiveVersion(string party)
    {
        using var w = new Fed.Warehouse.Sqlite.SqliteWarehouse(W.Warehouses[party]);
        return new Fed.Warehouse.ModelRegistry(w).Resolve(W.ModelId, party).Version;
    }

    [Fact]
    public async Task A_replayed_rollback_is_refused_and_rolls_back_nothing()
    {
        var admin = W.Certs["admin"];
        var target = $"/v1/admin/models/{W.ModelId}/activate";
        var two = "{\"version\":2}"u8.ToArray();
        Assert.Equal(200, await Raw("host", admin, "POST", target, two, Signed(W.AdminKey, "admin", "POST", target, two)));
        Assert.Equal(2, ActiveVersion("host"));
        var rollback = $"/v1/admin/models/{W.ModelId}/rollback";
        var captured = Signed(W.AdminKey, "admin", "POST", rollback, []);
        Assert.Equal(200, await Raw("host", admin, "POST", rollback, [], captured));
        Assert.Equal(1, ActiveVersion("host"));
        // Put v2 back, then replay the captured rollback: refused, v2 stays.
        Assert.Equal(200, await Raw("host", admin, "POST", target, two, Signed(W.AdminKey, "admin", "POST", target, two)));
        Assert.Equal(2, ActiveVersion("host"));
        Assert.Equal(401, await Raw("host", admin, "POST", rollback, [], captured));
        Assert.Equal(401, await Raw("host", admin, "POST", rollback.ToUpperInvariant(), [], captured));
        Assert.Equal(2, ActiveVersion("host"));
    }

    [Fact]
    public async Task Signed_callers_with_their_own_certificates_are_served_over_TLS_end_to_end()
    {
        using var client = W.ClientFor("client");
        var ids = W.SharedIds.Take(5).ToArray();
        var (status, body) = await ServingWorld.Send(client, HttpMethod.Post, f.Url("initiator") + "/v1/predict", "client", W.ClientKey, ServingWorld.PredictBody(W.ModelId, ids));
        Assert.True(status == 200, body);
        var preds = JsonDocument.Parse(body).RootElement.GetProperty("predictions").EnumerateArray().ToArray();
        var version = JsonDocument.Parse(body).RootElement.GetProperty("version").GetInt32();
        for (var i = 0; i < ids.Length; i++)
            Assert.Equal(BitConverter.DoubleToInt64Bits(W.Direct(ids[i], version)), BitConverter.DoubleToInt64Bits(preds[i].GetProperty("value").GetDouble()));
        // The client is no admin: its own certificate and key get 403 on admin routes, never 200.
        Assert.Equal(403, (await ServingWorld.Send(client, HttpMethod.Post, f.Url("initiator") + $"/v1/admin/models/{W.ModelId}/rollback", "client", W.ClientKey, null)).Status);
    }
}
