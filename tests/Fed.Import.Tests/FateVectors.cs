using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Fed.Cli;
using Fed.Cli.Commands;
using Fed.Import.Fate.Proto;
using Google.Protobuf;

namespace Fed.Import.Tests;

/// <summary>One party's side of a FATE model as the test knows it: header, per-output weights and intercepts, scaling.</summary>
public sealed record FateParty(string[] Header, double[][] Weights, double[] Intercepts, double[][] Rows)
{
    public double[] Lower => Col(Math.Min);
    public double[] Upper => Col(Math.Max);
    public double[] Mean => Enumerable.Range(0, Header.Length).Select(f => Rows.Average(r => r[f])).ToArray();
    public double[] Std => Enumerable.Range(0, Header.Length).Select(f =>
    {
        var m = Rows.Average(r => r[f]);
        return Math.Sqrt(Rows.Average(r => (r[f] - m) * (r[f] - m)));
    }).ToArray();

    double[] Col(Func<double, double, double> agg) =>
        Enumerable.Range(0, Header.Length).Select(f => Rows.Skip(1).Aggregate(Rows[0][f], (a, r) => agg(a, r[f]))).ToArray();
}

/// <summary>
/// Test vectors made from FATE's message definitions (the compiled .proto files), in FATE's binary and JSON forms,
/// and FATE 2.x coordinated LR/LinR model output; plus the reference score computed directly from FATE's parameters.
/// </summary>
public static class FateVectors
{
    public static readonly JsonFormatter CamelJson = new(JsonFormatter.Settings.Default);
    public static readonly JsonFormatter SnakeJson = new(JsonFormatter.Settings.Default.WithPreserveProtoFieldNames(true));

    public static FateParty Party(string prefix, int features, int outputs, int rows, bool guest, int seed)
    {
        var rnd = new Random(seed);
        double R(double lo, double hi) => lo + (hi - lo) * rnd.NextDouble();
        return new FateParty(
            Enumerable.Range(0, features).Select(i => $"{prefix}_x{i}").ToArray(),
            Enumerable.Range(0, outputs).Select(_ => Enumerable.Range(0, features).Select(_ => R(-1.5, 1.5)).ToArray()).ToArray(),
            Enumerable.Range(0, outputs).Select(_ => guest ? R(-0.8, 0.8) : 0.0).ToArray(),
            Enumerable.Range(0, rows).Select(_ => Enumerable.Range(0, features).Select(f => Math.Round(R(-3, 5) * (f + 1), 4)).ToArray()).ToArray());
    }

    public static LRModelParam Lr(FateParty p)
    {
        var m = new LRModelParam { Intercept = p.Intercepts[0], Iters = 17, IsConverged = true, BestIteration = -1 };
        m.Header.AddRange(p.Header);
        for (var f = 0; f < p.Header.Length; f++) m.Weight[p.Header[f]] = p.Weights[0][f];
        m.LossHistory.AddRange([0.69, 0.5, 0.41]);
        return m;
    }

    public static LinRModelParam LinR(FateParty p)
    {
        var m = new LinRModelParam { Intercept = p.Intercepts[0], Iters = 9 };
        m.Header.AddRange(p.Header);
        for (var f = 0; f < p.Header.Length; f++) m.Weight[p.Header[f]] = p.Weights[0][f];
        return m;
    }

    public static LRModelParam OneVsRest(FateParty p, string[] classes)
    {
        var m = new LRModelParam { NeedOneVsRest = true, OneVsRestResult = new OneVsRestResult() };
        m.Header.AddRange(p.Header);
        for (var c = 0; c < classes.Length; c++)
        {
            var s = new SingleModel { Intercept = p.Intercepts[c], Iters = 5 + c };
            s.Header.AddRange(p.Header);
            for (var f = 0; f < p.Header.Length; f++) s.Weight[p.Header[f]] = p.Weights[c][f];
            m.OneVsRestResult.CompletedModels.Add(s);
        }
        m.OneVsRestResult.OneVsRestClasses.AddRange(classes);
        return m;
    }

    public static ScaleParam Scale(FateParty p, bool minMax)
    {
        var s = new ScaleParam();
        s.Header.AddRange(p.Header);
        var (lo, hi, mean, std) = (p.Lower, p.Upper, p.Mean, p.Std);
        for (var f = 0; f < p.Header.Length; f++)
            s.ColScaleParam[p.Header[f]] = minMax
                ? new ColumnScaleParam { ColumnLower = lo[f], ColumnUpper = hi[f] }
                : new ColumnScaleParam { ColumnLower = lo[f], ColumnUpper = hi[f], Mean = mean[f], Std = std[f] };
        return s;
    }

    /// <summary>FATE 2.x coordinated_lr / coordinated_linr model output for one party (guest or host).</summary>
    public static string Fate2(FateParty p, bool guest, bool logistic, string[]? classes)
    {
        JsonObject Est(int c)
        {
            var coef = new JsonArray(p.Weights[c].Select(w => (JsonNode)new JsonArray(w)).ToArray());
            var param = new JsonObject { ["coef_"] = coef, ["intercept_"] = guest ? new JsonArray(p.Intercepts[c]) : null, ["dtype"] = "float64" };
            var e = new JsonObject
            {
                ["param"] = param, ["optimizer"] = new JsonObject { ["state"] = new JsonObject() }, ["lr_scheduler"] = new JsonObject(),
                ["end_epoch"] = 20, ["is_converged"] = false,
            };
            if (guest) e["fit_intercept"] = true;
            return e;
        }
        var ovr = classes is not null;
        JsonNode estimator = ovr ? new JsonObject(classes!.Select((_, c) => KeyValuePair.Create(c.ToString(CultureInfo.InvariantCulture), (JsonNode?)Est(c)))) : Est(0);
        var meta = new JsonObject
        {
            ["epochs"] = 20, ["batch_size"] = null, ["learning_rate_param"] = new JsonObject { ["method"] = "linear" },
            ["init_param"] = new JsonObject { ["method"] = "zeros", ["fit_intercept"] = guest }, ["optimizer_param"] = new JsonObject { ["method"] = "sgd" },
            ["floating_point_precision"] = 23,
        };
        if (logistic && guest) { meta["labels"] = new JsonArray((classes ?? ["0", "1"]).Select(c => (JsonNode)JsonValue.Create(c)!).ToArray()); meta["ovr"] = ovr; meta["threshold"] = 0.5; }
        if (logistic && !guest) { meta["label_count"] = ovr ? classes!.Length : 2; meta["ovr"] = ovr; }
        return new JsonObject { ["data"] = new JsonObject { ["estimator"] = estimator }, ["meta"] = meta }.ToJsonString();
    }

    public static string Csv(string dir, string name, FateParty p)
    {
        var sb = new StringBuilder("id," + string.Join(',', p.Header) + "\n");
        for (var r = 0; r < p.Rows.Length; r++)
            sb.Append(Id(r)).Append(',').AppendJoin(',', p.Rows[r].Select(v => v.ToString("R", CultureInfo.InvariantCulture))).Append('\n');
        var path = Path.Combine(dir, name);
        File.WriteAllText(path, sb.ToString());
        return path;
    }

    public static string Id(int r) => $"s{r:D4}";

    public enum Scaling { None, Standard, MinMax }

    /// <summary>FATE's own arithmetic: clip, scale, intercept + Σ w·x per party, summed; sigmoid; one-vs-rest: first max.</summary>
    public static (double[] Z, double[] Values, int Predicted) Reference(FateParty guest, FateParty host, int row, Scaling scaling, bool logistic)
    {
        var outputs = guest.Weights.Length;
        var z = new double[outputs];
        for (var c = 0; c < outputs; c++)
        {
            z[c] = guest.Intercepts[c];
            foreach (var p in new[] { guest, host })
            {
                var (lo, hi, mean, std) = (p.Lower, p.Upper, p.Mean, p.Std);
                for (var f = 0; f < p.Header.Length; f++)
                {
                    var x = p.Rows[row][f];
                    if (scaling != Scaling.None) x = Math.Min(Math.Max(x, lo[f]), hi[f]);
                    if (scaling == Scaling.Standard) x = (x - mean[f]) / std[f];
                    if (scaling == Scaling.MinMax) { var range = hi[f] - lo[f]; x = (x - lo[f]) / (Math.Abs(range) < 1e-6 ? 1 : range); }
                    z[c] += p.Weights[c][f] * x;
                }
            }
        }
        var values = logistic ? z.Select(v => 1 / (1 + Math.Exp(-v))).ToArray() : z;
        var best = 0;
        for (var c = 1; c < values.Length; c++) if (values[c] > values[best]) best = c;
        return (z, values, best);
    }

    static readonly IReadOnlyList<CliCommand> Commands = [.. ModelCommands.All, .. ConvertCommands.All, .. PredictCommands.All];

    public static (int Code, string Out, string Err) RunFed(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        var code = CliApp.Run(args, Commands, o, e);
        return (code, o.ToString(), e.ToString());
    }

    public static string TempDir()
    {
        var d = Path.Combine(Path.GetTempPath(), "fed-fate-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(d);
        return d;
    }
}
