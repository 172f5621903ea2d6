using System.Diagnostics;
using System.Text.Json;
using Fed.Core.Security;
using Fed.TestSupport;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Fed.Serving.Tests;

/// <summary>`fed serve` and `fed serve cert` as real processes: secrets never leave, files are private, SIGTERM stops gracefully.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ServeProcessTests : IAsyncLifetime
{
    ServingWorld W = null!;
    public async Task InitializeAsync() { W = ServingWorld.Prepare(ServingWorld.RequireRedis(), tls: true); await Task.CompletedTask; }
    public async Task DisposeAsync() => await W.DisposeAsync();

    static (int Code, string Out, string Err) Cli(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(FedProcess.FedDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var o = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, o, err.Result);
    }

    string Write(string name, ServingConfig cfg)
    {
        var path = Path.Combine(W.Dir, name + ".config.json");
        File.WriteAllText(path, JsonSerializer.Serialize(cfg, cfg.GetType(), ServeProcesses.ConfigJson));
        return path;
    }

    [Fact]
    public async Task After_a_failed_Redis_connection_with_a_password_no_password_is_in_readyz_logs_or_json()
    {
        const string password = "S3cret-Redis-Pw_91";
        var port = LoopbackPorts.Free(); // nothing listens there
        var cfg = W.InitiatorConfig(new Dictionary<string, string> { ["guest"] = "https://127.0.0.1:1", ["host"] = "https://127.0.0.1:2" },
            $"file:{W.Dir}/initiator.jsonl");
        cfg.Redis = $"127.0.0.1:{port},password={password},connectTimeout=300";
        cfg.Listen = $"https://127.0.0.1:{LoopbackPorts.Free()}";
        cfg.Ops = new OpsConfig { Listen = $"http://127.0.0.1:{LoopbackPorts.Free()}" };
        cfg.Parties.ForEach(p => p.CertSha256 = Certificates.Pin(W.Certs[p.PartyId]));
        var path = Write("initiator-pw", cfg);
        string ready;
        using (var proc = FedProcess.Start(Path.Combine(W.Dir, "initiator-pw.out"), "serve", "initiator", "--config", path, "--json"))
        {
            using var http = new HttpClient();
            for (var i = 0; ; i++)
            {
                try
                {
                    var r = await http.GetAsync(cfg.Ops.Listen + "/readyz");
                    ready = await r.Content.ReadAsStringAsync();
                    Assert.Equal(503, (int)r.StatusCode);
                    break;
                }
                catch (HttpRequestException) when (i < 600 && !proc.HasExited) { await Task.Delay(100); }
            }
            Assert.Contains("redis not connected", ready);
            Assert.Contains("password=***", ready);
            // The signed /readyz on the main listener is gone (ops listener configured): only the ops one answers.
            Assert.Equal(0, proc.Terminate(TimeSpan.FromSeconds(30)));
        }
        var outText = File.ReadAllText(Path.Combine(W.Dir, "initiator-pw.out"));
        var log = File.ReadAllText(Path.Combine(W.Dir, "initiator.jsonl"));
        Assert.Matches("\"ok\":\\s*true", outText); // the --json document was printed
        Assert.Contains("near cache off", log);   // the near-cache warning quotes the failure...
        foreach (var text in new[] { ready, outText, log }) Assert.DoesNotContain(password, text); // ...never the password

        // A bad config naming the password: the error (text and --json) masks it.
        var bad = W.InitiatorConfig(new Dictionary<string, string> { ["guest"] = "https://127.0.0.1:1" });
        bad.Redis = $"127.0.0.1:{port},password={password},nosuchoption=1";
        bad.Parties.ForEach(p => p.CertSha256 = Certificates.Pin(W.Certs[p.PartyId]));
        var (code, o, e) = Cli("serve", "initiator", "--config", Write("initiator-bad", bad), "--json");
        Assert.Equal(2, code);
        Assert.Contains("password=***", o);
        Assert.DoesNotContain(password, o + e);
    }

    [Fact]
    public void Secrets_are_masked_in_Redis_ODBC_Kafka_and_URL_settings()
    {
        Assert.Equal("127.0.0.1:6379,password=***,ssl=true", Secrets.Redact("127.0.0.1:6379,password=hunter2,ssl=true"));
        Assert.Equal("odbc:dialect=postgres;Driver={PostgreSQL Unicode};Server=db;UID=fed;PWD=***;Port=5432",
            Secrets.Redact("odbc:dialect=postgres;Driver={PostgreSQL Unicode};Server=db;UID=fed;PWD=hunter2;Port=5432"));
        Assert.Equal("Uid=a;Pwd=***;X=1", Secrets.Redact("Uid=a;Pwd={hun;ter}}2};X=1"));
        Assert.Equal("User ID=a;Password=***", Secrets.Redact("User ID=a;Password=hunter2"));
        Assert.Equal("sasl.password=*** ssl.key.password=*** ssl.keystore.password=*** bootstrap.servers=k:9092",
            Secrets.Redact("sasl.password=a1 ssl.key.password=b2 ssl.keystore.password=c3 bootstrap.servers=k:9092"));
        Assert.Equal("redis://fed:***@h:6379", Secrets.Redact("redis://fed:hunter2@h:6379"));
        var kafka = Secrets.Settings([new("sasl.password", "x"), new("sasl.oauthbearer.client.secret", "y"), new("ssl.key.pem", "z"), new("group.id", "g")]);
        Assert.Equal(["***", "***", "***", "g"], kafka.Values);
    }

    static string Mode(string path) => SecretFiles.Octal(File.GetUnixFileMode(path));

    [Fact]
    public async Task Every_secret_or_model_file_Fed_writes_is_0600_and_a_readable_key_is_refused()
    {
        var dir = Path.Combine(W.Dir, "modes");
        Directory.CreateDirectory(dir);
        // fed serve cert, unencrypted and with a password from a file and from an env var.
        var (c1, o1, e1) = Cli("serve", "cert", "--name", "guest", "--out", Path.Combine(dir, "serve.p12"), "--json");
        Assert.True(c1 == 0, o1 + e1);
        Assert.Equal("0600", Mode(Path.Combine(dir, "serve.p12")));
        var pin = JsonDocument.Parse(o1).RootElement.GetProperty("cert_sha256").GetString();
        Assert.Equal(pin, Certificates.Pin(Certificates.LoadPkcs12(Path.Combine(dir, "serve.p12"), null, "t")));
        var pwFile = Path.Combine(dir, "pw");
        SecretFiles.Write(pwFile, "correct horse\n");
        Assert.Equal(0, Cli("serve", "cert", "--name", "host", "--out", Path.Combine(dir, "pw.p12"), "--password-file", pwFile).Code);
        Assert.Equal("0600", Mode(Path.Combine(dir, "pw.p12")));
        Assert.Throws<Fed.Core.BadInputException>(() => Certificates.LoadPkcs12(Path.Combine(dir, "pw.p12"), null, "t"));
        Certificates.LoadPkcs12(Path.Combine(dir, "pw.p12"), "correct horse", "t").Dispose();
        // fed train cert: same helper, same mode.
        Assert.Equal(0, Cli("train", "cert", "--party", "arbiter", "--out", Path.Combine(dir, "train.p12")).Code);
        Assert.Equal("0600", Mode(Path.Combine(dir, "train.p12")));
        // A model file, also when it replaces a world-readable one.
        var model = Path.Combine(dir, "m.json");
        File.WriteAllText(model, "old");
        File.SetUnixFileMode(model, (UnixFileMode)0b110_100_100);
        Fed.Core.Model.ModelFile.Write(Fed.Core.Model.ModelFile.Read(Path.Combine(W.Dir, "v1", "guest.json")), model);
        Assert.Equal("0600", Mode(model));
        Assert.Equal("0600", Mode(Path.Combine(W.Dir, "v1", "guest.json")));
        // A service's JSON log file.
        var log = new ServiceLog("t", "file:" + Path.Combine(dir, "svc.jsonl"));
        log.Write(LogLevel.Information, "x");
        await log.DisposeAsync();
        Assert.Equal("0600", Mode(Path.Combine(dir, "svc.jsonl")));
        // A key file others can read is refused (by the service config too), unless explicitly allowed.
        File.SetUnixFileMode(Path.Combine(dir, "serve.p12"), (UnixFileMode)0b110_100_100);
        var e = Assert.Throws<Fed.Core.BadInputException>(() => new TlsConfig { Certificate = Path.Combine(dir, "serve.p12") }.Load("party:guest"));
        Assert.Contains("chmod 600", e.Message);
        Assert.Contains("0644", e.Message);
        new TlsConfig { Certificate = Path.Combine(dir, "serve.p12"), AllowInsecureKeyFileMode = true }.Load("party:guest").Dispose();
        var cfg = W.PartyConfig("guest");
        cfg.Tls = new TlsConfig { Certificate = Path.Combine(dir, "serve.p12") };
        var (c2, o2, e2) = Cli("serve", "party", "--config", Write("party-0644", cfg));
        Assert.Equal(2, c2);
        Assert.Contains("chmod 600", e2);
    }

    [Fact]
    public void Plain_HTTP_needs_the_explicit_insecure_setting()
    {
        var cfg = W.PartyConfig("guest");
        cfg.Listen = "http://127.0.0.1:0";
        cfg.Tls = null;
        var (code, _, err) = Cli("serve", "party", "--config", Write("party-plain", cfg));
        Assert.Equal(2, code);
        Assert.Contains("insecure_plaintext", err);
        var ic = W.InitiatorConfig(new Dictionary<string, string> { ["guest"] = "http://127.0.0.1:1" });
        Assert.Contains("insecure_plaintext", Assert.Throws<Fed.Core.BadInputException>(() => ic.Validate("i.json")).Message);
        ic.Parties[0].Url = "https://127.0.0.1:1";
        ic.Parties[0].CertSha256 = null;
        Assert.Contains("cert_sha256", Assert.Throws<Fed.Core.BadInputException>(() => ic.Validate("i.json")).Message);
    }

    [Fact]
    public async Task SIGTERM_closes_the_listener_lets_the_request_in_flight_finish_and_exits_0()
    {
        // A party that answers after 1.5 s keeps one initiator request in flight while SIGTERM arrives.
        var b = WebApplication.CreateSlimBuilder();
        b.Logging.ClearProviders();
        b.WebHost.UseUrls("http://127.0.0.1:0");
        await using var slow = b.Build();
        slow.MapPost("/v1/partial-scores", async (HttpContext ctx) => { await Task.Delay(1500); ctx.Response.StatusCode = 500; await ctx.Response.WriteAsync("{\"error\":\"slow\"}"); });
        await slow.StartAsync();
        var plain = ServingWorld.Prepare(ServingWorld.RequireRedis(), tls: false);
        try
        {
            var port = LoopbackPorts.Free();
            var cfg = plain.InitiatorConfig(new Dictionary<string, string> { ["guest"] = slow.Urls.First(), ["host"] = slow.Urls.First() });
            cfg.Listen = $"http://127.0.0.1:{port}";
            cfg.ShutdownTimeoutSeconds = 8;
            cfg.NearCache = new NearCacheConfig();
            cfg.Parties.ForEach(p => p.TimeoutMs = 5000);
            var path = Path.Combine(plain.Dir, "i.json");
            File.WriteAllText(path, JsonSerializer.Serialize(cfg, ServeProcesses.ConfigJson));
            using var proc = FedProcess.Start(Path.Combine(plain.Dir, "i.out"), "serve", "initiator", "--config", path);
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            await ServeProcesses.WaitHealthy(http, cfg.Listen, proc);
            var inFlight = ServingWorld.Send(http, HttpMethod.Post, cfg.Listen + "/v1/predict", "client", plain.ClientKey,
                ServingWorld.PredictBody(plain.ModelId, [plain.SharedIds[0]]));
            await Task.Delay(500);
            var sw = Stopwatch.StartNew();
            var code = await Task.Run(() => proc.Terminate(TimeSpan.FromSeconds(20)));
            var (status, body) = await inFlight;
            Assert.Equal(0, code);
            Assert.True(status == 200, body); // answered (a partial failure from the slow party), not cut off
            Assert.Contains("partial_failure", body);
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(8), $"exit took {sw.Elapsed}");
            Assert.Contains("stopped", File.ReadAllText(proc.LogFile));
            await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync(cfg.Listen + "/healthz")); // listener closed
        }
        finally { await plain.DisposeAsync(); }
    }
}
