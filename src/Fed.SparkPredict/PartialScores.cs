using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Fed.Core;
using Fed.Core.Scoring;

namespace Fed.SparkPredict;

/// <summary>One party's partial scores for one partition, in memory, columnar: Scores[c][i] belongs to Ids[i].</summary>
public sealed class PartialScoreSet(string party, int outputs)
{
    public string Party { get; } = party;
    public int Outputs { get; } = outputs;
    public List<string> Ids { get; } = [];
    public List<double>[] Scores { get; } = Enumerable.Range(0, outputs).Select(_ => new List<double>()).ToArray();
    public int Count => Ids.Count;

    public void Add(string id, ReadOnlySpan<double> scores)
    {
        Ids.Add(id);
        for (var c = 0; c < Outputs; c++) Scores[c].Add(scores[c]);
    }
}

/// <summary>
/// Partial scores in long form (sample_id, class_index, partial_score; one row per sample and class, any order), as the
/// Parquet and Arrow files hold them, gathered into a set: every row checked, a sample's class seen twice is a duplicate.
/// </summary>
internal sealed class LongFormScores(string path, PartialScoreManifest m)
{
    readonly Dictionary<string, double[]> _at = new(StringComparer.Ordinal);
    readonly List<string> _order = [];

    public void CheckColumns(IEnumerable<string> names)
    {
        var list = names.ToList();
        if (!list.SequenceEqual(["sample_id", "class_index", "partial_score"]))
            throw new BadInputException($"{path}: columns ({string.Join(", ", list)}); expected (sample_id, class_index, partial_score)");
    }

    public void Add(string? id, int cls, double score)
    {
        if (string.IsNullOrEmpty(id)) throw new BadInputException($"{path}: empty sample id");
        if (cls < 0 || cls >= m.Outputs) throw new BadInputException($"{path}: sample '{id}': class_index {cls} out of range 0..{m.Outputs - 1}");
        if (!double.IsFinite(score)) throw new BadInputException($"{path}: non-finite partial score for sample '{id}'");
        if (!_at.TryGetValue(id, out var s)) { _at[id] = s = Enumerable.Repeat(double.NaN, m.Outputs).ToArray(); _order.Add(id); }
        if (!double.IsNaN(s[cls])) throw new BadInputException($"{path}: duplicate sample id '{id}'; a party sends one partial score per sample");
        s[cls] = score;
    }

    public PartialScoreSet ToSet()
    {
        var set = new PartialScoreSet(m.Party, m.Outputs);
        foreach (var id in _order)
        {
            var s = _at[id];
            if (Array.Exists(s, double.IsNaN)) throw new BadInputException($"{path}: sample '{id}' lacks some class scores");
            set.Add(id, s);
        }
        return set;
    }
}

/// <summary>A sample that was not scored: the feature that rejected it (reject policy).</summary>
public sealed record RejectedRow([property: JsonPropertyName("sample_id")] string SampleId, [property: JsonPropertyName("feature")] string Feature);

/// <summary>The manifest that travels with a party's partial-score file (one JSON next to the data file).</summary>
public sealed record PartialScoreManifest
{
    [JsonPropertyName("model_id")] public required string ModelId { get; init; }
    [JsonPropertyName("version")] public required int Version { get; init; }
    [JsonPropertyName("party")] public required string Party { get; init; }
    [JsonPropertyName("dt")] public required string Dt { get; init; }
    [JsonPropertyName("hour")] public string? Hour { get; init; }
    [JsonPropertyName("outputs")] public required int Outputs { get; init; }
    [JsonPropertyName("row_count")] public required long RowCount { get; init; }
    /// <summary>Hex SHA-256 of the data file's bytes.</summary>
    [JsonPropertyName("sha256")] public required string Sha256 { get; init; }
    /// <summary>Data file name, relative to the manifest's directory (.csv, .jsonl, .arrow or .parquet).</summary>
    [JsonPropertyName("data_file")] public required string DataFile { get; init; }
    [JsonPropertyName("model_checksum")] public string? ModelChecksum { get; init; }
    [JsonPropertyName("coverage")] public Dictionary<string, object>? Coverage { get; init; }
    [JsonPropertyName("rejected")] public List<RejectedRow>? Rejected { get; init; }
    [JsonPropertyName("written_at")] public string? WrittenAt { get; init; }

    public const string Suffix = ".manifest.json";
    internal static readonly JsonSerializerOptions Json = new() { WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };
}

/// <summary>Where a party's partial scores go, row by row in input order; <see cref="Complete"/> publishes them with their manifest.</summary>
public interface IPartialScoreWriter : IDisposable
{
    /// <summary>What a user looks at afterwards: the manifest (CSV) or the partition folder (Parquet).</summary>
    string Output { get; }
    void Write(string id, double[][] scores, int r);
    PartialScoreManifest Complete(PartialScoreManifest template);
}

/// <summary>
/// Partial-score files: <c>{model}_v{version}_{party}_{dt}[_hHH].csv</c> (header <c>sample_id,partial_score[_c]...</c>,
/// doubles in round-trip form) plus <c>....manifest.json</c>. Written temp-then-rename, the manifest last, so a manifest
/// always describes a complete data file. Reading checks the checksum, the row count and duplicate ids.
/// </summary>
public static class PartialScoreFiles
{
    public static string BaseName(string modelId, int version, string party, Partition p) => $"{modelId}_v{version}_{party}_{p.FileTag}";

    /// <summary>
    /// Streaming writer for the data file; <see cref="Complete"/> renames it and writes the manifest.
    /// Formats straight to UTF-8 in a reused buffer and hashes each block as it is written (no second read for the checksum).
    /// </summary>
    public sealed class Writer : IPartialScoreWriter
    {
        readonly string _dir, _base, _tmp;
        readonly FileStream _file;
        readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        readonly int _outputs;
        byte[] _buf = new byte[1 << 16];
        int _used;
        long _rows;
        bool _done;

        public Writer(string dir, string modelId, int version, string party, Partition p, int outputs)
        {
            Directory.CreateDirectory(dir);
            _dir = dir;
            _base = BaseName(modelId, version, party, p);
            _tmp = Path.Combine(dir, $".{_base}.csv.tmp-{Environment.ProcessId}");
            _outputs = outputs;
            _file = new FileStream(_tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1);
            var header = new StringBuilder("sample_id");
            for (var c = 0; c < outputs; c++) header.Append(outputs == 1 ? ",partial_score" : $",partial_score_{c}");
            Append(header.Append('\n').ToString());
        }

        public long Rows => _rows;
        public string Output => Path.Combine(_dir, _base + PartialScoreManifest.Suffix);

        public void Write(string id, double[][] scores, int r)
        {
            if (id.AsSpan().IndexOfAny(",\"\n") >= 0) Append('"' + id.Replace("\"", "\"\"") + '"');
            else Append(id);
            Reserve(_outputs * 33 + 1); // ',' + at most 32 bytes of round-trip double per score, then '\n'
            for (var c = 0; c < _outputs; c++)
            {
                _buf[_used++] = (byte)',';
                scores[c][r].TryFormat(_buf.AsSpan(_used), out var n, "R", CultureInfo.InvariantCulture);
                _used += n;
            }
            _buf[_used++] = (byte)'\n';
            _rows++;
        }

        void Append(string text)
        {
            Reserve(Encoding.UTF8.GetMaxByteCount(text.Length));
            _used += Encoding.UTF8.GetBytes(text, _buf.AsSpan(_used));
        }

        void Reserve(int bytes)
        {
            if (_buf.Length - _used >= bytes) return;
            Flush();
            if (_buf.Length < bytes) _buf = new byte[bytes];
        }

        void Flush()
        {
            _file.Write(_buf, 0, _used);
            _sha.AppendData(_buf, 0, _used);
            _used = 0;
        }

        public PartialScoreManifest Complete(PartialScoreManifest template)
        {
            Flush();
            _file.Dispose();
            var manifest = Publish(_dir, _base + ".csv", _tmp, template with { RowCount = _rows, Sha256 = Convert.ToHexStringLower(_sha.GetHashAndReset()), Outputs = _outputs });
            _done = true;
            return manifest;
        }

        public void Dispose()
        {
            _file.Dispose();
            _sha.Dispose();
            if (!_done && File.Exists(_tmp)) File.Delete(_tmp);
        }
    }

    /// <summary>Renames the finished data file <paramref name="tmp"/> to <paramref name="dataFile"/> in <paramref name="dir"/>, then writes its manifest (temp-then-rename, last).</summary>
    public static PartialScoreManifest Publish(string dir, string dataFile, string tmp, PartialScoreManifest manifest)
    {
        manifest = manifest with { DataFile = dataFile, WrittenAt = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture) };
        File.Move(tmp, Path.Combine(dir, dataFile), overwrite: true);
        var mpath = Path.Combine(dir, Path.GetFileNameWithoutExtension(dataFile) + PartialScoreManifest.Suffix);
        File.WriteAllText(mpath + ".tmp", JsonSerializer.Serialize(manifest, PartialScoreManifest.Json));
        File.Move(mpath + ".tmp", mpath, overwrite: true);
        return manifest;
    }

    public static string Sha256Of(string path)
    {
        using var s = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(s));
    }

    public static PartialScoreManifest ReadManifest(string path)
    {
        try
        {
            return JsonSerializer.Deserialize<PartialScoreManifest>(File.ReadAllText(path), PartialScoreManifest.Json)
                   ?? throw new JsonException("empty document");
        }
        catch (JsonException e) { throw new BadInputException($"{path}: not a partial-score manifest: {e.Message}", e); }
    }

    /// <summary>Finds the manifests in <paramref name="dir"/> for this model version and partition (hour: exactly that hour).</summary>
    public static List<(string Path, PartialScoreManifest Manifest)> Find(string dir, string modelId, int version, Partition p)
    {
        if (!Directory.Exists(dir)) throw new BadInputException($"--input {dir}: no such directory");
        var list = new List<(string, PartialScoreManifest)>();
        foreach (var path in Directory.EnumerateFiles(dir, "*" + PartialScoreManifest.Suffix).Order(StringComparer.Ordinal))
        {
            var m = ReadManifest(path);
            if (m.ModelId == modelId && m.Version == version && m.Dt == p.Dt && m.Hour == p.HourText) list.Add((path, m));
        }
        list.AddRange(HiveParquet.FindPartialScores(dir, modelId, version, p));
        return list;
    }

    /// <summary>Reads and verifies a data file against its manifest: checksum, row count, duplicate ids, finite scores.</summary>
    public static PartialScoreSet Read(string manifestPath, PartialScoreManifest m)
    {
        var dataPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(manifestPath))!, m.DataFile);
        if (m.DataFile.Contains('/') || m.DataFile.Contains('\\') || !File.Exists(dataPath))
            throw new BadInputException($"{manifestPath}: data file '{m.DataFile}' is missing next to the manifest");
        var sha = Sha256Of(dataPath);
        if (!string.Equals(sha, m.Sha256, StringComparison.OrdinalIgnoreCase))
            throw new BadInputException($"{dataPath}: checksum mismatch: manifest says sha256 {m.Sha256}, the file hashes to {sha}; the file was altered or truncated, re-send it");
        if (m.Outputs < 1) throw new BadInputException($"{manifestPath}: outputs must be >= 1");
        if (dataPath.EndsWith(".parquet", StringComparison.OrdinalIgnoreCase))
            return CheckCount(HiveParquet.ReadPartialScores(dataPath, m), dataPath, m);
        if (dataPath.EndsWith(".arrow", StringComparison.OrdinalIgnoreCase))
            return CheckCount(ArrowPartialScores.Read(dataPath, m), dataPath, m);
        var set = new PartialScoreSet(m.Party, m.Outputs);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var scores = new double[m.Outputs];
        var jsonl = dataPath.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase);
        using var r = new StreamReader(dataPath, Encoding.UTF8, true, 1 << 16);
        long line = 0;
        if (!jsonl) { r.ReadLine(); line++; }
        while (r.ReadLine() is { } text)
        {
            line++;
            if (text.Length == 0) continue;
            string id;
            if (jsonl)
            {
                using var doc = JsonDocument.Parse(text);
                id = doc.RootElement.GetProperty("sample_id").GetString() ?? "";
                var arr = doc.RootElement.GetProperty("scores");
                if (arr.GetArrayLength() != m.Outputs) throw new BadInputException($"{dataPath}: line {line}: expected {m.Outputs} score(s)");
                var i = 0;
                foreach (var e in arr.EnumerateArray()) scores[i++] = e.GetDouble();
            }
            else
            {
                var cells = SplitCsv(text);
                if (cells.Count != m.Outputs + 1) throw new BadInputException($"{dataPath}: line {line}: {cells.Count} fields, expected {m.Outputs + 1}");
                id = cells[0];
                for (var c = 0; c < m.Outputs; c++)
                    if (!double.TryParse(cells[c + 1], NumberStyles.Float, CultureInfo.InvariantCulture, out scores[c]))
                        throw new BadInputException($"{dataPath}: line {line}: '{cells[c + 1]}' is not a number");
            }
            foreach (var s in scores)
                if (!double.IsFinite(s)) throw new BadInputException($"{dataPath}: line {line}: non-finite partial score for sample '{id}'");
            if (id.Length == 0) throw new BadInputException($"{dataPath}: line {line}: empty sample id");
            if (!seen.Add(id)) throw new BadInputException($"{dataPath}: duplicate sample id '{id}' (line {line}); a party sends one partial score per sample");
            set.Add(id, scores);
        }
        return CheckCount(set, dataPath, m);
    }

    static PartialScoreSet CheckCount(PartialScoreSet set, string dataPath, PartialScoreManifest m) => set.Count == m.RowCount ? set
        : throw new BadInputException($"{dataPath}: row count mismatch: manifest says {m.RowCount}, the file has {set.Count}; re-send the file");

    static List<string> SplitCsv(string line)
    {
        if (line.IndexOf('"') < 0) return [.. line.Split(',')];
        var cells = new List<string>();
        var sb = new StringBuilder();
        var q = false;
        for (var i = 0; i < line.Length; i++)
        {
            var ch = line[i];
            if (q) { if (ch == '"' && i + 1 < line.Length && line[i + 1] == '"') { sb.Append('"'); i++; } else if (ch == '"') q = false; else sb.Append(ch); }
            else if (ch == '"') q = true;
            else if (ch == ',') { cells.Add(sb.ToString()); sb.Clear(); }
            else sb.Append(ch);
        }
        cells.Add(sb.ToString());
        return cells;
    }
}
