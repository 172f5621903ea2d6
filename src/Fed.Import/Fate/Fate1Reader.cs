using System.Globalization;
using System.Text.Json;
using Fed.Core;
using Fed.Import.Fate.Proto;
using Google.Protobuf;
using Google.Protobuf.Collections;
using Google.Protobuf.Reflection;

namespace Fed.Import.Fate;

/// <summary>
/// FATE 1.x hetero LR / LinR model parameters (<c>LRModelParam</c>, <c>LinRModelParam</c>), as protobuf binary or as
/// proto3 JSON (field names snake_case or lowerCamelCase, bare or inside FATE Flow's <c>{"data": ..., "meta": ...}</c>).
/// Unknown fields are refused, encrypted weights are refused, every weight must belong to the header and every header
/// feature must have a weight.
/// </summary>
static class Fate1Reader
{
    static readonly JsonParser Json = new(JsonParser.Settings.Default.WithIgnoreUnknownFields(false));

    public static FateModel ReadLogistic(byte[] bytes, bool isJson, bool isHost, string source)
    {
        var p = isJson
            ? ParseJson(bytes, LRModelParam.Parser, LRModelParam.Descriptor, source, "HeteroLR")
            : FateWire.ParseStrict(bytes, LRModelParam.Parser, LRModelParam.Descriptor, source);
        var format = isJson ? "fate1-json" : "fate1-protobuf";
        var ovr = p.OneVsRestResult is { } o && (o.CompletedModels.Count > 0 || o.OneVsRestClasses.Count > 0);
        if (!ovr)
        {
            if (p.NeedOneVsRest) throw new ModelFormatException(source, "LRModelParam.need_one_vs_rest", "is true but one_vs_rest_result holds no models");
            var part = Part(source, "LRModelParam", p.Weight, p.EncryptedWeight, p.Cipher, p.Intercept, p.Header, isHost);
            return new FateModel
            {
                Format = format, Component = "HeteroLR", Header = part.Header, Weights = [part.Weights], Intercepts = [part.Intercept],
                Facts = Facts(p.Iters, p.IsConverged, p.BestIteration),
            };
        }

        // One-vs-rest: one binary model per class, all over the same header.
        if (p.Weight.Count > 0 || p.EncryptedWeight.Count > 0)
            throw new ModelFormatException(source, "LRModelParam.weight", "a one-vs-rest model carries its weights in one_vs_rest_result; top-level weights as well are ambiguous");
        var r = p.OneVsRestResult!;
        if (r.CompletedModels.Count < 2)
            throw new ModelFormatException(source, "LRModelParam.one_vs_rest_result.completed_models", $"{r.CompletedModels.Count} model(s): one-vs-rest needs one per class, at least 2");
        if (r.OneVsRestClasses.Count != r.CompletedModels.Count)
            throw new ModelFormatException(source, "LRModelParam.one_vs_rest_result.one_vs_rest_classes",
                $"{r.OneVsRestClasses.Count} class(es) for {r.CompletedModels.Count} model(s)");
        string[]? header = null;
        var weights = new double[r.CompletedModels.Count][];
        var intercepts = new double[r.CompletedModels.Count];
        for (var c = 0; c < r.CompletedModels.Count; c++)
        {
            var m = r.CompletedModels[c];
            var field = $"LRModelParam.one_vs_rest_result.completed_models[{c}]";
            var part = Part(source, field, m.Weight, m.EncryptedWeight, m.Cipher, m.Intercept, m.Header, isHost);
            if (header is null) header = part.Header;
            else if (!header.SequenceEqual(part.Header, StringComparer.Ordinal))
                throw new ModelFormatException(source, field + ".header", "differs from completed_models[0].header; Fed holds one feature list per party");
            weights[c] = part.Weights;
            intercepts[c] = part.Intercept;
        }
        if (p.Header.Count > 0 && !p.Header.SequenceEqual(header!, StringComparer.Ordinal))
            throw new ModelFormatException(source, "LRModelParam.header", "differs from the one-vs-rest models' header");
        return new FateModel
        {
            Format = format, Component = "HeteroLR", Header = header!, Weights = weights, Intercepts = intercepts,
            Classes = [.. r.OneVsRestClasses], Facts = Facts(p.Iters, p.IsConverged, p.BestIteration),
        };
    }

    public static FateModel ReadLinear(byte[] bytes, bool isJson, bool isHost, string source)
    {
        var p = isJson
            ? ParseJson(bytes, LinRModelParam.Parser, LinRModelParam.Descriptor, source, "HeteroLinR")
            : FateWire.ParseStrict(bytes, LinRModelParam.Parser, LinRModelParam.Descriptor, source);
        var part = Part(source, "LinRModelParam", p.Weight, p.EncryptedWeight, p.Cipher, p.Intercept, p.Header, isHost);
        return new FateModel
        {
            Format = isJson ? "fate1-json" : "fate1-protobuf", Component = "HeteroLinR", Header = part.Header,
            Weights = [part.Weights], Intercepts = [part.Intercept], Facts = Facts(p.Iters, p.IsConverged, p.BestIteration),
        };
    }

    /// <summary>A FeatureScale parameter (<c>ScaleParam</c>), binary or JSON.</summary>
    public static ScaleParam ReadScale(byte[] bytes, string source) =>
        FateInput.IsJson(bytes)
            ? ParseJson(bytes, ScaleParam.Parser, ScaleParam.Descriptor, source, "FeatureScale")
            : FateWire.ParseStrict(bytes, ScaleParam.Parser, ScaleParam.Descriptor, source);

    static SortedDictionary<string, string> Facts(int iters, bool converged, int best) => new(StringComparer.Ordinal)
    {
        ["fate_iters"] = iters.ToString(CultureInfo.InvariantCulture),
        ["fate_is_converged"] = converged ? "true" : "false",
        ["fate_best_iteration"] = best.ToString(CultureInfo.InvariantCulture),
    };

    sealed record PartWeights(string[] Header, double[] Weights, double Intercept);

    static PartWeights Part(string source, string field, MapField<string, double> weight, MapField<string, CipherText> encrypted,
        Cipher? cipher, double intercept, RepeatedField<string> headerField, bool isHost)
    {
        if (encrypted.Count > 0)
            throw new ModelFormatException(source, field + ".encrypted_weight",
                $"{encrypted.Count} encrypted weight(s): Fed scores plaintext weights only; export the model with plaintext weights from FATE");
        if (cipher is not null)
            throw new ModelFormatException(source, field + ".cipher", "the model carries a cipher (encrypted parameters); Fed scores plaintext weights only");
        var header = FateInput.CheckHeader([.. headerField], source, field + ".header");
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < header.Length; i++) index[header[i]] = i;
        var w = new double[header.Length];
        var seen = new bool[header.Length];
        // Sorted, so that the first offending key named is the same on every run.
        foreach (var (key, value) in weight.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (!index.TryGetValue(key, out var i))
                throw new ModelFormatException(source, $"{field}.weight[\"{key}\"]", $"weight for '{key}', which is not in the header");
            FateInput.Finite(value, source, $"{field}.weight[\"{key}\"]");
            w[i] = value;
            seen[i] = true;
        }
        for (var i = 0; i < header.Length; i++)
            if (!seen[i]) throw new ModelFormatException(source, $"{field}.weight", $"header feature '{header[i]}' has no weight (Fed never assumes 0)");
        FateInput.Finite(intercept, source, field + ".intercept");
        if (isHost && intercept != 0)
            throw new ModelFormatException(source, field + ".intercept", $"a host holds no intercept, this file has {intercept.ToString("R", CultureInfo.InvariantCulture)}: is it the guest's file?");
        return new PartWeights(header, w, intercept);
    }

    static T ParseJson<T>(byte[] bytes, MessageParser<T> parser, MessageDescriptor d, string source, string module) where T : IMessage<T>, new()
    {
        string text;
        using (var doc = FateInput.ParseJson(bytes, source))
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new ModelFormatException(source, "(root)", "expected a JSON object");
            // FATE Flow prints {"data": <param>, "meta": {...}, "retcode": 0, "retmsg": ...}; a bare param is also accepted.
            if (root.TryGetProperty("data", out var data) && d.FindFieldByName("data") is null)
            {
                foreach (var p in root.EnumerateObject())
                    if (p.Name is not ("data" or "meta" or "retcode" or "retmsg"))
                        throw new ModelFormatException(source, p.Name, "unknown field beside FATE Flow's data/meta");
                if (root.TryGetProperty("meta", out var meta) && meta.ValueKind == JsonValueKind.Object
                    && meta.TryGetProperty("module_name", out var mn) && mn.ValueKind == JsonValueKind.String && mn.GetString() != module)
                    throw new ModelFormatException(source, "meta.module_name", $"'{mn.GetString()}': expected {module}");
                text = data.GetRawText();
            }
            else text = root.GetRawText();
        }
        try { return Json.Parse<T>(text); }
        catch (InvalidProtocolBufferException e) { throw new ModelFormatException(source, d.Name, $"not a {d.Name} in proto3 JSON: {e.Message}"); }
        catch (InvalidJsonException e) { throw new ModelFormatException(source, d.Name, $"not a {d.Name} in proto3 JSON: {e.Message}"); }
    }
}
