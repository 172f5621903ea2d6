using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Fed.Cli;
using Fed.Cli.Commands;
using Fed.Core.Model;
using Fed.Serving;
using Fed.Streaming.Tests;
using Fed.TestSupport;
using Fed.Warehouse;
using StackExchange.Redis;

namespace Fed.EndToEnd.Tests;

/// <summary>The shipped two-party breast-cancer model (vertical: guest + host).</summary>
public sealed class TwoPartyPaths() : AllPaths("breast_cancer", ["guest", "host"]);

/// <summary>The shipped one-party model from horizontal training (its one party is "global").</summary>
public sealed class OnePartyPaths() : AllPaths("horizontal_breast_cancer", ["global"]);

/// <summary>
/// Runs a shipped sample model (samples/SET/PARTY.json and PARTY.csv, under a run-unique id) through every prediction path once:
/// `fed predict local` (the reference), the daily batch (each party's own warehouse, local engine, partial-score files,
/// combine), the hourly batch (one shared warehouse, the SQL engine), streaming (Kafka party workers and the
/// initiator as `fed` processes, into Redis) and online (party services and the initiator as `fed` processes).
/// It keeps each path's predictions and everything each party sent out. Real Kafka and Redis from scripts/test.sh.
/// </summary>
public abstract class AllPaths(string sample, string[] parties) : IAsyncLifetime
{
    const string Dt = "2026-11-22";
    static readonly IReadOnlyList<CliCommand> Commands =
        [.. ModelCommands.All, .. ConvertCommands.All, .. PredictCommands.All, .. StreamCommands.All];

    readonly string _dir = Directory.CreateTempSubdirectory("fed-xpath-").FullName;
    readonly List<FedProcess> _workers = [];
    readonly string _model = "xpath-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant();
    readonly Dictionary<string, string> _csv = new(), _modelFile = new();

    public string[] Parties { get; } = parties;
    /// <summary>The party that combines (the guest: first in the model's party list).</summary>
    string Initiator => Parties[0];
    /// <summary>sample id -> prediction of `fed predict local`.</summary>
    public Dictionary<string, double> Reference { get; private set; } = [];
    /// <summary>Ids only some party holds.</summary>
    public List<string> OneSided { get; private set; } = [];
    /// <summary>Path name -> sample id -> prediction, in the order run.</summary>
    public Dictionary<string, Dictionary<string, double>> Paths { get; } = [];
    /// <summary>Party -> (what, text) of everything it sent across its boundary.</summary>
    public Dictionary<string, List<(string What, string Text)>> Sent { get; } = [];
    /// <summary>Party -> every feature value in its data.</summary>
    public Dictionary<string, HashSet<double>> FeatureValues { get; } = [];

    public async Task InitializeAsync()
    {
        var samples = Path.Combine(TestEnvironment.RepoRoot, "samples", sample);
        foreach (var p in Parties)
        {
            var json = JsonNode.Parse(File.ReadAllText(Path.Combine(samples, p + ".json")))!;
            json["model_id"] = _model;
            json.AsObject().Remove("checksum");
            _modelFile[p] = Path.Combine(_dir, p + ".model.json");
            ModelFile.Write(ModelFile.ParseUnstamped(json.ToJsonString()), _modelFile[p]);
            _csv[p] = Path.Combine(samples, p + ".csv");
            FeatureValues[p] = FeatureNumbers(_csv[p]);
            Sent[p] = [];
        }
        Reference = PredictLocal();
        OneSided = Parties.SelectMany(p => Ids(_csv[p])).Distinct().Where(id => !Reference.ContainsKey(id)).ToList();
        Paths["daily batch"] = DailyBatch();
        Paths["hourly batch"] = HourlyBatch();
        Paths["streaming"] = Streaming(TestEnvironment.Require("FED_TEST_KAFKA"), TestEnvironment.Require("FED_TEST_REDIS"));
        Paths["online"] = await Online(TestEnvironment.Require("FED_TEST_REDIS"));
    }

    Dictionary<string, double> PredictLocal()
    {
        var models = Path.Combine(_dir, "models");
        Directory.CreateDirectory(models);
        foreach (var p in Parties) File.Copy(_modelFile[p], Path.Combine(models, p + ".model.json"));
        var csv = Path.Combine(_dir, "local.csv");
        Fed(["predict", "local", "--models", models, .. Parties.SelectMany(p => new[] { "--party", $"{p}={_csv[p]}" }), "--out", csv]);
        return File.ReadLines(csv).Skip(1).Select(l => l.Split(',')).ToDictionary(f => f[0], f => double.Parse(f[1], CultureInfo.InvariantCulture));
    }

    /// <summary>Each party its own warehouse and the local engine; partial-score files go to the initiator, which combines.</summary>
    Dictionary<string, double> DailyBatch()
    {
        var scores = Path.Combine(_dir, "scores");
        foreach (var p in Parties)
        {
            Fed(["convert", "--model", _modelFile[p], "--warehouse", Wh(p)]);
            Fed(["predict", "batch", "--party", p, "--model-id", _model, "--features", _csv[p], "--dt", Dt, "--warehouse", Wh(p), "--out", scores]);
            foreach (var f in Directory.GetFiles(scores, $"*_{p}_*")) Sent[p].Add((Path.GetFileName(f), File.ReadAllText(f)));
        }
        Fed(["predict", "combine", "--model-id", _model, "--dt", Dt, "--input", scores, "--warehouse", Wh(Initiator)]);
        return Predictions(Wh(Initiator), "fed_predictions", "");
    }

    /// <summary>Hourly features in one shared warehouse, scored by the warehouse's own SQL, combined from fed_partial_scores.</summary>
    Dictionary<string, double> HourlyBatch()
    {
        var shared = "sqlite:" + Path.Combine(_dir, "shared.db");
        foreach (var p in Parties)
        {
            Fed(["convert", "--model", _modelFile[p], "--warehouse", shared]);
            Fed(["features", "load", "--party", p, "--csv", _csv[p], "--table", $"feat_{p}_hourly", "--dt", Dt, "--hour", "7", "--warehouse", shared]);
            Fed(["predict", "batch", "--party", p, "--model-id", _model, "--features", $"feat_{p}_hourly", "--dt", Dt, "--hour", "7", "--engine", "sql", "--warehouse", shared]);
        }
        Fed(["predict", "combine", "--model-id", _model, "--dt", Dt, "--hour", "7", "--input", "warehouse", "--warehouse", shared]);
        return Predictions(shared, "fed_predictions_hourly", " AND hour = '07'");
    }

    /// <summary>Feature events replayed into Kafka; a worker per party and the initiator, as processes; read back from Redis.</summary>
    Dictionary<string, double> Streaming(string kafka, string redis)
    {
        var t = $"{_model}.";
        TestServices.CreateTopics(2, [.. Parties.Select(p => t + "features." + p), t + "partials", t + "scores", t + "status", t + "deadletter"]);
        JsonObject Common(string group) => new()
        {
            ["group_id"] = $"{_model}-{group}", ["kafka"] = JsonSerializer.SerializeToNode(TestServices.OldBrokerKafka()),
            ["consumer"] = JsonSerializer.SerializeToNode(TestServices.OldBrokerConsumer()),
            ["dead_letter_topic"] = t + "deadletter", ["partials_topic"] = t + "partials", ["metrics_interval_ms"] = 0,
        };
        var initiator = Common("initiator");
        initiator["warehouse"] = Wh(Initiator); initiator["redis"] = redis; initiator["window_ms"] = 3000;
        initiator["scores_topic"] = t + "scores"; initiator["status_topic"] = t + "status";
        initiator["party_keys"] = new JsonObject(Parties.Select(p => KeyValuePair.Create(p, (JsonNode?)("file:" + TestServices.KeyFile(p)))));
        Start("stream-initiator", ["stream", "initiator", "--config", Config("stream-initiator", initiator)]);
        foreach (var p in Parties)
        {
            var party = Common(p);
            party["party"] = p; party["warehouse"] = Wh(p); party["input_topic"] = t + "features." + p;
            party["signing_key"] = "file:" + TestServices.KeyFile(p);
            Start("stream-" + p, ["stream", "party", "--config", Config("stream-" + p, party)]);
        }
        foreach (var p in Parties)
            Fed(["stream", "replay", "--csv", _csv[p], "--party", p, "--topic", t + "features." + p, "--drop", "y", "--model-id", _model,
                 "--brokers", kafka, "--event-prefix", "xp-", "--kafka", "api.version.request=false", "--kafka", "broker.version.fallback=0.9.0.1"]);

        using var mux = ConnectionMultiplexer.Connect(redis);
        var db = mux.GetDatabase();
        var found = new Dictionary<string, double>();
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (found.Count < Reference.Count && DateTime.UtcNow < deadline)
        {
            foreach (var id in Reference.Keys)
                if (!found.ContainsKey(id) && db.StringGet($"fed:pred:{_model}:v1:{id}") is { HasValue: true } v)
                    found[id] = JsonNode.Parse((string)v!)!["predict_value"]!.GetValue<double>();
            if (found.Count < Reference.Count) Thread.Sleep(250);
        }
        // A one-sided id must not have a prediction (its incomplete record is written when its window expires).
        foreach (var id in OneSided)
            if (db.StringGet($"fed:pred:{_model}:v1:{id}") is { HasValue: true } v) found[id] = double.NaN;

        var events = Parties.Sum(p => Ids(_csv[p]).Count());
        foreach (var (_, value) in TestServices.ReadTopic(t + "partials", 2, got => got.Count >= events, TimeSpan.FromSeconds(30)))
            Sent[JsonNode.Parse(value)!["party"]!.GetValue<string>()].Add(("partials topic message", value));
        return found;
    }

    /// <summary>Party services answer from their feature tables; the initiator fans out, combines and answers.</summary>
    async Task<Dictionary<string, double>> Online(string redis)
    {
        var key = new Dictionary<string, string>();
        foreach (var who in Parties.Append("app")) key[who] = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        var url = new Dictionary<string, string>();
        foreach (var p in Parties)
        {
            Fed(["features", "load", "--party", p, "--csv", _csv[p], "--table", $"feat_{p}", "--dt", Dt, "--warehouse", Wh(p)]);
            url[p] = $"http://127.0.0.1:{LoopbackPorts.Free()}";
            var cfg = new JsonObject
            {
                ["listen"] = url[p], ["insecure_plaintext"] = true, ["party_id"] = p, ["warehouse"] = Wh(p), ["feature_table"] = $"feat_{p}", ["log"] = "none",
                ["callers"] = new JsonObject { ["initiator"] = new JsonObject { ["key"] = key[p] } },
            };
            Start("serve-" + p, ["serve", "party", "--config", Config("serve-" + p, cfg)]);
        }
        var initiatorUrl = $"http://127.0.0.1:{LoopbackPorts.Free()}";
        var icfg = new JsonObject
        {
            ["listen"] = initiatorUrl, ["insecure_plaintext"] = true, ["party_id"] = Initiator, ["caller_id"] = "initiator", ["warehouse"] = Wh(Initiator), ["redis"] = redis, ["log"] = "none",
            ["parties"] = new JsonArray([.. Parties.Select(p => (JsonNode)new JsonObject { ["party_id"] = p, ["url"] = url[p], ["key"] = key[p], ["timeout_ms"] = 5000 })]),
            ["callers"] = new JsonObject { ["app"] = new JsonObject { ["key"] = key["app"] } },
        };
        Start("serve-initiator", ["serve", "initiator", "--config", Config("serve-initiator", icfg)]);

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        foreach (var u in url.Values.Append(initiatorUrl)) await WaitReady(http, u);
        var values = new Dictionary<string, double>();
        foreach (var chunk in Reference.Keys.Concat(OneSided).Chunk(100))
        {
            var answer = await Post(http, initiatorUrl + "/v1/predict", "app", key["app"], new { model_id = _model, sample_ids = chunk, mode = "realtime" });
            foreach (var pred in answer["predictions"]!.AsArray())
                if (pred!["status"]!.GetValue<string>() == "ok") values[pred["sample_id"]!.GetValue<string>()] = pred["value"]!.GetValue<double>();
                else if (pred["value"] != null) values[pred["sample_id"]!.GetValue<string>()] = double.NaN; // a value without "ok" fails the test
        }
        // What a party answers the initiator, asked as the initiator asks it.
        foreach (var p in Parties)
        {
            var ids = Reference.Keys.Take(50).Concat(OneSided.Take(5)).ToArray();
            var answer = await Post(http, url[p] + "/v1/partial-scores", "initiator", key[p], new { model_id = _model, version = 1, sample_ids = ids, mode = "realtime" });
            Sent[p].Add(("online answer", answer.ToJsonString()));
        }
        return values;
    }

    static async Task<JsonNode> Post(HttpClient http, string url, string caller, string key, object body)
    {
        var bytes = JsonSerializer.SerializeToUtf8Bytes(body);
        using var req = new HttpRequestMessage(HttpMethod.Post, url) { Content = new ByteArrayContent(bytes) };
        req.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        RequestSigning.Apply(req, Convert.FromBase64String(key), caller, bytes);
        using var resp = await http.SendAsync(req);
        var text = await resp.Content.ReadAsStringAsync();
        Assert.True(resp.IsSuccessStatusCode, $"POST {url}: {(int)resp.StatusCode} {text}");
        return JsonNode.Parse(text)!;
    }

    // --- plumbing ---

    string Wh(string party) => "sqlite:" + Path.Combine(_dir, party + ".db");

    static void Fed(string[] args)
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

    /// <summary>Every feature cell of a party's CSV (not the id, not the label).</summary>
    static HashSet<double> FeatureNumbers(string csv)
    {
        var header = File.ReadLines(csv).First().Split(',');
        var values = new HashSet<double>();
        foreach (var line in File.ReadLines(csv).Skip(1))
        {
            var cells = line.Split(',');
            for (var i = 1; i < cells.Length; i++)
                if (header[i] != "y" && double.TryParse(cells[i], CultureInfo.InvariantCulture, out var v)) values.Add(v);
        }
        return values;
    }

    async Task WaitReady(HttpClient http, string baseUrl)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            try { using var r = await http.GetAsync(baseUrl + "/healthz"); if (r.IsSuccessStatusCode) return; } // /readyz needs a signed caller
            catch (HttpRequestException) { }
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{baseUrl}/readyz not ready in 30 s; logs in {_dir}");
            await Task.Delay(100);
        }
    }

    public Task DisposeAsync()
    {
        foreach (var w in _workers) { try { w.Terminate(TimeSpan.FromSeconds(15)); } catch (TimeoutException) { } w.Dispose(); }
        if (Environment.GetEnvironmentVariable("FED_TEST_KEEP") != "1") try { Directory.Delete(_dir, true); } catch (IOException) { }
        return Task.CompletedTask;
    }
}
