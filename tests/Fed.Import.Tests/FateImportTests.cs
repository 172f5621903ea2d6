using System.Globalization;
using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.Import.Fate.Proto;
using Fed.Warehouse;
using Google.Protobuf;
using static Fed.Import.Tests.FateVectors;

namespace Fed.Import.Tests;

public class FateImportTests
{
    const int Rows = 40;
    static readonly string[] Classes = ["setosa", "versicolor", "virginica"];

    public static TheoryData<string, string, Scaling> Cases()
    {
        var d = new TheoryData<string, string, Scaling>();
        foreach (var format in new[] { "binary", "json", "fate2" })
            foreach (var kind in new[] { "logistic", "linear", "one-vs-rest" })
                foreach (var scaling in format == "fate2" ? [Scaling.None] : new[] { Scaling.None, Scaling.Standard, Scaling.MinMax })
                    d.Add(format, kind, scaling);
        return d;
    }

    /// <summary>Import (guest and host) → convert → predict local equals FATE's own arithmetic on FATE's parameters.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void ImportConvertPredictLocalEqualsFateReference(string format, string kind, Scaling scaling)
    {
        var ovr = kind == "one-vs-rest";
        var outputs = ovr ? Classes.Length : 1;
        var guest = Party("g", 3, outputs, Rows, guest: true, seed: 11);
        var host = Party("h", 4, outputs, Rows, guest: false, seed: 23);
        var dir = TempDir();
        var models = Directory.CreateDirectory(Path.Combine(dir, "models")).FullName;

        string Write(FateParty p, bool isGuest)
        {
            var name = Path.Combine(dir, (isGuest ? "guest" : "host") + (format == "binary" ? ".pb" : ".json"));
            if (format == "fate2")
            {
                File.WriteAllText(name, Fate2(p, isGuest, kind != "linear", ovr ? Classes : null));
                return name;
            }
            IMessage m = kind switch
            {
                "logistic" => Lr(p),
                "linear" => LinR(p),
                // A FATE host numbers the classes 0..n-1; the guest names them.
                _ => OneVsRest(p, isGuest ? Classes : ["0", "1", "2"]),
            };
            if (format == "binary") File.WriteAllBytes(name, m.ToByteArray());
            // FATE prints lowerCamelCase by default; snake_case (preserving_proto_field_name) is accepted too.
            else File.WriteAllText(name, (isGuest ? CamelJson : SnakeJson).Format(m));
            return name;
        }

        foreach (var (p, isGuest) in new[] { (guest, true), (host, false) })
        {
            var args = new List<string>
            {
                "model", "import", "--from", "fate", "--in", Write(p, isGuest), "--kind", kind == "linear" ? "linear" : "logistic",
                "--role", isGuest ? "guest" : "host", "--party", isGuest ? "bank" : "shop", "--parties", "bank,shop",
                "--model-id", "fate_m", "--missing", "reject", "--out", Path.Combine(models, isGuest ? "bank.json" : "shop.json"),
            };
            if (scaling != Scaling.None)
            {
                var scalePath = Path.Combine(dir, (isGuest ? "guest" : "host") + "-scale" + (format == "binary" ? ".pb" : ".json"));
                var s = Scale(p, scaling == Scaling.MinMax);
                if (format == "binary") File.WriteAllBytes(scalePath, s.ToByteArray()); else File.WriteAllText(scalePath, CamelJson.Format(s));
                args.AddRange(["--scale", scalePath, "--scale-clip", "assume-in-range"]);
            }
            if (format == "fate2") args.AddRange(["--header", string.Join(',', p.Header)]);
            if (ovr && !isGuest) args.AddRange(["--classes", string.Join(',', Classes)]);
            var (code, _, err) = RunFed([.. args]);
            Assert.True(code == 0, err);
        }

        var imported = ModelFile.Read(Path.Combine(models, "bank.json"));
        Assert.Equal(ovr ? ModelKind.OneVsRest : kind == "linear" ? ModelKind.Linear : ModelKind.Logistic, imported.Kind);
        Assert.Equal(ovr ? Classes : [], imported.Classes);
        Assert.Equal(format == "binary" ? "fate1-protobuf" : format == "json" ? "fate1-json" : "fate2-json", imported.Training["imported_from"]);

        // The imported files go through fed convert unchanged, and read back bit for bit.
        var db = "sqlite:" + Path.Combine(dir, "w.db");
        var conv = RunFed("convert", "--model", Path.Combine(models, "bank.json"), "--model", Path.Combine(models, "shop.json"), "--warehouse", db);
        Assert.True(conv.Code == 0, conv.Err);
        using (var w = WarehouseFactory.Open(db))
            Assert.True(new ModelRegistry(w).Load("fate_m", "bank", 1).BitEquals(ScoringModel.From(imported)));

        var outPath = Path.Combine(dir, "pred.csv");
        var pred = RunFed("predict", "local", "--models", models, "--party", "bank=" + Csv(dir, "g.csv", guest), "--party", "shop=" + Csv(dir, "h.csv", host), "--out", outPath);
        Assert.True(pred.Code == 0, pred.Err);
        var lines = File.ReadAllLines(outPath);
        Assert.Equal(Rows + 1, lines.Length);
        for (var r = 0; r < Rows; r++)
        {
            var cells = lines.Single(l => l.StartsWith(Id(r) + ",", StringComparison.Ordinal)).Split(',');
            var (_, values, best) = Reference(guest, host, r, scaling, logistic: kind != "linear");
            if (ovr)
            {
                Assert.Equal(Classes[best], cells[1]);
                for (var c = 0; c < Classes.Length; c++)
                    Assert.True(Math.Abs(double.Parse(cells[2 + c], CultureInfo.InvariantCulture) - values[c]) <= 1e-12, $"row {r} class {c}: {cells[2 + c]} vs {values[c]:R}");
            }
            else
            {
                var v = double.Parse(cells[1], CultureInfo.InvariantCulture);
                Assert.True(Math.Abs(v - values[0]) <= 1e-12 * Math.Max(1, Math.Abs(values[0])), $"row {r}: {v:R} vs {values[0]:R}");
            }
        }
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void MissingDefaultsAreRecordedPerFeature()
    {
        var dir = TempDir();
        var g = Party("g", 3, 1, 5, guest: true, seed: 3);
        File.WriteAllBytes(Path.Combine(dir, "g.pb"), Lr(g).ToByteArray());
        File.WriteAllText(Path.Combine(dir, "fill.json"), "{\"g_x0\": 0.5, \"g_x1\": -2, \"g_x2\": 7.25}");
        var (code, _, err) = RunFed("model", "import", "--from", "fate", "--in", Path.Combine(dir, "g.pb"), "--kind", "logistic", "--role", "guest",
            "--party", "bank", "--parties", "bank,shop", "--model-id", "m", "--missing", "default:" + Path.Combine(dir, "fill.json"), "--out", Path.Combine(dir, "m.json"));
        Assert.True(code == 0, err);
        var m = ModelFile.Read(Path.Combine(dir, "m.json"));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(dir, "m.json")));
        Assert.Equal(MissingPolicyKind.Default, m.Missing.Kind);
        Assert.Equal([0.5, -2, 7.25], m.Missing.Defaults!);
        Assert.Equal("default:fill.json", m.Training["fate_missing"]);
        Assert.Equal(g.Weights[0], m.Weights[0]);
        Assert.Equal(g.Intercepts[0], m.Intercepts[0]);
    }

    /// <summary>FATE's min-max rule: range = upper - lower, replaced by 1 below 1e-6 (a constant column is only shifted).</summary>
    [Fact]
    public void MinMaxScaleOfAConstantColumnUsesFatesRangeOfOne()
    {
        var dir = TempDir();
        var g = Party("g", 2, 1, 6, guest: true, seed: 4);
        foreach (var row in g.Rows) row[1] = 3.5;
        File.WriteAllBytes(Path.Combine(dir, "g.pb"), Lr(g).ToByteArray());
        File.WriteAllBytes(Path.Combine(dir, "s.pb"), Scale(g, minMax: true).ToByteArray());
        var (code, _, err) = RunFed("model", "import", "--from", "fate", "--in", Path.Combine(dir, "g.pb"), "--kind", "logistic", "--role", "guest",
            "--party", "bank", "--parties", "bank,shop", "--model-id", "m", "--missing", "reject", "--scale", Path.Combine(dir, "s.pb"),
            "--scale-clip", "assume-in-range", "--out", Path.Combine(dir, "m.json"));
        Assert.True(code == 0, err);
        var m = ModelFile.Read(Path.Combine(dir, "m.json"));
        Assert.Equal(TransformKind.Standardize, m.Transform.Kind);
        Assert.Equal([g.Lower[0], 3.5], m.Transform.Mean!);
        Assert.Equal([g.Upper[0] - g.Lower[0], 1.0], m.Transform.Std!);
        Assert.Equal("min-max", m.Training["fate_scale"]);
        Assert.Equal("assume-in-range", m.Training["fate_scale_clip"]);
    }

    /// <summary>A Fed model written out in FATE's format (weights by header, intercept, its standardization as a
    /// FeatureScale) and imported back holds the same numbers and scores the same bits.</summary>
    [Fact]
    public void FedModelWrittenAsFateAndImportedBackScoresIdentically()
    {
        var root = RepoRoot();
        var dir = TempDir();
        var orig = Directory.CreateDirectory(Path.Combine(dir, "orig")).FullName;
        var back = Directory.CreateDirectory(Path.Combine(dir, "back")).FullName;
        var parts = new[] { "guest", "host" }.Select(p => ModelFile.Read(Path.Combine(root, "samples", "breast_cancer", p + ".json"))).ToArray();
        foreach (var m in parts)
        {
            File.Copy(Path.Combine(root, "samples", "breast_cancer", m.PartyId + ".json"), Path.Combine(orig, m.PartyId + ".json"));
            var fate = ToFate(m);
            File.WriteAllBytes(Path.Combine(dir, m.PartyId + ".pb"), fate.Param.ToByteArray());
            File.WriteAllBytes(Path.Combine(dir, m.PartyId + "-scale.pb"), fate.Scale!.ToByteArray());
            var (code, _, err) = RunFed("model", "import", "--from", "fate", "--in", Path.Combine(dir, m.PartyId + ".pb"), "--kind", "logistic",
                "--role", PartialModel.RoleName(m.Role), "--party", m.PartyId, "--parties", string.Join(',', m.Parties), "--model-id", m.ModelId,
                "--version", m.Version.ToString(CultureInfo.InvariantCulture), "--missing", "reject",
                "--scale", Path.Combine(dir, m.PartyId + "-scale.pb"), "--scale-clip", "assume-in-range", "--out", Path.Combine(back, m.PartyId + ".json"));
            Assert.True(code == 0, err);
            var imported = ModelFile.Read(Path.Combine(back, m.PartyId + ".json"));
            Assert.Equal(m.Features, imported.Features);
            Assert.True(ScoringModel.From(m).Weights.Zip(ScoringModel.From(imported).Weights).All(p => p.First.SequenceEqual(p.Second)));
            Assert.Equal(ScoringModel.From(m).Constants, ScoringModel.From(imported).Constants);
        }
        var csv = new[] { "guest", "host" }.SelectMany(p => new[] { "--party", $"{p}={Path.Combine(root, "samples", "breast_cancer", p + ".csv")}" }).ToArray();
        Assert.Equal(0, RunFed(["predict", "local", "--models", orig, .. csv, "--out", Path.Combine(dir, "a.csv")]).Code);
        Assert.Equal(0, RunFed(["predict", "local", "--models", back, .. csv, "--out", Path.Combine(dir, "b.csv")]).Code);
        var a = File.ReadAllText(Path.Combine(dir, "a.csv"));
        Assert.True(a.Split('\n').Length > 500);
        Assert.Equal(a, File.ReadAllText(Path.Combine(dir, "b.csv")));
    }

    /// <summary>The test helper that writes a Fed partial model in FATE 1.x's format.</summary>
    static (LRModelParam Param, ScaleParam? Scale) ToFate(PartialModel m)
    {
        var p = new LRModelParam { Intercept = m.Role == PartyRole.Guest ? m.Intercepts[0] : 0 };
        p.Header.AddRange(m.Features);
        for (var f = 0; f < m.Features.Length; f++) p.Weight[m.Features[f]] = m.Weights[0][f];
        if (m.Transform.Kind != TransformKind.Standardize) return (p, null);
        var s = new ScaleParam();
        s.Header.AddRange(m.Features);
        for (var f = 0; f < m.Features.Length; f++)
            s.ColScaleParam[m.Features[f]] = new ColumnScaleParam
            {
                Mean = m.Transform.Mean![f], Std = m.Transform.Std![f], ColumnLower = double.MinValue, ColumnUpper = double.MaxValue,
            };
        return (p, s);
    }

    public static TheoryData<string, string> Refusals => new()
    {
        // case, text the message must hold
        { "encrypted weights", "encrypted_weight" },
        { "weight not in header", "weight[\"g_ghost\"]" },
        { "binning transform", "a binning/WOE or any other transform cannot be folded" },
        { "truncated protobuf", "truncated" },
        { "FATE 2 unsupported component", "meta.max_depth': not a coordinated_lr field: a FATE 2 model of another component" },
        { "NaN weight", "not a finite number" },
        { "duplicate header", "duplicate feature 'g_x1'" },
        { "empty header name", "empty feature name" },
        { "host with intercept", "a host holds no intercept" },
        { "scale clip not acknowledged", "clips" },
        { "unknown protobuf field", "unknown field number 99" },
        { "unknown JSON field", "Unknown field" },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public void RefusalExitsTwoNamesTheProblemAndWritesNothing(string name, string expected)
    {
        var dir = TempDir();
        var g = Party("g", 3, 1, 5, guest: true, seed: 5);
        var input = Path.Combine(dir, "in.pb");
        var role = "guest";
        var extra = new List<string>();
        var lr = Lr(g);
        switch (name)
        {
            case "encrypted weights":
                lr.EncryptedWeight["g_x0"] = new CipherText { CipherText_ = "1234567", Exponent = "0", PublicKey = new CipherPublicKey { N = "97" } };
                File.WriteAllBytes(input, lr.ToByteArray());
                break;
            case "weight not in header":
                lr.Weight["g_ghost"] = 0.25;
                File.WriteAllBytes(input, lr.ToByteArray());
                break;
            case "binning transform":
            {
                // A FeatureBinningParam-shaped message (binning_result: map<string, IVParam{woe_array = 1, ...}>) given as the transform.
                File.WriteAllBytes(input, lr.ToByteArray());
                var iv = new byte[] { 0x0a, 0x08 }.Concat(BitConverter.GetBytes(0.37)).ToArray();
                var entry = new byte[] { 0x0a, 0x04 }.Concat("g_x0"u8.ToArray()).Concat(new byte[] { 0x12, (byte)iv.Length }).Concat(iv).ToArray();
                var binning = new byte[] { 0x0a, (byte)entry.Length }.Concat(entry).ToArray();
                File.WriteAllBytes(Path.Combine(dir, "binning.pb"), binning);
                extra.AddRange(["--scale", Path.Combine(dir, "binning.pb"), "--scale-clip", "assume-in-range"]);
                break;
            }
            case "truncated protobuf":
                var bytes = lr.ToByteArray();
                File.WriteAllBytes(input, bytes[..(bytes.Length / 2)]);
                break;
            case "FATE 2 unsupported component":
                input = Path.Combine(dir, "in.json");
                File.WriteAllText(input, "{\"data\": {\"trees\": [{\"nodes\": []}]}, \"meta\": {\"num_trees\": 3, \"max_depth\": 5, \"objective\": \"binary:bce\"}}");
                extra.AddRange(["--header", "g_x0,g_x1,g_x2"]);
                break;
            case "NaN weight":
                lr.Weight["g_x1"] = double.NaN;
                File.WriteAllBytes(input, lr.ToByteArray());
                break;
            case "duplicate header":
                lr.Header[2] = "g_x1";
                File.WriteAllBytes(input, lr.ToByteArray());
                break;
            case "empty header name":
                lr.Header[0] = "";
                File.WriteAllBytes(input, lr.ToByteArray());
                break;
            case "host with intercept":
                role = "host";
                lr.Intercept = 0.5;
                File.WriteAllBytes(input, lr.ToByteArray());
                break;
            case "scale clip not acknowledged":
                File.WriteAllBytes(input, lr.ToByteArray());
                File.WriteAllBytes(Path.Combine(dir, "scale.pb"), Scale(g, minMax: false).ToByteArray());
                extra.AddRange(["--scale", Path.Combine(dir, "scale.pb")]);
                break;
            case "unknown protobuf field":
                // Field 99, varint: something a newer FATE might add, which Fed cannot know the meaning of.
                File.WriteAllBytes(input, [.. lr.ToByteArray(), 0x98, 0x06, 0x01]);
                break;
            case "unknown JSON field":
                input = Path.Combine(dir, "in.json");
                File.WriteAllText(input, CamelJson.Format(lr).TrimEnd('}', ' ') + ", \"woeTransform\": {\"g_x0\": 1.0}}");
                break;
        }
        var outPath = Path.Combine(dir, "out.json");
        var (code, stdout, err) = RunFed(["model", "import", "--from", "fate", "--in", input, "--kind", "logistic", "--role", role, "--party", role == "guest" ? "bank" : "shop",
            "--parties", "bank,shop", "--model-id", "m", "--missing", "reject", "--out", outPath, .. extra]);
        Assert.True(code == 2, $"{name}: exit {code}: {err}");
        Assert.Contains(expected, err);
        Assert.DoesNotContain("   at ", err);
        Assert.Equal("", stdout);
        Assert.False(File.Exists(outPath));
        Assert.Empty(Directory.EnumerateFiles(dir, "out.json*"));
    }

    [Theory]
    [InlineData("model_id")]
    [InlineData("kind")]
    public void PartiesThatDisagreeOnModelIdOrKindAreRefusedWhenConvertedTogether(string what)
    {
        var dir = TempDir();
        var g = Party("g", 2, 1, 5, guest: true, seed: 1);
        var h = Party("h", 2, 1, 5, guest: false, seed: 2);
        File.WriteAllBytes(Path.Combine(dir, "g.pb"), Lr(g).ToByteArray());
        File.WriteAllBytes(Path.Combine(dir, "h.pb"), (what == "kind" ? (IMessage)LinR(h) : Lr(h)).ToByteArray());
        var models = Directory.CreateDirectory(Path.Combine(dir, "models")).FullName;
        Assert.Equal(0, RunFed("model", "import", "--from", "fate", "--in", Path.Combine(dir, "g.pb"), "--kind", "logistic", "--role", "guest", "--party", "bank",
            "--parties", "bank,shop", "--model-id", "m", "--missing", "reject", "--out", Path.Combine(models, "bank.json")).Code);
        Assert.Equal(0, RunFed("model", "import", "--from", "fate", "--in", Path.Combine(dir, "h.pb"), "--kind", what == "kind" ? "linear" : "logistic", "--role", "host",
            "--party", "shop", "--parties", "bank,shop", "--model-id", what == "model_id" ? "m_typo" : "m", "--missing", "reject", "--out", Path.Combine(models, "shop.json")).Code);
        var db = Path.Combine(dir, "w.db");
        var (code, _, err) = RunFed("convert", "--model", Path.Combine(models, "bank.json"), "--model", Path.Combine(models, "shop.json"), "--warehouse", "sqlite:" + db);
        Assert.True(code == 2, err);
        Assert.Contains(what == "kind" ? "disagree on the kind" : "must agree on its id", err);
        // Nothing was exported: the registry lists no model.
        var list = RunFed("model", "list", "--warehouse", "sqlite:" + db, "--json");
        Assert.Equal(0, list.Code);
        Assert.Contains("\"models\":[]", list.Out); // --json: one single-line document
        var pred = RunFed("predict", "local", "--models", models, "--party", "bank=" + Csv(dir, "g.csv", g), "--party", "shop=" + Csv(dir, "h.csv", h), "--out", Path.Combine(dir, "p.csv"));
        Assert.Equal(2, pred.Code);
        Assert.False(File.Exists(Path.Combine(dir, "p.csv")));
    }

    static (int Code, string Err, string Out, FateParty Guest) ImportFlowOutput(string module)
    {
        var dir = TempDir();
        var g = Party("g", 3, 1, 5, guest: true, seed: 9);
        File.WriteAllText(Path.Combine(dir, "flow.json"),
            $"{{\"retcode\": 0, \"retmsg\": \"success\", \"data\": {SnakeJson.Format(Lr(g))}, \"meta\": {{\"module_name\": \"{module}\"}}}}");
        var outPath = Path.Combine(dir, "m.json");
        var (code, _, err) = RunFed("model", "import", "--from", "fate", "--in", Path.Combine(dir, "flow.json"), "--kind", "logistic", "--role", "guest",
            "--party", "bank", "--parties", "bank,shop", "--model-id", "m", "--missing", "reject", "--out", outPath);
        return (code, err, outPath, g);
    }

    [Fact]
    public void FateFlowOutputWrapperIsRead()
    {
        var (code, err, outPath, g) = ImportFlowOutput("HeteroLR");
        Assert.True(code == 0, err);
        Assert.Equal(g.Weights[0], ModelFile.Read(outPath).Weights[0]);
    }

    [Fact]
    public void FateFlowOutputOfAnotherModuleIsRefused()
    {
        var (code, err, outPath, _) = ImportFlowOutput("HeteroSecureBoost");
        Assert.True(code == 2, err);
        Assert.Contains("meta.module_name", err);
        Assert.False(File.Exists(outPath));
    }

    static string RepoRoot()
    {
        var d = AppContext.BaseDirectory;
        while (d != null && !File.Exists(Path.Combine(d, "Fed.sln"))) d = Path.GetDirectoryName(d);
        return d ?? throw new InvalidOperationException("Fed.sln not found");
    }
}
