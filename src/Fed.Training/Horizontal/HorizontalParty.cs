using System.Text.Json;
using System.Text.Json.Serialization;
using Fed.Core;
using Fed.Core.Model;
using Fed.Training.Data;
using Fed.Training.Protocol;
using Fed.Training.Train;
using Fed.Training.Transport;

namespace Fed.Training.Horizontal;

/// <summary>`fed train party --role client|aggregator|coordinator --config party.json`: one horizontal role in its own process.</summary>
public sealed class HorizontalPartyConfig
{
    [JsonPropertyName("name")] public string Name { get; set; } = "";
    [JsonPropertyName("listen_host")] public string ListenHost { get; set; } = "127.0.0.1";
    [JsonPropertyName("listen_port")] public int ListenPort { get; set; }
    /// <summary>PKCS#12 file (no password) with this party's certificate and key (`fed train cert`).</summary>
    [JsonPropertyName("certificate")] public string Certificate { get; set; } = "";
    [JsonPropertyName("peers")] public List<PartyConfig.PeerConfig> Peers { get; set; } = [];
    [JsonPropertyName("coordinator")] public string Coordinator { get; set; } = Wire.DefaultCoordinator;
    /// <summary>Client: its aggregation server.</summary>
    [JsonPropertyName("aggregator")] public string? Aggregator { get; set; }
    /// <summary>Aggregation server: its clients.</summary>
    [JsonPropertyName("clients")] public List<string> Clients { get; set; } = [];
    /// <summary>Coordinator: the aggregation servers.</summary>
    [JsonPropertyName("aggregators")] public List<string> Aggregators { get; set; } = [];
    [JsonPropertyName("data")] public string? Data { get; set; }
    [JsonPropertyName("id_column")] public string IdColumn { get; set; } = "id";
    [JsonPropertyName("label_column")] public string LabelColumn { get; set; } = "y";
    /// <summary>Where the model (global.model.json) is written: required at the coordinator, optional at a client.</summary>
    [JsonPropertyName("out")] public string? Out { get; set; }
    [JsonPropertyName("kind")] public string Kind { get; set; } = "logistic";
    [JsonPropertyName("classes")] public string[] Classes { get; set; } = [];
    [JsonPropertyName("rounds")] public int Rounds { get; set; } = 100;
    [JsonPropertyName("local_epochs")] public int LocalEpochs { get; set; } = 1;
    [JsonPropertyName("batch_size")] public int BatchSize { get; set; }
    [JsonPropertyName("learning_rate")] public double LearningRate { get; set; } = 0.5;
    [JsonPropertyName("l2")] public double L2 { get; set; } = 0.001;
    [JsonPropertyName("tolerance")] public double Tolerance { get; set; } = 1e-7;
    [JsonPropertyName("seed")] public int Seed { get; set; } = 42;
    [JsonPropertyName("test_buckets")] public int TestBuckets { get; set; } = 3;
    [JsonPropertyName("dp_epsilon")] public double? DpEpsilon { get; set; }
    [JsonPropertyName("dp_level")] public string DpLevel { get; set; } = "record";
    [JsonPropertyName("dp_delta")] public double DpDelta { get; set; } = 1e-5;
    [JsonPropertyName("dp_clip")] public double DpClip { get; set; } = 1.0;
    [JsonPropertyName("min_clients_per_group")] public int MinClientsPerGroup { get; set; } = 2;
    [JsonPropertyName("model_id")] public string ModelId { get; set; } = "fed-model";
    [JsonPropertyName("model_version")] public int ModelVersion { get; set; } = 1;
    [JsonPropertyName("liveness_seconds")] public double LivenessSeconds { get; set; } = 10;
    [JsonPropertyName("send_seconds")] public double SendSeconds { get; set; } = 30;
    [JsonPropertyName("receive_seconds")] public double ReceiveSeconds { get; set; } = 1800;

    public static HorizontalPartyConfig Load(string path)
    {
        if (!File.Exists(path)) throw new BadInputException($"{path}: no such config file");
        try
        {
            return JsonSerializer.Deserialize<HorizontalPartyConfig>(File.ReadAllText(path), new JsonSerializerOptions { UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow })
                ?? throw new BadInputException($"{path}: empty config");
        }
        catch (JsonException e) { throw new BadInputException($"{path}: invalid horizontal party config: {e.Message}", e); }
    }

    public HorizontalOptions Options()
    {
        if (!PartialModel.TryParseKind(Kind, out var kind)) throw new BadInputException($"kind must be logistic, linear or softmax, got '{Kind}'");
        var o = new HorizontalOptions
        {
            Kind = kind, Classes = Classes, Rounds = Rounds, LocalEpochs = LocalEpochs, BatchSize = BatchSize, LearningRate = LearningRate,
            L2 = L2, Tolerance = Tolerance, Seed = Seed, TestBuckets = TestBuckets, DpEpsilon = DpEpsilon, DpDelta = DpDelta, DpClip = DpClip,
            MinClientsPerGroup = MinClientsPerGroup, ModelId = ModelId, Version = ModelVersion, DpLevel = HorizontalOptions.ParseLevel(DpLevel),
        };
        o.Validate();
        return o;
    }
}

public static class HorizontalParty
{
    /// <summary>Runs one role to the end. The coordinator writes global.model.json and report.json into its out
    /// directory; a client writes global.model.json into its own when it has one.</summary>
    public static async Task<object> RunAsync(string role, HorizontalPartyConfig c, Action<string>? log, CancellationToken ct = default)
    {
        Identifiers.PartyId(c.Name);
        var timeouts = new TransportTimeouts
        {
            Liveness = TimeSpan.FromSeconds(c.LivenessSeconds), Send = TimeSpan.FromSeconds(c.SendSeconds), Receive = TimeSpan.FromSeconds(c.ReceiveSeconds),
        };
        HorizontalOptions? options = null;
        PartyTable? table = null;
        switch (role)
        {
            case "coordinator":
                options = c.Options();
                if (string.IsNullOrEmpty(c.Out)) throw new BadInputException("config: 'out' (model directory) is required at the coordinator");
                if (c.Aggregators.Count == 0) throw new BadInputException("config: 'aggregators' must list the aggregation servers");
                break;
            case "aggregator":
                if (c.Clients.Count < 2) throw new BadInputException("config: 'clients' must list at least 2 clients");
                break;
            case "client":
                if (string.IsNullOrEmpty(c.Aggregator)) throw new BadInputException("config: 'aggregator' is required for a client");
                table = PartyTable.Load(c.Data ?? throw new BadInputException("config: 'data' is required for a client"), c.IdColumn, c.LabelColumn);
                break;
            default: throw new BadInputException($"--role must be client, aggregator or coordinator, got '{role}'");
        }
        await using var net = await HttpMessenger.StartAsync(c.Name, PartyCertificates.Load(c.Certificate), c.ListenHost, c.ListenPort, timeouts);
        net.Connect(c.Peers.Select(p => new PeerEndpoint(p.Name, p.Url.TrimEnd('/'), p.CertSha256.ToLowerInvariant())));
        log?.Invoke($"{c.Name}: {role} listening on {net.Url}");
        object result;
        switch (role)
        {
            case "coordinator":
                var co = await LocalTraining.Guarded(net, () => new CoordinatorRole(net, c.Aggregators, options!, log).RunAsync(ct));
                var path = Path.GetFullPath(Path.Combine(c.Out!, $"{HorizontalModel.Party}.model.json"));
                ModelFile.Write(co.Model, path);
                TrainingReport.Write(c.Out!, new Dictionary<string, object?>
                {
                    ["ok"] = true, ["kind"] = c.Kind, ["train_rows"] = co.TrainRows, ["rounds"] = co.Rounds, ["stop_reason"] = co.StopReason,
                    ["loss_per_round"] = co.Losses, ["clients_per_round"] = co.ClientsPerRound, ["seconds_per_round"] = co.SecondsPerRound, ["model"] = path,
                    ["dp"] = options!.Dp ? HorizontalLocal.Dp(options, co, []) : null,
                }, co.Losses, $"{c.ModelId}: horizontal loss per round");
                result = new { ok = true, role, party = c.Name, rounds = co.Rounds, stop_reason = co.StopReason, model = path };
                break;
            case "aggregator":
                var ag = await LocalTraining.Guarded(net, () => new AggregatorRole(net, c.Clients, c.Coordinator, log).RunAsync(ct));
                result = new { ok = true, role, party = c.Name, dropped = ag.Dropped.Select(d => d.Client).Distinct().ToArray() };
                break;
            default:
                var cl = await LocalTraining.Guarded(net, () => new ClientRole(net, table!, c.Aggregator!, log).RunAsync(ct));
                string? modelPath = null;
                if (!string.IsNullOrEmpty(c.Out) && cl.Model != null)
                    ModelFile.Write(cl.Model, modelPath = Path.GetFullPath(Path.Combine(c.Out, $"{HorizontalModel.Party}.model.json")));
                result = new
                {
                    ok = true, role, party = c.Name, train_rows = cl.TrainRows, rounds = cl.Rounds, model = modelPath,
                    dp = cl.Sigma is null ? null : new { noise_multiplier = cl.Sigma, sampling_rate = cl.SamplingRate, delta = cl.Delta, epsilon_per_round = cl.EpsilonPerRound },
                };
                break;
        }
        await Task.Delay(500, CancellationToken.None); // let peers fetch their last messages before the endpoint closes
        return result;
    }
}
