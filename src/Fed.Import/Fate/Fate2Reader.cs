using System.Globalization;
using System.Text.Json;
using Fed.Core;
using Fed.Core.Model;

namespace Fed.Import.Fate;

/// <summary>
/// FATE 2.x JSON model output of coordinated_lr / coordinated_linr (guest or host):
/// <c>{"data": {"estimator": EST | {"0": EST, ...}}, "meta": {...}}</c> with
/// <c>EST = {"param": {"coef_": [[w], ...], "intercept_": [b] | null, "dtype": ...}, "fit_intercept": ..., ...}</c>.
/// The file carries no feature names, so the caller gives the header (training-data column order).
/// Meta keys outside the two components' known set are refused: that is how a model of another component is told apart.
/// </summary>
static class Fate2Reader
{
    static readonly HashSet<string> LrMeta = ["epochs", "batch_size", "learning_rate_param", "init_param", "optimizer_param",
        "labels", "ovr", "threshold", "floating_point_precision", "label_count"];
    static readonly HashSet<string> LinrMeta = ["epochs", "batch_size", "learning_rate_param", "init_param", "optimizer_param",
        "floating_point_precision"];
    static readonly HashSet<string> EstimatorKeys = ["param", "optimizer", "lr_scheduler", "end_epoch", "is_converged", "fit_intercept"];

    /// <summary>A FATE 2 model output is an object of exactly "data" and "meta" whose data holds no FATE 1 param fields.</summary>
    public static bool Looks(byte[] bytes, string source)
    {
        using var doc = FateInput.ParseJson(bytes, source);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object) return false;
        var names = root.EnumerateObject().Select(p => p.Name).ToHashSet();
        if (!names.SetEquals(["data", "meta"])) return false;
        var data = root.GetProperty("data");
        // FATE 1's Flow wrapper also has data+meta, but its data is the param itself (header, weight, ...).
        return !(data.ValueKind == JsonValueKind.Object && (data.TryGetProperty("header", out _) || data.TryGetProperty("weight", out _)));
    }

    public static FateModel Read(byte[] bytes, ModelKind kind, bool isHost, string[]? header, string source)
    {
        using var doc = FateInput.ParseJson(bytes, source);
        var root = doc.RootElement;
        var meta = Obj(root, "meta", source);
        var data = Obj(root, "data", source);
        var isLr = meta.TryGetProperty("ovr", out _) || meta.TryGetProperty("labels", out _) || meta.TryGetProperty("threshold", out _);
        var component = kind == ModelKind.Logistic ? "coordinated_lr" : "coordinated_linr";
        var allowed = kind == ModelKind.Logistic ? LrMeta : LinrMeta;
        foreach (var p in meta.EnumerateObject().OrderBy(p => p.Name, StringComparer.Ordinal))
            if (!allowed.Contains(p.Name))
                throw new ModelFormatException(source, $"meta.{p.Name}",
                    $"not a {component} field: a FATE 2 model of another component (Fed imports coordinated_lr and coordinated_linr only)");
        if (kind == ModelKind.Linear && isLr) throw new ModelFormatException(source, "meta", "a coordinated_lr model: import it with --kind logistic");
        if (kind == ModelKind.Logistic && !isLr) throw new ModelFormatException(source, "meta", "no ovr/labels: a coordinated_linr model? import it with --kind linear");
        foreach (var p in data.EnumerateObject())
            if (p.Name != "estimator") throw new ModelFormatException(source, $"data.{p.Name}", $"not a {component} field");
        var est = Obj(data, "estimator", source, "data.estimator");
        if (header is null) throw new BadInputException($"{source} is a FATE 2.x model, which names no features: give --header with the party's feature names in training-data column order");
        header = FateInput.CheckHeader(header, "--header", "--header");

        var ovr = meta.TryGetProperty("ovr", out var o) && o.ValueKind == JsonValueKind.True;
        var facts = new SortedDictionary<string, string>(StringComparer.Ordinal);
        if (meta.TryGetProperty("threshold", out var th) && th.ValueKind == JsonValueKind.Number) facts["fate_threshold"] = th.GetRawText();
        if (!ovr)
        {
            var (w, b) = Estimator(est, "data.estimator", header.Length, isHost, source, facts);
            return new FateModel { Format = "fate2-json", Component = component, Header = header, Weights = [w], Intercepts = [b], Facts = facts };
        }

        // One-vs-rest: estimators keyed by class index "0".."n-1"; the guest's meta.labels[i] names class i.
        var count = est.EnumerateObject().Count();
        if (count < 2) throw new ModelFormatException(source, "data.estimator", $"{count} one-vs-rest estimator(s): need one per class, at least 2");
        var weights = new double[count][];
        var intercepts = new double[count];
        for (var c = 0; c < count; c++)
        {
            var key = c.ToString(CultureInfo.InvariantCulture);
            if (!est.TryGetProperty(key, out var e)) throw new ModelFormatException(source, $"data.estimator[\"{key}\"]", $"missing: one-vs-rest estimators are keyed 0..{count - 1}");
            (weights[c], intercepts[c]) = Estimator(e, $"data.estimator[\"{key}\"]", header.Length, isHost, source, facts);
        }
        string[] classes;
        if (isHost)
        {
            if (meta.TryGetProperty("label_count", out var lc) && (!lc.TryGetInt32(out var n) || n != count))
                throw new ModelFormatException(source, "meta.label_count", $"{lc.GetRawText()}, but data.estimator holds {count} models");
            classes = Enumerable.Range(0, count).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToArray();
        }
        else
        {
            if (!meta.TryGetProperty("labels", out var labels) || labels.ValueKind != JsonValueKind.Array || labels.GetArrayLength() != count)
                throw new ModelFormatException(source, "meta.labels", $"expected one label per estimator ({count})");
            classes = labels.EnumerateArray().Select(l => l.ValueKind == JsonValueKind.String ? l.GetString()! : l.GetRawText()).ToArray();
        }
        return new FateModel
        {
            Format = "fate2-json", Component = component, Header = header, Weights = weights, Intercepts = intercepts,
            Classes = classes, Facts = facts,
        };
    }

    static (double[] W, double B) Estimator(JsonElement e, string field, int features, bool isHost, string source, SortedDictionary<string, string> facts)
    {
        if (e.ValueKind != JsonValueKind.Object) throw new ModelFormatException(source, field, "expected an object");
        foreach (var p in e.EnumerateObject())
            if (!EstimatorKeys.Contains(p.Name))
                throw new ModelFormatException(source, $"{field}.{p.Name}", p.Name is "w" or "intercept"
                    ? "an early FATE 2.0 estimator layout (w/intercept), which recorded the intercept wrongly; retrain or re-export with FATE 2.0 or later"
                    : "unknown estimator field");
        var param = Obj(e, "param", source, field + ".param");
        var coef = Prop(param, "coef_", source, field + ".param.coef_");
        if (coef.ValueKind != JsonValueKind.Array) throw new ModelFormatException(source, field + ".param.coef_", "expected an array");
        var w = new List<double>();
        var i = 0;
        foreach (var item in coef.EnumerateArray())
        {
            // torch's tolist() of the (n, 1) column vector gives [[w1], [w2], ...]; a flat list is accepted too.
            var v = item.ValueKind == JsonValueKind.Array && item.GetArrayLength() == 1 ? item[0] : item;
            w.Add(Number(v, source, $"{field}.param.coef_[{i}]"));
            i++;
        }
        if (w.Count != features)
            throw new ModelFormatException(source, field + ".param.coef_", $"{w.Count} coefficient(s) for the {features} feature(s) of --header");
        var fit = e.TryGetProperty("fit_intercept", out var fi) && fi.ValueKind == JsonValueKind.True;
        var b = 0.0;
        if (param.TryGetProperty("intercept_", out var ic) && ic.ValueKind != JsonValueKind.Null)
        {
            if (isHost) throw new ModelFormatException(source, field + ".param.intercept_", "a host holds no intercept: is it the guest's file?");
            if (!fit) throw new ModelFormatException(source, field + ".param.intercept_", "set although fit_intercept is false");
            var v = ic.ValueKind == JsonValueKind.Array && ic.GetArrayLength() == 1 ? ic[0] : ic;
            b = Number(v, source, field + ".param.intercept_");
        }
        else if (fit) throw new ModelFormatException(source, field + ".param.intercept_", "missing although fit_intercept is true");
        if (param.TryGetProperty("dtype", out var dt) && dt.ValueKind == JsonValueKind.String) facts["fate_dtype"] = dt.GetString()!;
        if (e.TryGetProperty("is_converged", out var conv) && conv.ValueKind is JsonValueKind.True or JsonValueKind.False)
            facts["fate_is_converged"] = conv.ValueKind == JsonValueKind.True ? "true" : "false";
        if (e.TryGetProperty("end_epoch", out var ep) && ep.ValueKind == JsonValueKind.Number) facts["fate_end_epoch"] = ep.GetRawText();
        return ([.. w], b);
    }

    static double Number(JsonElement v, string source, string field)
    {
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out var d) || !double.IsFinite(d))
            throw new ModelFormatException(source, field, $"'{v.GetRawText()}' is not a finite number (NaN and Infinity are refused)");
        return d;
    }

    static JsonElement Prop(JsonElement obj, string name, string source, string field) =>
        obj.TryGetProperty(name, out var el) ? el : throw new ModelFormatException(source, field, "missing");

    static JsonElement Obj(JsonElement obj, string name, string source, string? field = null)
    {
        var el = Prop(obj, name, source, field ?? name);
        return el.ValueKind == JsonValueKind.Object ? el : throw new ModelFormatException(source, field ?? name, "expected an object");
    }
}
