using System.Globalization;
using System.Text.Json;

namespace Fed.Streaming;

/// <summary>
/// The one parser of feature events (<see cref="FeatureEvent"/> for the schema): a forward-only
/// <see cref="Utf8JsonReader"/> pass into buffers reused from message to message, so a party allocates no DOM,
/// no dictionary and no string per feature. One instance per worker thread. The whole message is read before any
/// field is checked, so an invalid JSON text is reported as such, and field errors come in schema order.
/// </summary>
public sealed class FeatureEventReader
{
    static readonly JsonReaderOptions Options = new() { MaxDepth = 8 };
    readonly IdStrings _models = new();
    char[] _names = new char[1024];
    int[] _start = new int[64], _length = new int[64], _hash = new int[64];
    double[] _values = new double[64];
    string? _eventId, _sampleId, _eventTime;
    string[] _modelIds = [];
    string? _idError, _sampleError, _modelsError, _featuresError, _timeError;
    int _nameChars;

    public string EventId => _eventId!;
    public string SampleId => _sampleId!;
    public string EventTime => _eventTime!;
    /// <summary>Shared between messages with the same model ids: read it, do not change it.</summary>
    public string[] ModelIds => _modelIds;
    public int FeatureCount { get; private set; }
    public ReadOnlySpan<char> FeatureName(int i) => _names.AsSpan(_start[i], _length[i]);
    /// <summary>NaN for null (missing).</summary>
    public double FeatureValue(int i) => _values[i];

    /// <summary>Reads one event; throws <see cref="MalformedMessageException"/> (reason "malformed") naming the field.</summary>
    public void Read(ReadOnlySpan<byte> utf8)
    {
        _eventId = _sampleId = _eventTime = null;
        _idError = _sampleError = "expected a string";
        _modelsError = "model_ids: expected a non-empty array of model ids";
        _featuresError = "features: expected an object of name: number|null";
        _timeError = "event_time: expected an ISO 8601 time string";
        FeatureCount = 0;
        _nameChars = 0;
        var r = new Utf8JsonReader(utf8, Options);
        try
        {
            if (!r.Read() || r.TokenType != JsonTokenType.StartObject) { SkipAll(ref r); throw Malformed("expected a JSON object"); }
            while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
            {
                if (r.ValueTextEquals("event_id"u8)) { r.Read(); _eventId = IdValue(ref r, out _idError); }
                else if (r.ValueTextEquals("sample_id"u8)) { r.Read(); _sampleId = IdValue(ref r, out _sampleError); }
                else if (r.ValueTextEquals("model_ids"u8)) { r.Read(); ReadModels(ref r); }
                else if (r.ValueTextEquals("features"u8)) { r.Read(); ReadFeatures(ref r); }
                else if (r.ValueTextEquals("event_time"u8)) { r.Read(); ReadTime(ref r); }
                else { r.Read(); r.Skip(); }
            }
            SkipAll(ref r); // trailing content after the object is invalid JSON
        }
        catch (JsonException e) { throw Malformed(NotJson(e)); }
        catch (InvalidOperationException) { throw Malformed("not valid UTF-8 text"); }
        if (_eventId is null) throw Malformed($"event_id: {_idError}");
        if (_sampleId is null) throw Malformed($"sample_id: {_sampleError}");
        if (_modelsError is not null) throw Malformed(_modelsError);
        if (_featuresError is not null) throw Malformed(_featuresError);
        if (_timeError is not null) throw Malformed(_timeError);
    }

    static MalformedMessageException Malformed(string message) => new("malformed", message);

    /// <summary>Where the JSON breaks, without the parser's text, which quotes the message's bytes (dead letters carry
    /// the error and must not carry feature values).</summary>
    internal static string NotJson(JsonException e) => $"not valid JSON (line {e.LineNumber ?? 0}, byte {e.BytePositionInLine ?? 0})";

    static void SkipAll(ref Utf8JsonReader r)
    {
        while (r.Read()) { }
    }

    /// <summary>An id string (1-256 printable characters), or null with the error.</summary>
    internal static string? IdValue(ref Utf8JsonReader r, out string? error)
    {
        if (r.TokenType != JsonTokenType.String) { r.Skip(); error = "expected a string"; return null; }
        var s = r.GetString()!;
        error = CheckId(s);
        return error is null ? s : null;
    }

    internal static string? CheckId(string s)
    {
        if (s.Length == 0 || s.Length > FeatureEvent.MaxIdLength) return $"must be 1-{FeatureEvent.MaxIdLength} printable characters";
        foreach (var c in s) if (char.IsControl(c)) return $"must be 1-{FeatureEvent.MaxIdLength} printable characters";
        return null;
    }

    void ReadModels(ref Utf8JsonReader r)
    {
        _modelsError = "model_ids: expected a non-empty array of model ids";
        if (r.TokenType != JsonTokenType.StartArray) { r.Skip(); return; }
        var first = true;
        var i = 0;
        string? error = null;
        while (r.Read() && r.TokenType != JsonTokenType.EndArray)
        {
            if (error is null)
            {
                if (r.TokenType != JsonTokenType.String) error = $"model_ids[{i}]: expected a string";
                else
                {
                    try { _models.Add(ref r, first); }
                    catch (Fed.Core.BadInputException e) { error = $"model_ids[{i}]: {e.Message}"; }
                }
                first = false;
            }
            r.Skip();
            i++;
        }
        if (error is null && i > 0) _modelIds = _models.Take();
        _modelsError = i == 0 ? "model_ids: expected a non-empty array of model ids" : error;
    }

    void ReadFeatures(ref Utf8JsonReader r)
    {
        _featuresError = "features: expected an object of name: number|null";
        FeatureCount = 0;
        _nameChars = 0;
        if (r.TokenType != JsonTokenType.StartObject) { r.Skip(); return; }
        string? error = null;
        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            var n = FeatureCount;
            if (n == _values.Length) Grow();
            if (_nameChars + r.ValueSpan.Length > _names.Length) Array.Resize(ref _names, Math.Max(_names.Length * 2, _nameChars + r.ValueSpan.Length));
            var len = r.CopyString(_names.AsSpan(_nameChars));
            var name = _names.AsSpan(_nameChars, len);
            r.Read();
            if (error is not null) { r.Skip(); continue; }
            double v;
            if (r.TokenType == JsonTokenType.Null) v = double.NaN;
            else if (r.TokenType == JsonTokenType.Number && r.TryGetDouble(out v) && double.IsFinite(v)) { }
            else
            {
                error = $"features.{FeatureEvent.Short(name.ToString())}: expected a finite number or null, got {Kind(r.TokenType)}";
                r.Skip();
                continue;
            }
            var hash = string.GetHashCode(name, StringComparison.Ordinal);
            for (var j = 0; j < n; j++)
                if (_hash[j] == hash && FeatureName(j).SequenceEqual(name)) { error = $"features.{FeatureEvent.Short(name.ToString())}: given twice"; break; }
            _start[n] = _nameChars;
            _length[n] = len;
            _hash[n] = hash;
            _values[n] = v;
            _nameChars += len;
            FeatureCount = n + 1;
        }
        _featuresError = error;
    }

    void Grow()
    {
        var n = _values.Length * 2;
        Array.Resize(ref _start, n);
        Array.Resize(ref _length, n);
        Array.Resize(ref _hash, n);
        Array.Resize(ref _values, n);
    }

    void ReadTime(ref Utf8JsonReader r)
    {
        _eventTime = null;
        _timeError = "event_time: expected an ISO 8601 time string";
        if (r.TokenType != JsonTokenType.String) { r.Skip(); return; }
        var s = r.GetString()!;
        if (!DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out _)) return;
        _eventTime = s;
        _timeError = null;
    }

    /// <summary>The JsonValueKind name of a value token, as in error messages.</summary>
    internal static string Kind(JsonTokenType t) => t switch
    {
        JsonTokenType.StartObject => nameof(JsonValueKind.Object),
        JsonTokenType.StartArray => nameof(JsonValueKind.Array),
        JsonTokenType.String => nameof(JsonValueKind.String),
        JsonTokenType.Number => nameof(JsonValueKind.Number),
        JsonTokenType.True => nameof(JsonValueKind.True),
        JsonTokenType.False => nameof(JsonValueKind.False),
        _ => nameof(JsonValueKind.Null),
    };
}

/// <summary>
/// The one parser of partial-score messages (<see cref="PartialScoreMessage"/> for the schema), with
/// <see cref="Utf8JsonReader"/>; model ids, parties and checksums repeat from message to message and are not
/// allocated again. Same checks, in the same order, as the schema describes.
/// </summary>
public sealed class PartialScoreReader
{
    static readonly JsonReaderOptions Options = new() { MaxDepth = 4 };
    readonly IdStrings _strings = new();

    public PartialScoreMessage Read(ReadOnlySpan<byte> utf8)
    {
        string? requestId = null, modelId = null, party = null, sampleId = null, eventTime = null, checksum = null;
        string? requestError = "expected a string", modelError = "expected a string", partyError = "expected a string", sampleError = "expected a string";
        int? version = null;
        double[]? scores = null;
        string? scoresError = "scores: expected a non-empty array of numbers", scoresReason = "malformed";
        var r = new Utf8JsonReader(utf8, Options);
        try
        {
            if (!r.Read() || r.TokenType != JsonTokenType.StartObject) { while (r.Read()) { } throw new MalformedMessageException("malformed", "expected a JSON object"); }
            while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
            {
                if (r.ValueTextEquals("request_id"u8)) { r.Read(); requestId = FeatureEventReader.IdValue(ref r, out requestError); }
                else if (r.ValueTextEquals("model_id"u8)) { r.Read(); modelId = CachedId(ref r, out modelError); }
                else if (r.ValueTextEquals("party"u8)) { r.Read(); party = CachedId(ref r, out partyError); }
                else if (r.ValueTextEquals("sample_id"u8)) { r.Read(); sampleId = FeatureEventReader.IdValue(ref r, out sampleError); }
                else if (r.ValueTextEquals("version"u8))
                {
                    r.Read();
                    version = r.TokenType == JsonTokenType.Number && r.TryGetInt32(out var v) && v >= 1 ? v : null;
                    r.Skip();
                }
                else if (r.ValueTextEquals("scores"u8)) { r.Read(); scores = ReadScores(ref r, out scoresReason, out scoresError); }
                else if (r.ValueTextEquals("event_time"u8)) { r.Read(); eventTime = r.TokenType == JsonTokenType.String ? r.GetString() : null; r.Skip(); }
                else if (r.ValueTextEquals("checksum"u8))
                {
                    r.Read();
                    checksum = r.TokenType == JsonTokenType.String ? _strings.Get(ref r) : null;
                    r.Skip();
                }
                else { r.Read(); r.Skip(); }
            }
            while (r.Read()) { } // trailing content after the object is invalid JSON
        }
        catch (JsonException e) { throw new MalformedMessageException("malformed", FeatureEventReader.NotJson(e)); }
        catch (InvalidOperationException) { throw new MalformedMessageException("malformed", "not valid UTF-8 text"); }
        if (requestId is null) throw new MalformedMessageException("malformed", $"request_id: {requestError}");
        if (modelId is null) throw new MalformedMessageException("malformed", $"model_id: {modelError}");
        if (party is null) throw new MalformedMessageException("malformed", $"party: {partyError}");
        if (sampleId is null) throw new MalformedMessageException("malformed", $"sample_id: {sampleError}");
        if (version is null) throw new MalformedMessageException("malformed", "version: expected an integer >= 1");
        if (scores is null) throw new MalformedMessageException(scoresReason!, scoresError!);
        return new PartialScoreMessage
        {
            RequestId = requestId, ModelId = modelId, Version = version.Value, Party = party, SampleId = sampleId,
            Scores = scores, EventTime = eventTime ?? "", Checksum = checksum,
        };
    }

    string? CachedId(ref Utf8JsonReader r, out string? error)
    {
        if (r.TokenType != JsonTokenType.String) { r.Skip(); error = "expected a string"; return null; }
        var s = _strings.Get(ref r);
        error = FeatureEventReader.CheckId(s);
        return error is null ? s : null;
    }

    double[] _scores = new double[16];

    double[]? ReadScores(ref Utf8JsonReader r, out string? reason, out string? error)
    {
        reason = "malformed";
        error = "scores: expected a non-empty array of numbers";
        if (r.TokenType != JsonTokenType.StartArray) { r.Skip(); return null; }
        var n = 0;
        string? bad = null;
        while (r.Read() && r.TokenType != JsonTokenType.EndArray)
        {
            if (bad is null)
            {
                if (r.TokenType == JsonTokenType.Number && r.TryGetDouble(out var v) && double.IsFinite(v))
                {
                    if (n == _scores.Length) Array.Resize(ref _scores, n * 2);
                    _scores[n] = v;
                }
                else bad = $"scores[{n}]: expected a finite number";
            }
            r.Skip();
            n++;
        }
        if (n == 0) return null;
        if (bad is not null) { reason = "bad_partial"; error = bad; return null; }
        return _scores.AsSpan(0, n).ToArray();
    }
}

/// <summary>
/// Strings that repeat from message to message (model ids, parties, checksums): the current string token is matched
/// against the few already seen, so it is not allocated again. Bounded: beyond 64 distinct values it just allocates.
/// </summary>
sealed class IdStrings
{
    const int Max = 64;
    readonly List<string> _known = new();
    readonly List<string> _pending = new();
    readonly HashSet<string> _valid = new(StringComparer.Ordinal);
    string[] _last = [];

    public string Get(ref Utf8JsonReader r)
    {
        foreach (var s in _known) if (r.ValueTextEquals(s)) return s;
        var v = r.GetString()!;
        if (_known.Count < Max) _known.Add(v);
        return v;
    }

    /// <summary>Model ids of one event: <see cref="Add"/> each (validated), then <see cref="Take"/> the array,
    /// which is the previous event's when the ids are the same.</summary>
    public void Add(ref Utf8JsonReader r, bool first)
    {
        if (first) _pending.Clear();
        var s = Get(ref r);
        if (!_valid.Contains(s))
        {
            Fed.Core.Identifiers.ModelId(s);
            if (_valid.Count < Max) _valid.Add(s);
        }
        _pending.Add(s);
    }

    public string[] Take()
    {
        var same = _pending.Count == _last.Length;
        for (var i = 0; same && i < _last.Length; i++) same = ReferenceEquals(_pending[i], _last[i]);
        if (!same) _last = _pending.ToArray();
        return _last;
    }
}
