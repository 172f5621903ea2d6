using System.Text.Json;
using System.Text.Json.Serialization;
using Fed.Core;
using Fed.Core.Model;
using Fed.Training.Data;
using Fed.Training.Train;
using Fed.Training.Transport;

namespace Fed.Training.Protocol;

/// <summary>`fed train party --config party.json`: one role in its own process.</summary>
public sealed class PartyConfig
{
    [JsonPropertyName("party")] public string Party { get; set; } = "";
    [JsonPropertyName("role")] public string Role { get; set; } = "";
    [JsonPropertyName("listen_host")] public string ListenHost { get; set; } = "127.0.0.1";
    [JsonPropertyName("listen_port")] public int ListenPort { get; set; }
    /// <summary>PKCS#12 file (mode 0600) with this party's certificate and key; its password, if any, from an env var or a file.</summary>
    [JsonPropertyName("certificate")] public string Certificate { get; set; } = "";
    [JsonPropertyName("certificate_password_env")] public string? CertificatePasswordEnv { get; set; }
    [JsonPropertyName("certificate_password_file")] public string? CertificatePasswordFile { get; set; }
    /// <summary>Accept a certificate file group/others can read (insecure; for shared test fixtures only).</summary>
    [JsonPropertyName("allow_insecure_key_file_mode")] public bool AllowInsecureKeyFileMode { get; set; }
    [JsonPropertyName("peers")] public List<PeerConfig> Peers { get; set; } = [];
    [JsonPropertyName("guest")] public string Guest { get; set; } = "guest";
    [JsonPropertyName("hosts")] public List<string> Hosts { get; set; } = [];
    [JsonPropertyName("arbiter")] public string Arbiter { get; set; } = "arbiter";
    [JsonPropertyName("data")] public string? Data { get; set; }
    [JsonPropertyName("id_column")] public string IdColumn { get; set; } = "id";
    [JsonPropertyName("label_column")] public string? LabelColumn { get; set; }
    [JsonPropertyName("out")] public string? Out { get; set; }
    [JsonPropertyName("kind")] public string Kind { get; set; } = "logistic";
    [JsonPropertyName("psi")] public string Psi { get; set; } = "ecdh";
    [JsonPropertyName("max_iter")] public int MaxIter { get; set; } = 100;
    [JsonPropertyName("learning_rate")] public double LearningRate { get; set; } = 1.0;
    [JsonPropertyName("l2")] public double L2 { get; set; } = 1.0;
    [JsonPropertyName("batch_size")] public int BatchSize { get; set; }
    [JsonPropertyName("key_bits")] public int KeyBits { get; set; } = 2048;
    /// <summary>Accept Paillier keys under 2048 bits (tests, demo, benchmarks only). Each party's own setting.</summary>
    [JsonPropertyName("insecure_test_key_bits")] public bool InsecureTestKeyBits { get; set; }
    [JsonPropertyName("seed")] public int Seed { get; set; } = 42;
    [JsonPropertyName("tolerance")] public double Tolerance { get; set; } = 1e-6;
    [JsonPropertyName("test_buckets")] public int TestBuckets { get; set; } = 3;
    [JsonPropertyName("model_id")] public string ModelId { get; set; } = "fed-model";
    [JsonPropertyName("model_version")] public int ModelVersion { get; set; } = 1;
    [JsonPropertyName("liveness_seconds")] public double LivenessSeconds { get; set; } = 10;
    [JsonPropertyName("send_seconds")] public double SendSeconds { get; set; } = 30;
    [JsonPropertyName("receive_seconds")] public double ReceiveSeconds { get; set; } = 1800;

    public sealed class PeerConfig
    {
        [JsonPropertyName("name")] public string Name { get; set; } = "";
        [JsonPropertyName("url")] public string Url { get; set; } = "";
        [JsonPropertyName("cert_sha256")] public string CertSha256 { get; set; } = "";
    }

    public static PartyConfig Load(string path)
    {
        if (!File.Exists(path)) throw new BadInputException($"{path}: no such config file");
        try { return JsonSerializer.Deserialize<PartyConfig>(File.ReadAllText(path), new JsonSerializerOptions { UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow }) ?? throw new BadInputException($"{path}: empty config"); }
        catch (JsonException e) { throw new BadInputException($"{path}: invalid party config: {e.Message}", e); }
    }

    public TrainOptions Options()
    {
        if (!PartialModel.TryParseKind(Kind, out var kind)) throw new BadInputException($"kind must be logistic, linear or softmax, got '{Kind}'");
        return new TrainOptions
        {
            Kind = kind, MaxIter = MaxIter, LearningRate = LearningRate, L2 = L2, BatchSize = BatchSize, KeyBits = KeyBits, InsecureTestKeyBits = InsecureTestKeyBits,
            Seed = Seed, Tolerance = Tolerance, TestBuckets = TestBuckets, ModelId = ModelId, Version = ModelVersion,
        };
    }
}

public static class PartyRunner
{
    /// <summary>Runs the configured role; a data party writes its model file only when training completed everywhere.</summary>
    public static async Task<PartyOutcome> RunAsync(PartyConfig c, Action<string>? log, CancellationToken ct = default)
    {
        Check(c);
        var timeouts = new TransportTimeouts
        {
            Liveness = TimeSpan.FromSeconds(c.LivenessSeconds), Send = TimeSpan.FromSeconds(c.SendSeconds), Receive = TimeSpan.FromSeconds(c.ReceiveSeconds),
        };
        await using var net = await HttpMessenger.StartAsync(c.Party, PartyCertificates.Load(c.Certificate,
            Fed.Core.Security.SecretFiles.ReadSecret(c.CertificatePasswordEnv, c.CertificatePasswordFile, "certificate password"), c.AllowInsecureKeyFileMode), c.ListenHost, c.ListenPort, timeouts);
        net.Connect(c.Peers.Select(p => new PeerEndpoint(p.Name, p.Url.TrimEnd('/'), p.CertSha256.ToLowerInvariant())));
        log?.Invoke($"{c.Party}: {c.Role} listening on {net.Url}");
        var outcome = await RunRoleAsync(net, c, log, ct);
        // Give peers a moment to fetch their last messages before the endpoint closes.
        await Task.Delay(500, CancellationToken.None);
        return outcome;
    }

    static void Check(PartyConfig c)
    {
        Identifiers.PartyId(c.Party);
        c.Options().Validate();
        if (c.Role is not ("guest" or "host" or "arbiter")) throw new BadInputException($"config: role must be guest, host or arbiter, got '{c.Role}'");
        if (c.Role is "guest" or "host" && string.IsNullOrEmpty(c.Out)) throw new BadInputException("config: 'out' (model directory) is required for a data party");
    }

    /// <summary>Runs the configured role over a connected messenger and writes the model file into <c>out</c> (and the
    /// guest's report) only after training completed everywhere.</summary>
    public static async Task<PartyOutcome> RunRoleAsync(IMessenger net, PartyConfig c, Action<string>? log, CancellationToken ct = default)
    {
        Check(c);
        var options = c.Options();
        PartyTable? table = c.Role switch
        {
            "guest" => PartyTable.Load(c.Data ?? throw new BadInputException("config: 'data' is required"), c.IdColumn, c.LabelColumn ?? throw new BadInputException("config: the guest needs 'label_column'")),
            "host" => PartyTable.Load(c.Data ?? throw new BadInputException("config: 'data' is required"), c.IdColumn, null),
            _ => null,
        };
        var outcome = await LocalTraining.Guarded(net, () => c.Role switch
        {
            "guest" => new GuestRole(net, table!, options, c.Hosts, c.Arbiter, c.Psi, log).RunAsync(ct),
            "host" => new HostRole(net, table!, c.Guest, c.Arbiter, c.Hosts, options.Kind, c.InsecureTestKeyBits, log).RunAsync(ct),
            _ => new ArbiterRole(net, c.Guest, c.Hosts, c.InsecureTestKeyBits, log).RunAsync(ct),
        });
        foreach (var w in c.Role == "guest" ? LocalTraining.Warnings(outcome) : []) log?.Invoke($"{c.Party}: warning: {w}");
        if (outcome.Holdout != null) log?.Invoke($"{c.Party}: held-out: {outcome.Holdout}");
        if (outcome.Model != null)
        {
            var path = Path.Combine(c.Out!, $"{c.Party}.model.json");
            ModelFile.Write(outcome.Model, path);
            if (c.Role == "guest")
                TrainingReport.Write(c.Out!, new Dictionary<string, object?>
                {
                    ["ok"] = true, ["party"] = c.Party, ["intersection"] = outcome.Intersection, ["train_rows"] = outcome.TrainRows,
                    ["filled_with_mean"] = outcome.FilledWithMean,
                    ["epochs"] = outcome.Losses.Count, ["stop_reason"] = outcome.StopReason, ["loss_per_epoch"] = outcome.Losses, ["seconds"] = outcome.Seconds,
                    ["holdout"] = outcome.Holdout?.ToJson(), ["warnings"] = LocalTraining.Warnings(outcome),
                }, outcome.Losses, $"{c.ModelId}: loss per epoch");
        }
        return outcome;
    }
}
