using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Security.Cryptography.X509Certificates;
using Fed.Converter;
using Fed.Core.Security;
using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.Serving;
using Fed.Warehouse;

namespace Fed.Serving.Tests;

/// <summary>
/// A two-party federation on loopback built from the real breast_cancer split (guest 10 features, host 20):
/// deterministic fixed-weight partial models v1 and v2 (v2 active) exported into one SQLite warehouse per party,
/// the party's features loaded into its daily and hourly feature tables, precomputed partial scores for offline mode,
/// two real party services and an initiator on free ports. Shared by the tests and the serving benchmark.
/// </summary>
public sealed class ServingWorld : IAsyncDisposable
{
    public const string Dt = "2026-11-21";
    public static readonly string DataDir = Environment.GetEnvironmentVariable("FED_SHARED_DATA") is { Length: > 0 } d
        ? Path.Combine(d, "breast_cancer") : FindData();

    /// <summary>../shared/data/breast_cancer beside the repository (the layout CI and developers share).</summary>
    static string FindData()
    {
        var dir = AppContext.BaseDirectory;
        while (dir != null && !File.Exists(Path.Combine(dir, "Fed.sln"))) dir = Path.GetDirectoryName(dir);
        return Path.GetFullPath(Path.Combine(dir ?? ".", "..", "shared", "data", "breast_cancer"));
    }

    public required string Dir { get; init; }
    public required string ModelId { get; init; }
    public required string Redis { get; init; }
    public Dictionary<string, Dictionary<string, double[]>> Features { get; } = new(); // party -> sample -> values (model order)
    public Dictionary<(string Party, int Version), ScoringModel> Models { get; } = new();
    public Dictionary<string, string> Warehouses { get; } = new();
    public Dictionary<string, PartyService> Parties { get; } = new();
    public InitiatorService Initiator { get; private set; } = null!;
    public static readonly string[] PartyIds = ["guest", "host"];

    public byte[] GuestKey { get; } = RandomNumberGenerator.GetBytes(32);
    public byte[] HostKey { get; } = RandomNumberGenerator.GetBytes(32);
    public byte[] ClientKey { get; } = RandomNumberGenerator.GetBytes(32);
    public byte[] AdminKey { get; } = RandomNumberGenerator.GetBytes(32);
    /// <summary>The party's own real-time system: the only caller allowed to send inline features.</summary>
    public byte[] FeederKey { get; } = RandomNumberGenerator.GetBytes(32);

    public static string RequireRedis() =>
        Environment.GetEnvironmentVariable("FED_TEST_REDIS") is { Length: > 0 } r ? r
            : throw new InvalidOperationException("FED_TEST_REDIS is not set: run the tests through scripts/test.sh, which starts Redis and sets it (host:port)");

    public static string RequireRedisCluster() =>
        Environment.GetEnvironmentVariable("FED_TEST_REDIS_CLUSTER") is { Length: > 0 } r ? r
            : throw new InvalidOperationException("FED_TEST_REDIS_CLUSTER is not set: run the tests through scripts/test.sh, which starts a Redis Cluster and sets it (host:port,...)");

    /// <summary>Builds and starts the world. <paramref name="log"/> is each service's log target; "{service}" in it
    /// becomes the party id or "initiator" (e.g. file:/tmp/x/{service}.log).</summary>
    /// <summary><paramref name="tls"/>: every service on HTTPS with pinned client certificates (the shipped setting);
    /// else plain HTTP with insecure_plaintext.</summary>
    public static async Task<ServingWorld> Create(string redis, Action<InitiatorConfig>? tune = null, string log = "none", bool tls = false)
    {
        var world = Prepare(redis, tls);
        foreach (var p in PartyIds)
        {
            var svc = new PartyService(world.PartyConfig(p, log.Replace("{service}", p)));
            await svc.StartAsync();
            world.Parties[p] = svc;
        }
        var ic = world.InitiatorConfig(world.Parties.ToDictionary(x => x.Key, x => x.Value.Url), log.Replace("{service}", "initiator"));
        tune?.Invoke(ic);
        world.Initiator = new InitiatorService(ic);
        await world.Initiator.StartAsync();
        return world;
    }

    /// <summary>The data, warehouses and (with TLS) certificates, without starting any service (for `fed serve` processes).</summary>
    public static ServingWorld Prepare(string redis, bool tls)
    {
        var dir = Path.Combine(Path.GetTempPath(), "fed-serve-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        var world = new ServingWorld { Dir = dir, ModelId = "bc-" + Guid.NewGuid().ToString("N")[..8], Redis = redis, Tls = tls };
        if (tls)
            foreach (var name in (string[])["guest", "host", "initiator", "client", "admin", "feeder"])
            {
                var cert = Certificates.Create(name);
                Certificates.WritePkcs12(cert, world.CertFile(name), null);
                world.Certs[name] = cert;
            }
        world.Build();
        return world;
    }

    public bool Tls { get; init; }
    /// <summary>With TLS: each service's and caller's certificate (guest, host, initiator, client, admin, feeder).</summary>
    public Dictionary<string, X509Certificate2> Certs { get; } = new();
    public string CertFile(string name) => Path.Combine(Dir, name + ".p12");
    string? Pin(string name) => Tls ? Certificates.Pin(Certs[name]) : null;
    string Listen => Tls ? "https://127.0.0.1:0" : "http://127.0.0.1:0";
    TlsConfig? TlsOf(string name) => Tls ? new TlsConfig { Certificate = CertFile(name) } : null;

    public PartyConfig PartyConfig(string party, string log = "none") => new()
    {
        PartyId = party, Warehouse = "sqlite:" + Warehouses[party], FeatureTable = "bc_features", HourlyFeatureTable = "bc_features_hourly",
        Listen = Listen, InsecurePlaintext = !Tls, Tls = TlsOf(party),
        Callers = new()
        {
            ["initiator"] = new CallerConfig { Key = Convert.ToBase64String(party == "guest" ? GuestKey : HostKey), CertSha256 = Pin("initiator") },
            ["admin"] = new CallerConfig { Key = Convert.ToBase64String(AdminKey), Admin = true, CertSha256 = Pin("admin") },
            ["feeder"] = new CallerConfig { Key = Convert.ToBase64String(FeederKey), InlineFeatures = true, CertSha256 = Pin("feeder") },
        },
        Log = log,
    };

    public InitiatorConfig InitiatorConfig(IReadOnlyDictionary<string, string> urls, string log = "none") => new()
    {
        PartyId = "guest", CallerId = "initiator", Warehouse = "sqlite:" + Warehouses["guest"], Redis = Redis,
        Listen = Listen, InsecurePlaintext = !Tls, Tls = TlsOf("initiator"),
        Parties = urls.Select(u => new PartyEndpoint
        {
            PartyId = u.Key, Url = u.Value, Key = Convert.ToBase64String(u.Key == "guest" ? GuestKey : HostKey), TimeoutMs = 2000,
            CertSha256 = Tls && Certs.ContainsKey(u.Key) ? Pin(u.Key) : null,
        }).ToList(),
        Callers = new()
        {
            ["client"] = new CallerConfig { Key = Convert.ToBase64String(ClientKey), CertSha256 = Pin("client") },
            ["admin"] = new CallerConfig { Key = Convert.ToBase64String(AdminKey), Admin = true, CertSha256 = Pin("admin") },
        },
        Log = log,
    };

    /// <summary>An HTTP client as <paramref name="caller"/> would use it: with TLS it presents the caller's certificate
    /// (null: none) and accepts only the world's service certificates; plain otherwise.</summary>
    public HttpClient ClientFor(string? caller, int maxConnections = int.MaxValue)
    {
        var handler = new SocketsHttpHandler { UseProxy = false, PooledConnectionLifetime = TimeSpan.FromMinutes(5), MaxConnectionsPerServer = maxConnections };
        if (Tls)
        {
            var servers = new[] { "guest", "host", "initiator" }.Select(n => Certificates.Pin(Certs[n])).ToHashSet();
            handler.SslOptions = new System.Net.Security.SslClientAuthenticationOptions
            {
                ClientCertificates = caller is null ? null : new X509CertificateCollection { Certs[caller] },
                RemoteCertificateValidationCallback = (_, c, _, _) => c != null && servers.Contains(Certificates.Pin(c)),
            };
        }
        return new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
    }

    public static byte[] KeyOf(ServingWorld w, string caller) => caller switch
    {
        "client" => w.ClientKey, "admin" => w.AdminKey, "feeder" => w.FeederKey, "guest" => w.GuestKey, "host" => w.HostKey,
        _ => throw new ArgumentException(caller),
    };

    static (string[] Header, List<string[]> Rows) ReadCsv(string path)
    {
        var lines = File.ReadAllLines(path).Where(l => l.Length > 0).ToList();
        return (lines[0].Split(','), lines.Skip(1).Select(l => l.Split(',')).ToList());
    }

    void Build()
    {
        foreach (var party in PartyIds)
        {
            var (header, rows) = ReadCsv(Path.Combine(DataDir, party + ".csv"));
            var featureIdx = Enumerable.Range(0, header.Length).Where(i => header[i] is not ("id" or "y")).ToArray();
            var features = featureIdx.Select(i => header[i]).ToArray();
            var values = rows.ToDictionary(r => r[0], r => featureIdx.Select(i => double.Parse(r[i], CultureInfo.InvariantCulture)).ToArray());
            Features[party] = values;
            var k = features.Length;
            var mean = Enumerable.Range(0, k).Select(f => values.Values.Average(v => v[f])).ToArray();
            var std = Enumerable.Range(0, k).Select(f => Math.Sqrt(values.Values.Average(v => (v[f] - mean[f]) * (v[f] - mean[f])))).ToArray();
            var path = Path.Combine(Dir, party + ".db");
            Warehouses[party] = path;
            using var w = new Fed.Warehouse.Sqlite.SqliteWarehouse(path);
            foreach (var version in new[] { 1, 2 })
            {
                // Fixed, deterministic weights: the signs follow the medical meaning loosely; v2 differs from v1 everywhere.
                var weights = Enumerable.Range(0, k).Select(f => Math.Round((version == 1 ? 0.35 : 0.21) * (((f * 7 + version) % 5) - 1.2) / Math.Sqrt(k), 6)).ToArray();
                var pm = new PartialModel
                {
                    ModelId = ModelId, Version = version, Kind = ModelKind.Logistic, PartyId = party,
                    Role = party == "guest" ? PartyRole.Guest : PartyRole.Host, Parties = PartyIds, Features = features,
                    Weights = [weights], Intercepts = party == "guest" ? [version == 1 ? -0.4 : 0.25] : [],
                    Transform = new FeatureTransform(TransformKind.Standardize, mean, std),
                };
                var file = Path.Combine(Dir, $"v{version}", $"{party}.json");
                ModelFile.Write(pm, file);
                var stamped = ModelFile.Read(file);
                new ModelExporter(w).Export(stamped, activate: true);
                Models[(party, version)] = ScoringModel.From(stamped);
            }
            var cols = features.Select(Fed.Core.Identifiers.ColumnFor).ToArray();
            var daily = Schema.Features("bc_features", features, hourly: false);
            var hourly = Schema.Features("bc_features_hourly", features, hourly: true);
            w.Execute(w.Dialect.CreateTable(daily));
            w.Execute(w.Dialect.CreateTable(hourly));
            w.Execute("CREATE INDEX IF NOT EXISTS ix_bc_features_sample ON bc_features (sample_id)");
            w.Execute("CREATE INDEX IF NOT EXISTS ix_bc_features_hourly_sample ON bc_features_hourly (sample_id)");
            var partial = Schema.PartialScores(hourly: false);
            w.Execute(w.Dialect.CreateTable(partial));
            var colList = string.Join(", ", cols.Select(w.Dialect.Id));
            var marks = string.Join(", ", cols.Select(_ => "?"));
            using (var tx = w.BeginTransaction())
            {
                foreach (var (id, v) in values)
                {
                    // An older day and an older hour hold different values: the newest must win.
                    w.Execute($"INSERT INTO bc_features (sample_id, {colList}, dt) VALUES (?, {marks}, ?)", [id, .. v.Select(x => (object?)(x * 3)), "2026-11-20"]);
                    w.Execute($"INSERT INTO bc_features (sample_id, {colList}, dt) VALUES (?, {marks}, ?)", [id, .. v.Select(x => (object?)x), Dt]);
                    w.Execute($"INSERT INTO bc_features_hourly (sample_id, {colList}, dt, hour) VALUES (?, {marks}, ?, ?)", [id, .. v.Select(x => (object?)(x + 1)), Dt, "09"]);
                    w.Execute($"INSERT INTO bc_features_hourly (sample_id, {colList}, dt, hour) VALUES (?, {marks}, ?, ?)", [id, .. v.Select(x => (object?)x), Dt, "10"]);
                    foreach (var version in new[] { 1, 2 })
                    {
                        var s = new double[1];
                        new PartialScorer(Models[(party, version)]).ScoreRow(v, s);
                        w.Execute("INSERT INTO fed_partial_scores (model_id, version, party, sample_id, class_index, partial_score, dt) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            ModelId, version, party, id, 0, s[0], Dt);
                        w.Execute("INSERT INTO fed_partial_scores (model_id, version, party, sample_id, class_index, partial_score, dt) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            ModelId, version, party, id, 0, 999.0, "2026-11-20");
                    }
                }
                tx.Commit();
            }
        }
    }

    /// <summary>Ids both parties hold (the ~90% intersection), and ids only the guest holds.</summary>
    public string[] SharedIds => Features["guest"].Keys.Where(Features["host"].ContainsKey).OrderBy(x => x, StringComparer.Ordinal).ToArray();
    public string[] GuestOnlyIds => Features["guest"].Keys.Where(id => !Features["host"].ContainsKey(id)).OrderBy(x => x, StringComparer.Ordinal).ToArray();

    /// <summary>The same prediction computed directly with Fed.Core: each party's PartialScorer, then the Combiner.</summary>
    public double Direct(string sampleId, int version)
    {
        var partials = new Dictionary<string, double[]>();
        foreach (var p in PartyIds)
        {
            var s = new double[1];
            new PartialScorer(Models[(p, version)]).ScoreRow(Features[p][sampleId], s);
            partials[p] = s;
        }
        return Combiner.Combine(Models[("guest", version)].Signature, partials, sampleId).Value;
    }

    public static async Task<(int Status, string Body)> Send(HttpClient http, HttpMethod method, string url, string caller, byte[] key, string? body,
        long? timestamp = null, bool sign = true, string? nonce = null)
    {
        var bytes = body is null ? [] : Encoding.UTF8.GetBytes(body);
        using var msg = new HttpRequestMessage(method, url);
        if (body != null) msg.Content = new ByteArrayContent(bytes) { Headers = { ContentType = new("application/json") } };
        if (sign) RequestSigning.Apply(msg, key, caller, bytes, timestamp, nonce);
        using var resp = await http.SendAsync(msg);
        return ((int)resp.StatusCode, await resp.Content.ReadAsStringAsync());
    }

    /// <summary>GET /metrics (or another ops path) signed as the admin caller.</summary>
    public async Task<string> Ops(HttpClient http, string baseUrl, string path = "/metrics")
    {
        var (status, body) = await Send(http, HttpMethod.Get, baseUrl + path, "admin", AdminKey, null);
        return status == 200 ? body : throw new InvalidOperationException($"GET {path}: HTTP {status}: {body}");
    }

    /// <summary>The value of one series in a Prometheus exposition (e.g. <c>fed_x_total{a="b"}</c>); 0 when absent.</summary>
    public static double Sample(string exposition, string series)
    {
        foreach (var line in exposition.Split('\n'))
            if (line.StartsWith(series + " ", StringComparison.Ordinal))
                return double.Parse(line[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        return 0;
    }

    public static string PredictBody(string modelId, IEnumerable<string> ids, string mode = "realtime", bool useCache = false) =>
        JsonSerializer.Serialize(new { model_id = modelId, sample_ids = ids.ToArray(), mode, use_cache = useCache });

    public async ValueTask DisposeAsync()
    {
        if (Initiator != null) await Initiator.DisposeAsync();
        foreach (var p in Parties.Values) await p.DisposeAsync();
        foreach (var c in Certs.Values) c.Dispose();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}
