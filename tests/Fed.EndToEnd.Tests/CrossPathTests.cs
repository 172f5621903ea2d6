using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Fed.Cli;
using Fed.Cli.Commands;
using Fed.Core.Model;
using Fed.Serving;
using Fed.TestSupport;
using Fed.Warehouse;
using StackExchange.Redis;

namespace Fed.EndToEnd.Tests;

/// <summary>
/// One model, one set of features, every path: daily batch (local engine, partial-score files, combine), hourly batch
/// (the SQL engine on a shared warehouse), streaming (Kafka party workers and initiator into Redis) and online
/// (party services and the initiator over HTTP). Each must give exactly the bits of `fed predict local`, and only for
/// the samples every party holds. Real servers (Kafka, Redis from scripts/test.sh); the workers are `fed` processes.
/// </summary>
public sealed class CrossPathTests : IDisposable
{
    const string Dt = "2026-11-22";
    static readonly IReadOnlyList<CliCommand> Commands =
        [.. ModelCommands.All, .. ConvertCommands.All, .. PredictCommands.All, .. StreamCommands.All];

    readonly string _dir = Directory.CreateTempSubdirectory("fed-xpath-").FullName;
    readonly List<FedProcess> _workers = [];
    readonly string _model = "xpath-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant();
    readonly string[] _parties = ["guest", "host"];
    readonly Dictionary<string, string> _csv = new(), _modelFile = new();

    public CrossPathTests()
    {
        // The shipped sample models under a run-unique id, so that shared Redis keys never meet another test's.
        var samples = Path.Combine(TestEnvironment.RepoRoot, "samples", "breast_cancer");
        foreach (var p in _parties)
        {
            var json = JsonNode.Parse(File.ReadAllText(Path.Combine(samples, p + ".json")))!;
            json["model_id"] = _model;
            json.AsObject().Remove("checksum");
            _modelFile[p] = Path.Combine(_dir, p + ".model.json");
            ModelFile.Write(ModelFile.ParseUnstamped(json.ToJsonString()), _modelFile[p]);
            _csv[p] = Path.Combine(samples, p + ".csv");
        }
    }

    [Fact]
    public async Task Batch_hourly_streaming_and_online_predictions_equal_predict_local_bit_for_bit()
    {
        var redis = TestEnvironment.Require("FED_TEST_REDIS");
        var kafka = TestEnvironment.Require("FED_TEST_KAFKA");

        var reference = Reference();
        Assert.True(reference.Count > 400, $"only {reference.Count} samples combine");
        var oneSided = _parties.SelectMany(p => Ids(_csv[p])).Distinct().Where(id => !reference.ContainsKey(id)).ToList();
        Assert.NotEmpty(oneSided); // each party lacks some of the other's ids: they must never get a score

        var paths = new Dictionary<string, Dictionary<string, double>>
        {
            ["daily batch"] = DailyBatch(),
            ["hourly batch"] = HourlyBatch(),
            ["streaming"] = Streaming(kafka, redis, reference.Keys),
            ["online"] = await Online(redis, [.. reference.Keys, .. oneSided]),
        };
        foreach (var (path, got) in paths)
        {
            Assert.True(reference.Keys.Order().SequenceEqual(got.Keys.Order()),
                $"{path}: {got.Count} predictions for {reference.Count} complete samples; extra {string.Join(",", got.Keys.Except(reference.Keys).Take(5))}, missing {string.Join(",", reference.Keys.Except(got.Keys).Take(5))}");
            foreach (var (id, want) in reference)
                Assert.True(BitConverter.DoubleToInt64Bits(want) == BitConverter.DoubleToInt64Bits(got[id]),
                    $"{path}, sample {id}: {got[id]:R} but fed predict local says {want:R}");
        }
    }

    /// <summary>`fed predict local`: the reference every path is held to.</summary>
    Dictionary<string, double> Reference()
    {
        var models = Path.Combine(_dir, "models");
        Directory.CreateDirectory(models);
        foreach (var p in _parties) File.Copy(_modelFile[p], Path.Combine(models, p + ".model.json"));
        var csv = Path.Combine(_dir, "local.csv");
        Fed(["predict", "local", "--models", models, .. _parties.SelectMany(p => new[] { "--party", $"{p}={_csv[p]}" }), "--out", csv]);
        return File.ReadLines(csv).Skip(1).Select(l => l.Split(','))
            .ToDictionary(f => f[0], f => double.Parse(f[1], System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>Each party its own warehouse and the local engine; partial-score files to the initiator; combine.</summary>
    Dictionary<string, double> DailyBatch()
    {
        var scores = Path.Combine(_dir, "scores");
        foreach (var p in _parties)
        {
            Fed(["convert", "--model", _modelFile[p], "--warehouse", Wh(p)]);
            Fed(["predict", "batch", "--party", p, "--model-id", _model, "--features", _csv[p], "--dt", Dt, "--warehouse", Wh(p), "--out", scores]);
        }
        Fed(["predict", "combine", "--model-id", _model, "--dt", Dt, "--input", scores, "--warehouse", Wh("guest")]);
        return Predictions(Wh("guest"), "fed_predictions", "");
    }

    /// <summary>Hourly features in one shared warehouse, scored by the warehouse's own SQL, combined from fed_partial_scores.</summary>
    Dictionary<string, double> HourlyBatch()
    {
        var shared = "sqlite:" + Path.Combine(_dir, "shared.db");
        foreach (var p in _parties)
        {
            Fed(["convert", "--model", _modelFile[p], "--warehouse", shared]);
            Fed(["features", "load", "--party", p, "--csv", _csv[p], "--table", $"feat_{p}_hourly", "--dt", Dt, "--hour", "7", "--warehouse", shared]);
            Fed(["predict", "batch", "--party", p, "--model-id", _model, "--features", $"feat_{p}_hourly", "--dt", Dt, "--hour", "7", "--engine", "sql", "--warehouse", shared]);
        }
        Fed(["predict", "combine", "--model-id", _model, "--dt", Dt, "--hour", "7", "--input", "warehouse", "--warehouse", shared]);
        return Predictions(shared, "fed_predictions_hourly", " AND hour = '07'");
    }

    /// <summary>Feature events replayed into Kafka; a party worker per party and the initiator, as processes; read back from Redis.</summary>
    Dictionary<string, double> Streaming(string kafka, string redis, IEnumerable<string> expected)
    {
        var t = $"{_model}.";
        foreach (var topic in new[] { "features.guest", "features.host", "partials", "scores", "status", "deadletter" })
            Sh("create-topic", t + topic, "2");
        var oldBroker = new JsonObject { ["bootstrap.servers"] = kafka, ["api.version.request"] = "false", ["broker.version.fallback"] = "0.9.0.1" };
        var consumer = new JsonObject { ["session.timeout.ms"] = "6000" };
        JsonObject Common(string group) => new()
        {
            ["group_id"] = $"{_model}-{group}", ["kafka"] = oldBroker.DeepClone(), ["consumer"] = consumer.DeepClone(),
            ["dead_letter_topic"] = t + "deadletter", ["partials_topic"] = t + "partials", ["metrics_interval_ms"] = 0,
        };
        var initiator = Common("initiator");
        initiator["warehouse"] = Wh("guest"); initiator["redis"] = redis; initiator["window_ms"] = 3000;
        initiator["scores_topic"] = t + "scores"; initiator["status_topic"] = t + "status";
        Start("stream-initiator", ["stream", "initiator", "--config", Config("stream-initiator", initiator)]);
        foreach (var p in _parties)
        {
            var party = Common(p);
            party["party"] = p; party["warehouse"] = Wh(p); party["input_topic"] = t + "features." + p;
            Start("stream-" + p, ["stream", "party", "--config", Config("stream-" + p, party)]);
        }
        foreach (var p in _parties)
            Fed(["stream", "replay", "--csv", _csv[p], "--party", p, "--topic", t + "features." + p, "--drop", "y", "--model-id", _model,
                 "--brokers", kafka, "--event-prefix", "xp-", "--kafka", "api.version.request=false", "--kafka", "broker.version.fallback=0.9.0.1"]);

        using var mux = ConnectionMultiplexer.Connect(redis);
        var db = mux.GetDatabase();
        var keys = expected.ToDictionary(id => id, id => (RedisKey)$"fed:pred:{_model}:v1:{id}");
        var found = new Dictionary<string, double>();
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (found.Count < keys.Count && DateTime.UtcNow < deadline)
        {
            foreach (var (id, key) in keys)
                if (!found.ContainsKey(id) && db.StringGet(key) is { HasValue: true } v)
                    found[id] = JsonNode.Parse((string)v!)!["predict_value"]!.GetValue<double>();
            if (found.Count < keys.Count) Thread.Sleep(250);
        }
        Assert.True(found.Count == keys.Count, $"streaming: {found.Count} of {keys.Count} predictions reached Redis in 90 s; logs in {_dir}");
        return found;
    }

    /// <summary>Party services answer from their feature tables; the initiator fans out, combines and answers.</summary>
    async Task<Dictionary<string, double>> Online(string redis, IReadOnlyList<string> sampleIds)
    {
        var key = new Dictionary<string, string>();
        foreach (var who in new[] { "guest", "host", "app" }) key[who] = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        var url = new Dictionary<string, string>();
        foreach (var p in _parties)
        {
            Fed(["features", "load", "--party", p, "--csv", _csv[p], "--table", $"feat_{p}", "--dt", Dt, "--warehouse", Wh(p)]);
            url[p] = $"http://127.0.0.1:{FreePort()}";
            var cfg = new JsonObject
            {
                ["listen"] = url[p], ["party_id"] = p, ["warehouse"] = Wh(p), ["feature_table"] = $"feat_{p}", ["log"] = "none",
                ["callers"] = new JsonObject { ["initiator"] = new JsonObject { ["key"] = key[p] } },
            };
            Start("serve-" + p, ["serve", "party", "--config", Config("serve-" + p, cfg)]);
        }
        var initiatorUrl = $"http://127.0.0.1:{FreePort()}";
        var icfg = new JsonObject
        {
            ["listen"] = initiatorUrl, ["party_id"] = "guest", ["caller_id"] = "initiator", ["warehouse"] = Wh("guest"), ["redis"] = redis, ["log"] = "none",
            ["parties"] = new JsonArray([.. _parties.Select(p => (JsonNode)new JsonObject { ["party_id"] = p, ["url"] = url[p], ["key"] = key[p], ["timeout_ms"] = 5000 })]),
            ["callers"] = new JsonObject { ["app"] = new JsonObject { ["key"] = key["app"] } },
        };
        Start("serve-initiator", ["serve", "initiator", "--config", Config("serve-initiator", icfg)]);

        using var http = new HttpClient { BaseAddress = new Uri(initiatorUrl), Timeout = TimeSpan.FromSeconds(30) };
        foreach (var u in url.Values.Append(initiatorUrl)) await WaitReady(http, u);
        var values = new Dictionary<string, double>();
        foreach (var chunk in sampleIds.Chunk(100))
        {
            var body = JsonSerializer.SerializeToUtf8Bytes(new { model_id = _model, sample_ids = chunk, mode = "realtime" });
            using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/predict") { Content = new ByteArrayContent(body) };
            req.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            RequestSigning.Apply(req, Convert.FromBase64String(key["app"]), "app", body);
            using var resp = await http.SendAsync(req);
            var text = await resp.Content.ReadAsStringAsync();
            Assert.True(resp.IsSuccessStatusCode, $"POST /v1/predict: {(int)resp.StatusCode} {text}");
            foreach (var pred in JsonNode.Parse(text)!["predictions"]!.AsArray())
            {
                var status = pred!["status"]!.GetValue<string>();
                var id = pred["sample_id"]!.GetValue<string>();
                // A sample some party lacks is answered with its status and without a value, never scored from fewer parties.
                if (status == "ok") values[id] = pred["value"]!.GetValue<double>();
                else Assert.Null(pred["value"]);
            }
        }
        return values;
    }

    // --- plumbing ---

    string Wh(string party) => "sqlite:" + Path.Combine(_dir, party + ".db");

    void Fed(string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        var code = CliApp.Run(args, Commands, o, e);
        Assert.True(code == 0, $"fed {string.Join(' ', args)} exited {code}: {e}");
    }

    void Start(string name, string[] args) => _workers.Add(FedProcess.Start(Path.Combine(_dir, name + ".log"), args));

    string Config(string name, JsonObject config)
    {
        var path = Path.Combine(_dir, name + ".json");
        File.WriteAllText(path, config.ToJsonString());
        return path;
    }

    static Dictionary<string, double> Predictions(string warehouse, string table, string hourFilter)
    {
        using var w = WarehouseFactory.Open(warehouse);
        using var r = w.Query($"SELECT sample_id, predict_value FROM {table} WHERE dt = ?{hourFilter}", Dt);
        var d = new Dictionary<string, double>();
        while (r.Read()) d.Add(r.GetString(0), r.GetDouble(1));
        return d;
    }

    static IEnumerable<string> Ids(string csv) => File.ReadLines(csv).Skip(1).Select(l => l[..l.IndexOf(',')]);

    static void Sh(params string[] args)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("bash") { RedirectStandardError = true, RedirectStandardOutput = true };
        psi.ArgumentList.Add(Path.Combine(TestEnvironment.RepoRoot, "scripts", "services.sh"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"services.sh {string.Join(' ', args)}: {err.Result}");
    }

    static int FreePort()
    {
        using var l = new TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        return ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
    }

    async Task WaitReady(HttpClient http, string baseUrl)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            try { using var r = await http.GetAsync(baseUrl + "/readyz"); if (r.IsSuccessStatusCode) return; }
            catch (HttpRequestException) { }
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{baseUrl}/readyz not ready in 30 s; logs in {_dir}");
            await Task.Delay(100);
        }
    }

    public void Dispose()
    {
        foreach (var w in _workers) { try { w.Terminate(TimeSpan.FromSeconds(15)); } catch (TimeoutException) { } w.Dispose(); }
        if (Environment.GetEnvironmentVariable("FED_TEST_KEEP") != "1") try { Directory.Delete(_dir, true); } catch (IOException) { }
    }
}
