using System.Globalization;
using System.Text;
using Fed.Core.Model;

namespace Fed.Core.Data;

/// <summary>
/// Streams a CSV file (header row; comma-separated; RFC 4180 quotes) as columnar feature batches in bounded memory.
/// Columns are matched to features by exact name or by warehouse column name (<see cref="Identifiers.ColumnFor"/>).
/// Empty cells, "NA" and "null" are missing values; literal NaN/Infinity and non-numbers are errors naming line and column.
/// </summary>
public sealed class CsvFeatureSource : IFeatureSource
{
    readonly StreamReader _reader;
    readonly int _idIndex;
    readonly int[] _featureIndex; // CSV column of each requested feature
    readonly int _width;
    long _line = 1;
    readonly List<string> _cells = new();
    readonly StringBuilder _cell = new();

    public CsvFeatureSource(string path, IReadOnlyList<string> features, string idColumn = "id")
    {
        Description = path;
        Stream stream;
        try { stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"{path}: cannot open feature file: {e.Message}", e);
        }
        _reader = new StreamReader(stream, Encoding.UTF8, detectEncodingFromByteOrderMarks: true, 1 << 16);
        var header = ReadRecord() ?? throw new BadInputException($"{path}: empty file, expected a header row");
        Header = header.ToArray();
        _width = Header.Length;
        _idIndex = Array.IndexOf(Header, idColumn);
        if (_idIndex < 0) throw new BadInputException($"{path}: no id column '{idColumn}' in the header ({string.Join(", ", Header.Take(10))}{(Header.Length > 10 ? ", ..." : "")})");
        _featureIndex = new int[features.Count];
        var missing = new List<string>();
        for (var f = 0; f < features.Count; f++)
        {
            var i = Array.IndexOf(Header, features[f]);
            if (i < 0) i = Array.IndexOf(Header, Identifiers.ColumnFor(features[f]));
            if (i < 0) missing.Add(features[f]);
            _featureIndex[f] = i;
        }
        if (missing.Count > 0)
            throw new MissingFeatureException(
                $"{path}: the model needs feature column(s) {string.Join(", ", missing.Select(m => $"'{m}'"))} that the file does not have", missing);
    }

    public string Description { get; }
    public string[] Header { get; }

    /// <summary>Lists the numeric columns of a CSV header other than the id (and label), for training inputs.</summary>
    public static string[] ReadHeader(string path)
    {
        using var r = new StreamReader(path);
        var line = r.ReadLine() ?? throw new BadInputException($"{path}: empty file, expected a header row");
        return line.Split(',').Select(s => s.Trim().Trim('"')).ToArray();
    }

    public bool ReadBatch(FeatureBatch batch)
    {
        var n = 0;
        while (n < batch.Capacity)
        {
            var rec = ReadRecord();
            if (rec is null) break;
            if (rec.Count == 1 && rec[0].Length == 0) continue; // blank line
            if (rec.Count != _width)
                throw new BadInputException($"{Description}: line {_line}: {rec.Count} fields, the header has {_width}");
            var id = rec[_idIndex];
            if (id.Length == 0) throw new BadInputException($"{Description}: line {_line}: empty id");
            batch.SampleIds[n] = id;
            for (var f = 0; f < _featureIndex.Length; f++)
                batch.Columns[f][n] = ParseValue(rec[_featureIndex[f]], Header[_featureIndex[f]]);
            n++;
        }
        batch.Count = n;
        return n > 0;
    }

    double ParseValue(string s, string column)
    {
        var span = s.AsSpan().Trim();
        if (span.Length == 0 || span.Equals("NA", StringComparison.OrdinalIgnoreCase) || span.Equals("null", StringComparison.OrdinalIgnoreCase))
            return double.NaN;
        if (!double.TryParse(span, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !double.IsFinite(v))
            throw new BadInputException($"{Description}: line {_line}, column '{column}': '{s}' is not a finite number");
        return v;
    }

    /// <summary>Reads one CSV record, honouring quotes (which may span lines). Null at end of file.</summary>
    List<string>? ReadRecord()
    {
        var line = _reader.ReadLine();
        if (line is null) return null;
        _line++;
        _cells.Clear();
        if (line.IndexOf('"') < 0)
        {
            foreach (var part in line.Split(',')) _cells.Add(part);
            return _cells;
        }
        _cell.Clear();
        var quoted = false;
        while (true)
        {
            for (var i = 0; i < line.Length; i++)
            {
                var ch = line[i];
                if (quoted)
                {
                    if (ch == '"' && i + 1 < line.Length && line[i + 1] == '"') { _cell.Append('"'); i++; }
                    else if (ch == '"') quoted = false;
                    else _cell.Append(ch);
                }
                else if (ch == '"') quoted = true;
                else if (ch == ',') { _cells.Add(_cell.ToString()); _cell.Clear(); }
                else _cell.Append(ch);
            }
            if (!quoted) break;
            _cell.Append('\n');
            line = _reader.ReadLine() ?? throw new BadInputException($"{Description}: line {_line}: unterminated quoted field");
            _line++;
        }
        _cells.Add(_cell.ToString());
        return _cells;
    }

    public void Dispose() => _reader.Dispose();
}
