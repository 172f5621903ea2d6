using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Fed.Core.Model;

/// <summary>
/// Reads and writes the partial-model file (JSON, schema version 1). Reading validates everything and
/// rejects a bad file with a <see cref="ModelFormatException"/> naming the file and the field; writing is
/// atomic (temp file, then rename), so a failed write never leaves a partial model behind.
/// The checksum is SHA-256 over the canonical (compact) serialization of every field but the checksum.
/// </summary>
public static class ModelFile
{
    public static PartialModel Read(string path)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"{path}: cannot read model file: {e.Message}", e);
        }
        return Parse(text, path);
    }

    public static PartialModel Parse(string json, string source = "<model>") => Parse(json, source, requireChecksum: true);

    /// <summary>
    /// Reads a file written by another framework's exporter without a checksum yet ("checksum" absent or ""),
    /// validates it with the same rules and returns it stamped. A present, wrong checksum is still refused.
    /// </summary>
    public static PartialModel ParseUnstamped(string json, string source = "<model>") => Stamp(Parse(json, source, requireChecksum: false));

    static PartialModel Parse(string json, string source, bool requireChecksum)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = false, MaxDepth = 16, AllowDuplicateProperties = false }); }
        catch (JsonException e) when (System.Text.RegularExpressions.Regex.Match(e.Message, "^Duplicate property '([^']*)'") is { Success: true } dup)
        {
            // Last-one-wins would silently pick a value: a key given twice is refused.
            throw new ModelFormatException(source, dup.Groups[1].Value, "the key is given twice in one object; keep exactly one", e);
        }
        catch (JsonException e)
        {
            throw new ModelFormatException(source, e.LineNumber is { } line ? $"(json, line {line + 1})" : "(json)", $"not valid JSON: {ErrorText.Cut(e.Message)}", e);
        }
        using (doc)
        {
            var noChecksum = doc.RootElement.ValueKind == JsonValueKind.Object && (!doc.RootElement.TryGetProperty("checksum", out var cs) || cs.ValueKind == JsonValueKind.String && cs.GetString() == "");
            if (requireChecksum && noChecksum)
                throw new ModelFormatException(source, "checksum", "missing: a file from another exporter is validated and stamped with 'fed model stamp --in FILE --out STAMPED.json'");
            var unstamped = !requireChecksum && noChecksum;
            var model = new Reader(source) { SkipChecksum = unstamped }.ReadModel(doc.RootElement);
            Scoring.ScoringModel.From(model, source); // the scoring space must be finite too
            if (unstamped) return model;
            var expected = ComputeChecksum(model);
            if (!string.Equals(model.Checksum, expected, StringComparison.Ordinal))
                throw new ModelFormatException(source, "checksum",
                    $"mismatch: file says {model.Checksum}, content hashes to {expected}; the file was altered or truncated");
            return model;
        }
    }

    /// <summary>Validates, stamps the checksum and writes the file atomically. Returns the stamped model.</summary>
    public static PartialModel Write(PartialModel model, string path)
    {
        var stamped = Stamp(model);
        // Weights are a party's secret: mode 0600 from the first byte.
        Security.SecretFiles.Write(path, Serialize(stamped, indented: true));
        return stamped;
    }

    /// <summary>Validates the model and returns a copy carrying its checksum.</summary>
    public static PartialModel Stamp(PartialModel model)
    {
        Validate(model, "<model " + model.ModelId + ">");
        return CopyWithChecksum(model, ComputeChecksum(model));
    }

    public static string Serialize(PartialModel model, bool indented)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = indented }))
            WriteBody(w, model, includeChecksum: true);
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    public static string ComputeChecksum(PartialModel model)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
            WriteBody(w, model, includeChecksum: false);
        return "sha256:" + Convert.ToHexStringLower(SHA256.HashData(ms.ToArray()));
    }

    /// <summary>Checks a model built in code with the same rules a file is read with.</summary>
    public static void Validate(PartialModel m, string source)
    {
        // Round trip through the reader's rules so that there is one set of them.
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            try { WriteBody(w, m, includeChecksum: false); }
            catch (ArgumentException e) { throw new ModelFormatException(source, "weights", "not a finite number: " + e.Message, e); }
        }
        using var doc = JsonDocument.Parse(ms.ToArray());
        Scoring.ScoringModel.From(new Reader(source) { SkipChecksum = true }.ReadModel(doc.RootElement), source);
    }

    static PartialModel CopyWithChecksum(PartialModel m, string checksum) => new()
    {
        ModelId = m.ModelId, Version = m.Version, Kind = m.Kind, Classes = m.Classes, PartyId = m.PartyId, Role = m.Role,
        Parties = m.Parties, Features = m.Features, Weights = m.Weights, Intercepts = m.Intercepts,
        Transform = m.Transform, Missing = m.Missing, Training = m.Training, Checksum = checksum,
    };

    static void WriteBody(Utf8JsonWriter w, PartialModel m, bool includeChecksum)
    {
        w.WriteStartObject();
        w.WriteNumber("schema_version", PartialModel.CurrentSchemaVersion);
        w.WriteString("model_id", m.ModelId);
        w.WriteNumber("version", m.Version);
        w.WriteString("kind", PartialModel.KindName(m.Kind));
        WriteStrings(w, "classes", m.Classes);
        w.WriteStartObject("party");
        w.WriteString("id", m.PartyId);
        w.WriteString("role", PartialModel.RoleName(m.Role));
        w.WriteEndObject();
        WriteStrings(w, "parties", m.Parties);
        WriteStrings(w, "features", m.Features);
        w.WriteStartArray("weights");
        foreach (var row in m.Weights) WriteNumbers(w, null, row);
        w.WriteEndArray();
        WriteNumbers(w, "intercepts", m.Intercepts);
        w.WriteStartObject("transform");
        w.WriteString("kind", m.Transform.Kind == TransformKind.None ? "none" : "standardize");
        if (m.Transform.Mean is not null) WriteNumbers(w, "mean", m.Transform.Mean);
        if (m.Transform.Std is not null) WriteNumbers(w, "std", m.Transform.Std);
        w.WriteEndObject();
        w.WriteStartObject("missing");
        w.WriteString("policy", m.Missing.Kind == MissingPolicyKind.Reject ? "reject" : "default");
        if (m.Missing.Defaults is not null) WriteNumbers(w, "defaults", m.Missing.Defaults);
        w.WriteEndObject();
        w.WriteStartObject("training");
        foreach (var (k, v) in m.Training) w.WriteString(k, v);
        w.WriteEndObject();
        if (includeChecksum) w.WriteString("checksum", m.Checksum);
        w.WriteEndObject();
    }

    static void WriteStrings(Utf8JsonWriter w, string name, string[] values)
    {
        w.WriteStartArray(name);
        foreach (var v in values) w.WriteStringValue(v);
        w.WriteEndArray();
    }

    static void WriteNumbers(Utf8JsonWriter w, string? name, double[] values)
    {
        if (name is null) w.WriteStartArray(); else w.WriteStartArray(name);
        // Utf8JsonWriter writes the shortest round-trippable form, so doubles survive the file bit for bit.
        foreach (var v in values) w.WriteNumberValue(v);
        w.WriteEndArray();
    }

    /// <summary>Field-by-field reader; every error names the JSON path of the field.</summary>
    sealed class Reader(string source)
    {
        public bool SkipChecksum { get; init; }

        ModelFormatException Error(string field, string problem) => new(source, field, problem);

        public PartialModel ReadModel(JsonElement root)
        {
            if (root.ValueKind != JsonValueKind.Object) throw Error("(root)", "expected a JSON object");
            var schema = Int(root, "schema_version");
            if (schema != PartialModel.CurrentSchemaVersion)
                throw Error("schema_version", $"unknown schema version {schema}; this Fed reads version {PartialModel.CurrentSchemaVersion}: upgrade Fed or re-export the model");

            var modelId = Str(root, "model_id");
            try { Identifiers.ModelId(modelId); } catch (BadInputException e) { throw Error("model_id", e.Message); }
            var version = Int(root, "version");
            if (version < 1) throw Error("version", $"must be >= 1, got {version}");
            var kindText = Str(root, "kind");
            if (!PartialModel.TryParseKind(kindText, out var kind))
                throw Error("kind", $"unknown kind '{kindText}'; expected logistic, linear, softmax or one-vs-rest");

            var classes = Strings(root, "classes", optional: true);
            if (PartialModel.HasClasses(kind))
            {
                if (classes.Length < 2) throw Error("classes", $"a {kindText} model needs at least 2 class labels");
                Unique(classes, "classes");
            }
            else if (classes.Length != 0) throw Error("classes", $"only softmax and one-vs-rest models carry class labels, this one is {kindText}");

            var party = Obj(root, "party");
            var partyId = Str(party, "id", "party.id");
            try { Identifiers.PartyId(partyId); } catch (BadInputException e) { throw Error("party.id", e.Message); }
            var roleText = Str(party, "role", "party.role");
            var role = roleText switch
            {
                "guest" => PartyRole.Guest,
                "host" => PartyRole.Host,
                _ => throw Error("party.role", $"unknown role '{roleText}'; expected guest or host"),
            };

            var parties = Strings(root, "parties");
            if (parties.Length == 0) throw Error("parties", "must list every party of the model, guest first");
            Unique(parties, "parties");
            for (var i = 0; i < parties.Length; i++)
                try { Identifiers.PartyId(parties[i]); } catch (BadInputException e) { throw Error($"parties[{i}]", e.Message); }
            var at = Array.IndexOf(parties, partyId);
            if (at < 0) throw Error("parties", $"does not list this file's party '{partyId}'");
            if (role == PartyRole.Guest && at != 0) throw Error("parties", $"the guest '{partyId}' must be listed first");
            if (role == PartyRole.Host && at == 0) throw Error("parties", $"the first party is the guest, but '{partyId}' is a host");

            var features = Strings(root, "features");
            Unique(features, "features");
            var columns = new Dictionary<string, string>(StringComparer.Ordinal);
            for (var i = 0; i < features.Length; i++)
            {
                try { Identifiers.FeatureName(features[i]); } catch (BadInputException e) { throw Error($"features[{i}]", e.Message); }
                var col = Identifiers.ColumnFor(features[i]);
                if (!columns.TryAdd(col, features[i]))
                    throw Error($"features[{i}]", $"'{features[i]}' and '{columns[col]}' map to the same warehouse column '{col}'; rename one");
            }
            if (role == PartyRole.Host && features.Length == 0) throw Error("features", "a host must hold at least one feature");

            var outputs = PartialModel.HasClasses(kind) ? classes.Length : 1;
            var weightsEl = Arr(root, "weights");
            if (weightsEl.GetArrayLength() != outputs)
                throw Error("weights", $"expected {outputs} row(s) (one per output), got {weightsEl.GetArrayLength()}");
            var weights = new double[outputs][];
            var c = 0;
            foreach (var row in weightsEl.EnumerateArray())
            {
                weights[c] = Numbers(row, $"weights[{c}]");
                if (weights[c].Length != features.Length)
                    throw Error($"weights[{c}]", $"length {weights[c].Length} does not match the {features.Length} features");
                c++;
            }

            var intercepts = Numbers(Prop(root, "intercepts"), "intercepts");
            if (role == PartyRole.Guest && intercepts.Length != outputs)
                throw Error("intercepts", $"the guest holds one intercept per output: expected {outputs}, got {intercepts.Length}");
            if (role == PartyRole.Host && intercepts.Length != 0)
                throw Error("intercepts", "only the guest holds intercepts; a host file must have an empty list");

            var tr = Obj(root, "transform");
            var trKind = Str(tr, "kind", "transform.kind");
            FeatureTransform transform;
            if (trKind == "none")
            {
                if (tr.TryGetProperty("mean", out _) || tr.TryGetProperty("std", out _))
                    throw Error("transform", "kind 'none' takes no mean/std");
                transform = FeatureTransform.Identity;
            }
            else if (trKind == "standardize")
            {
                var mean = Numbers(Prop(tr, "mean", "transform.mean"), "transform.mean");
                var std = Numbers(Prop(tr, "std", "transform.std"), "transform.std");
                if (mean.Length != features.Length) throw Error("transform.mean", $"length {mean.Length} does not match the {features.Length} features");
                if (std.Length != features.Length) throw Error("transform.std", $"length {std.Length} does not match the {features.Length} features");
                for (var i = 0; i < std.Length; i++)
                    if (!(std[i] > 0)) throw Error($"transform.std[{i}]", $"must be > 0, got {std[i].ToString("R", CultureInfo.InvariantCulture)}");
                transform = new FeatureTransform(TransformKind.Standardize, mean, std);
            }
            else throw Error("transform.kind", $"unknown transform '{trKind}'; expected none or standardize");

            var ms = Obj(root, "missing");
            var policy = Str(ms, "policy", "missing.policy");
            MissingPolicy missing;
            if (policy == "reject")
            {
                if (ms.TryGetProperty("defaults", out _)) throw Error("missing.defaults", "policy 'reject' takes no defaults");
                missing = MissingPolicy.RejectRow;
            }
            else if (policy == "default")
            {
                var defaults = Numbers(Prop(ms, "defaults", "missing.defaults"), "missing.defaults");
                if (defaults.Length != features.Length)
                    throw Error("missing.defaults", $"length {defaults.Length} does not match the {features.Length} features");
                missing = new MissingPolicy(MissingPolicyKind.Default, defaults);
            }
            else throw Error("missing.policy", $"unknown policy '{policy}'; expected reject or default");

            var training = new SortedDictionary<string, string>(StringComparer.Ordinal);
            if (root.TryGetProperty("training", out var trn))
            {
                if (trn.ValueKind != JsonValueKind.Object) throw Error("training", "expected an object of strings");
                foreach (var p in trn.EnumerateObject())
                {
                    if (p.Value.ValueKind != JsonValueKind.String) throw Error($"training.{p.Name}", "expected a string");
                    training[p.Name] = p.Value.GetString()!;
                }
            }

            string? checksum = null;
            if (!SkipChecksum)
            {
                checksum = Str(root, "checksum");
                if (!checksum.StartsWith("sha256:", StringComparison.Ordinal)) throw Error("checksum", $"expected 'sha256:<hex>', got '{checksum}'");
            }

            var known = new HashSet<string> { "schema_version", "model_id", "version", "kind", "classes", "party", "parties",
                "features", "weights", "intercepts", "transform", "missing", "training", "checksum" };
            foreach (var p in root.EnumerateObject())
                if (!known.Contains(p.Name)) throw Error(p.Name, "unknown field (a newer schema, or a typo)");

            return new PartialModel
            {
                ModelId = modelId, Version = version, Kind = kind, Classes = classes, PartyId = partyId, Role = role,
                Parties = parties, Features = features, Weights = weights, Intercepts = intercepts, Transform = transform,
                Missing = missing, Training = training, Checksum = checksum,
            };
        }

        JsonElement Prop(JsonElement obj, string name, string? field = null)
        {
            if (!obj.TryGetProperty(name, out var el)) throw Error(field ?? name, "missing");
            return el;
        }

        JsonElement Obj(JsonElement obj, string name)
        {
            var el = Prop(obj, name);
            if (el.ValueKind != JsonValueKind.Object) throw Error(name, "expected an object");
            return el;
        }

        JsonElement Arr(JsonElement obj, string name)
        {
            var el = Prop(obj, name);
            if (el.ValueKind != JsonValueKind.Array) throw Error(name, "expected an array");
            return el;
        }

        string Str(JsonElement obj, string name, string? field = null)
        {
            var el = Prop(obj, name, field);
            if (el.ValueKind != JsonValueKind.String) throw Error(field ?? name, "expected a string");
            return el.GetString()!;
        }

        int Int(JsonElement obj, string name)
        {
            var el = Prop(obj, name);
            if (el.ValueKind != JsonValueKind.Number || !el.TryGetInt32(out var v)) throw Error(name, "expected an integer");
            return v;
        }

        string[] Strings(JsonElement obj, string name, bool optional = false)
        {
            if (!obj.TryGetProperty(name, out var el))
                return optional ? [] : throw Error(name, "missing");
            if (el.ValueKind != JsonValueKind.Array) throw Error(name, "expected an array of strings");
            var list = new string[el.GetArrayLength()];
            var i = 0;
            foreach (var item in el.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.String) throw Error($"{name}[{i}]", "expected a string");
                list[i++] = item.GetString()!;
            }
            return list;
        }

        double[] Numbers(JsonElement el, string field)
        {
            if (el.ValueKind != JsonValueKind.Array) throw Error(field, "expected an array of numbers");
            var list = new double[el.GetArrayLength()];
            var i = 0;
            foreach (var item in el.EnumerateArray())
            {
                if (item.ValueKind == JsonValueKind.String)
                    throw Error($"{field}[{i}]", $"'{item.GetString()}' is not a finite number (NaN and Infinity are refused)");
                if (item.ValueKind != JsonValueKind.Number || !item.TryGetDouble(out var v) || !double.IsFinite(v))
                    throw Error($"{field}[{i}]", $"'{item.GetRawText()}' is not a finite number (NaN and Infinity are refused)");
                list[i++] = v;
            }
            return list;
        }

        void Unique(string[] values, string field)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            for (var i = 0; i < values.Length; i++)
                if (!seen.Add(values[i])) throw Error($"{field}[{i}]", $"duplicate '{values[i]}'");
        }
    }
}
