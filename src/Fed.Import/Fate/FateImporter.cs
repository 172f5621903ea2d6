using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Fed.Core;
using Fed.Core.Model;
using Fed.Import.Fate.Proto;

namespace Fed.Import.Fate;

/// <summary>What to do about FeatureScale's clipping (FATE clips a value to [column_lower, column_upper] before scaling).</summary>
public enum ScaleClip
{
    /// <summary>Refuse a --scale import: a linear part cannot clip, so values outside the training range would score differently.</summary>
    Refuse,
    /// <summary>Fold the scaling; the caller states that scored values lie inside the training range (recorded in the model).</summary>
    AssumeInRange,
}

/// <summary>One party's FATE model file and what Fed needs to know that the file does not say.</summary>
public sealed record FateImportRequest
{
    public required string InputPath { get; init; }
    /// <summary>Logistic (HeteroLR / coordinated_lr, one-vs-rest if the file is) or linear (HeteroLinR / coordinated_linr).</summary>
    public required ModelKind Kind { get; init; }
    public required PartyRole Role { get; init; }
    public required string PartyId { get; init; }
    /// <summary>Every party, guest first.</summary>
    public required string[] Parties { get; init; }
    public required string ModelId { get; init; }
    public int Version { get; init; } = 1;
    /// <summary>FATE 2.x only: the party's feature names in training-data column order (the model file has none).</summary>
    public string[]? Header { get; init; }
    /// <summary>One-vs-rest on a host: the guest's class labels (a host's file numbers the classes 0..n-1).</summary>
    public string[]? Classes { get; init; }
    /// <summary>A FATE FeatureScale parameter file (ScaleParam, binary or JSON) to fold in.</summary>
    public string? ScalePath { get; init; }
    public ScaleClip ScaleClip { get; init; } = ScaleClip.Refuse;
    /// <summary>"reject" or "default:FILE" (FILE: a JSON object, feature name → raw default value).</summary>
    public string Missing { get; init; } = "reject";
}

/// <summary>
/// Turns one party's FATE hetero LR/LinR model into a validated, stamped Fed partial model.
/// Covered: FATE 1.x HeteroLR (binary and one-vs-rest) and HeteroLinR parameters (LRModelParam / LinRModelParam,
/// protobuf or proto3 JSON) with an optional FeatureScale (ScaleParam), and FATE 2.x coordinated_lr / coordinated_linr
/// JSON model output. Everything Fed cannot represent exactly is refused, naming FATE's field.
/// </summary>
public static class FateImporter
{
    public static PartialModel Import(FateImportRequest r)
    {
        if (r.Kind is not (ModelKind.Logistic or ModelKind.Linear))
            throw new BadInputException($"--kind {PartialModel.KindName(r.Kind)}: a FATE LR/LinR import is logistic (one-vs-rest if the file is) or linear");
        var source = r.InputPath;
        var bytes = ReadBytes(source, "--in");
        var isHost = r.Role == PartyRole.Host;
        var json = FateInput.IsJson(bytes);
        FateModel fm;
        if (json && Fate2Reader.Looks(bytes, source))
            fm = Fate2Reader.Read(bytes, r.Kind, isHost, r.Header, source);
        else
        {
            if (r.Header is not null)
                throw new BadInputException("--header is for FATE 2.x files only; a FATE 1.x parameter names its own features in 'header'");
            fm = r.Kind == ModelKind.Logistic ? Fate1Reader.ReadLogistic(bytes, json, isHost, source) : Fate1Reader.ReadLinear(bytes, json, isHost, source);
        }

        var classes = fm.Classes;
        if (fm.OneVsRest && r.Classes is { } given)
        {
            if (given.Length != classes.Length)
                throw new BadInputException($"--classes names {given.Length} class(es); {source} holds {classes.Length} one-vs-rest models");
            classes = given;
        }
        else if (!fm.OneVsRest && r.Classes is not null)
            throw new BadInputException($"--classes is for one-vs-rest models; {source} is a single {fm.Component} model");

        var training = new SortedDictionary<string, string>(fm.Facts, StringComparer.Ordinal)
        {
            ["algorithm"] = $"fate-{fm.Component}" + (fm.OneVsRest ? "-one-vs-rest" : ""),
            ["imported_from"] = fm.Format,
            ["imported_file"] = Path.GetFileName(source),
            ["imported_sha256"] = Convert.ToHexStringLower(SHA256.HashData(bytes)),
        };
        var transform = r.ScalePath is null ? FeatureTransform.Identity : Scale(r, fm.Header, training);
        var missing = Missing(r.Missing, fm.Header, training);

        var model = new PartialModel
        {
            ModelId = r.ModelId, Version = r.Version,
            Kind = fm.OneVsRest ? ModelKind.OneVsRest : r.Kind, Classes = classes,
            PartyId = r.PartyId, Role = r.Role, Parties = r.Parties,
            Features = fm.Header, Weights = fm.Weights, Intercepts = isHost ? [] : fm.Intercepts,
            Transform = transform, Missing = missing, Training = training,
        };
        // The same rules as every Fed model file (identifiers, party order, lengths, finiteness).
        return ModelFile.Stamp(model);
    }

    /// <summary>
    /// FeatureScale as Fed's own standardization: standard scaling is (x - mean) / std; min-max is
    /// (x - lower) / range with FATE's range = upper - lower, or 1 when |range| &lt; 1e-6. Both fold into raw-space weights.
    /// The parameter does not name its method: min-max leaves mean and std unset (0), standard scaling never has std 0.
    /// </summary>
    static FeatureTransform Scale(FateImportRequest r, string[] header, SortedDictionary<string, string> training)
    {
        var path = r.ScalePath!;
        var bytes = ReadBytes(path, "--scale");
        ScaleParam p;
        try { p = Fate1Reader.ReadScale(bytes, path); }
        catch (ModelFormatException e)
        {
            throw new ModelFormatException(path, e.Field, e.Problem +
                " (--scale takes a FeatureScale ScaleParam; a binning/WOE or any other transform cannot be folded into a linear part and is refused)", e);
        }
        if (p.ColScaleParam.Count == 0) throw new ModelFormatException(path, "ScaleParam.col_scale_param", "empty: nothing to scale");
        var known = new HashSet<string>(header, StringComparer.Ordinal);
        var minMax = p.ColScaleParam.Values.All(c => c.Std == 0 && c.Mean == 0);
        var mean = new double[header.Length];
        var std = new double[header.Length];
        var scaled = 0;
        for (var i = 0; i < header.Length; i++)
        {
            if (!p.ColScaleParam.TryGetValue(header[i], out var c)) { mean[i] = 0; std[i] = 1; continue; }
            var field = $"ScaleParam.col_scale_param[\"{header[i]}\"]";
            foreach (var (name, v) in new[] { ("column_upper", c.ColumnUpper), ("column_lower", c.ColumnLower), ("mean", c.Mean), ("std", c.Std) })
                FateInput.Finite(v, path, $"{field}.{name}");
            if (r.ScaleClip == ScaleClip.Refuse)
                throw new ModelFormatException(path, $"{field}.column_upper",
                    $"FATE clips '{header[i]}' to [{F(c.ColumnLower)}, {F(c.ColumnUpper)}] before scaling, which a linear part cannot do; " +
                    "if every value you score lies inside the training range, pass --scale-clip assume-in-range (recorded in the model)");
            if (minMax)
            {
                var range = c.ColumnUpper - c.ColumnLower;
                if (range < 0) throw new ModelFormatException(path, $"{field}.column_upper", $"below column_lower ({F(c.ColumnUpper)} < {F(c.ColumnLower)})");
                mean[i] = c.ColumnLower;
                std[i] = Math.Abs(range) < 1e-6 ? 1 : range;
            }
            else
            {
                if (!(c.Std > 0)) throw new ModelFormatException(path, $"{field}.std", $"must be > 0 for standard scaling, got {F(c.Std)}");
                mean[i] = c.Mean;
                std[i] = c.Std;
            }
            scaled++;
        }
        foreach (var name in p.ColScaleParam.Keys.Order(StringComparer.Ordinal))
            if (!known.Contains(name))
                throw new ModelFormatException(path, $"ScaleParam.col_scale_param[\"{name}\"]", $"scales '{name}', which is not in the model's header: is it the other party's FeatureScale?");
        training["fate_scale"] = minMax ? "min-max" : "standard";
        training["fate_scale_clip"] = "assume-in-range";
        training["fate_scale_file_sha256"] = Convert.ToHexStringLower(SHA256.HashData(bytes));
        training["fate_scaled_features"] = scaled.ToString(CultureInfo.InvariantCulture);
        return new FeatureTransform(TransformKind.Standardize, mean, std);
    }

    static MissingPolicy Missing(string spec, string[] header, SortedDictionary<string, string> training)
    {
        if (spec == "reject")
        {
            training["fate_missing"] = "reject";
            return MissingPolicy.RejectRow;
        }
        if (!spec.StartsWith("default:", StringComparison.Ordinal) || spec.Length == "default:".Length)
            throw new BadInputException($"--missing must be 'reject' or 'default:FILE', got '{spec}'");
        var path = spec["default:".Length..];
        var bytes = ReadBytes(path, "--missing default:");
        using var doc = FateInput.ParseJson(bytes, path);
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
            throw new ModelFormatException(path, "(root)", "expected a JSON object: feature name → raw default value (FATE's missing fill value)");
        var values = new Dictionary<string, double>(StringComparer.Ordinal);
        var known = new HashSet<string>(header, StringComparer.Ordinal);
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            if (!known.Contains(p.Name)) throw new ModelFormatException(path, p.Name, "not a feature of this party's model");
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetDouble(out var v) || !double.IsFinite(v))
                throw new ModelFormatException(path, p.Name, $"'{p.Value.GetRawText()}' is not a finite number");
            if (!values.TryAdd(p.Name, v)) throw new ModelFormatException(path, p.Name, "given twice");
        }
        var defaults = new double[header.Length];
        for (var i = 0; i < header.Length; i++)
            defaults[i] = values.TryGetValue(header[i], out var v) ? v
                : throw new ModelFormatException(path, header[i], "no default for this feature; give one per feature (there is no implicit 0)");
        training["fate_missing"] = "default:" + Path.GetFileName(path);
        return new MissingPolicy(MissingPolicyKind.Default, defaults);
    }

    static byte[] ReadBytes(string path, string option)
    {
        try { return File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"{option} {path}: cannot read: {e.Message}", e);
        }
    }

    static string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
}
