using System.Globalization;
using System.Text;
using Fed.Core.Model;

namespace Fed.Core.Data;

/// <summary>
/// Streams a CSV file (header row; comma-separated; RFC 4180 quotes) as columnar feature batches in bounded memory.
/// Columns are matched to features by exact name or by warehouse column name (<see cref="Identifiers.ColumnFor"/>).
/// Empty cells, "NA" and "null" are missing values; literal NaN/Infinity and non-numbers are errors naming line and column.
/// Reads UTF-8 bytes in a large reused buffer: unquoted records are parsed in place, their numbers by
/// <see cref="Utf8Double"/> (bit-identical to double.Parse, which handles every cell the fast path does not).
/// </summary>
public sealed class CsvFeatureSource : IFeatureSource
{
    readonly Stream _stream;
    byte[] _buf = new byte[1 << 20];
    int _pos, _end;
    bool _eof;
    long _line;       // physical lines consumed
    long _recordLine; // line the current record starts on, for messages
    readonly int _idIndex;
    readonly int[] _featureIndex; // CSV column of each requested feature
    readonly int _width;
    readonly int[] _fieldStart, _fieldEnd; // the current unquoted record's fields, as offsets into _buf
    readonly int[]? _columnFeature; // feature index of each CSV column (-1: not read), for the one-pass reader; null: not usable
    readonly List<string> _cells = new();
    readonly StringBuilder _cell = new();

    public CsvFeatureSource(string path, IReadOnlyList<string> features, string idColumn = "id")
    {
        Description = path;
        try { _stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"{path}: cannot open feature file: {e.Message}", e);
        }
        try
        {
            SkipByteOrderMark();
            if (!NextLine(out var start, out var length)) throw new BadInputException($"{path}: empty file, expected a header row");
            _recordLine = _line;
            Header = ReadQuotedRecord(start, length).ToArray();
            RefuseDuplicateColumns(path, Header);
            _width = Header.Length;
            _fieldStart = new int[_width];
            _fieldEnd = new int[_width];
            _idIndex = Array.IndexOf(Header, idColumn);
            if (_idIndex < 0) throw new BadInputException($"{path}: no id column '{idColumn}' in the header ({string.Join(", ", Header.Take(10).Select(h => ErrorText.Cut(h, 80)))}{(Header.Length > 10 ? $", ... ({Header.Length} columns)" : "")})");
            _featureIndex = new int[features.Count];
            var missing = new List<string>();
            for (var f = 0; f < features.Count; f++)
            {
                var i = Array.IndexOf(Header, features[f]);
                if (i < 0) i = Array.IndexOf(Header, Identifiers.ColumnFor(features[f]));
                if (i < 0) missing.Add(features[f]);
                _featureIndex[f] = i;
            }
            // One pass per record works when each column feeds at most one feature and the id is not a feature.
            _columnFeature = Enumerable.Repeat(-1, _width).ToArray();
            for (var f = 0; f < _featureIndex.Length && _columnFeature != null; f++)
            {
                if (_featureIndex[f] < 0) continue;
                if (_featureIndex[f] == _idIndex || _columnFeature[_featureIndex[f]] >= 0) _columnFeature = null;
                else _columnFeature[_featureIndex[f]] = f;
            }
            if (missing.Count > 0)
                throw new MissingFeatureException(
                    $"{path}: the model needs feature column(s) {string.Join(", ", missing.Select(m => $"'{m}'"))} that the file does not have", missing);
        }
        catch
        {
            _stream.Dispose();
            throw;
        }
    }

    public string Description { get; }
    public string[] Header { get; }

    /// <summary>Lists the numeric columns of a CSV header other than the id (and label), for training inputs.</summary>
    public static string[] ReadHeader(string path)
    {
        using var r = new StreamReader(path);
        var line = r.ReadLine() ?? throw new BadInputException($"{path}: empty file, expected a header row");
        var header = line.Split(',').Select(s => s.Trim().Trim('"')).ToArray();
        RefuseDuplicateColumns(path, header);
        return header;
    }

    /// <summary>A column named twice is ambiguous (which one is the feature?): refused, naming it.</summary>
    static void RefuseDuplicateColumns(string path, string[] header)
    {
        var dup = header.GroupBy(h => h, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => $"'{ErrorText.Cut(g.Key, 80)}'").ToList();
        if (dup.Count > 0)
            throw new BadInputException($"{path}: duplicate column name{(dup.Count > 1 ? "s" : "")} {string.Join(", ", dup.Take(10))} in the header; each column must appear once");
    }

    public bool ReadBatch(FeatureBatch batch)
    {
        var n = 0;
        while (n < batch.Capacity && NextLine(out var start, out var length))
        {
            _recordLine = _line;
            if (length == 0) continue; // blank line
            var line = _buf.AsSpan(start, length);
            if (line.IndexOf((byte)'"') >= 0)
            {
                if (ReadQuoted(batch, n, start, length)) n++;
                continue;
            }
            // Unquoted (the common case): parse the UTF-8 bytes in place, no strings but the id. First in one pass;
            // a record it cannot take whole (bad cell, wrong field count, ...) goes the split-then-parse way below,
            // which decides what is valid and words the error.
            if (_columnFeature != null && ReadInOnePass(batch, n, start, length)) { n++; continue; }
            if (SplitFields(start, length) is var fields && fields != _width) throw FieldCount(fields);
            var id = _buf.AsSpan(_fieldStart[_idIndex], _fieldEnd[_idIndex] - _fieldStart[_idIndex]);
            if (id.IsEmpty) throw EmptyId();
            batch.SampleIds[n] = Encoding.UTF8.GetString(id);
            for (var f = 0; f < _featureIndex.Length; f++)
            {
                var c = _featureIndex[f];
                var cell = _buf.AsSpan(_fieldStart[c], _fieldEnd[c] - _fieldStart[c]);
                batch.Columns[f][n] = cell.IsEmpty ? double.NaN
                    : Utf8Double.TryParse(cell, out var v) ? v
                    : ParseValue(Encoding.UTF8.GetString(cell), Header[c]);
            }
            n++;
        }
        batch.Count = n;
        return n > 0;
    }

    /// <summary>
    /// Row <paramref name="n"/> from an unquoted record in one pass: each feature cell parsed where it stands (it must
    /// end at a comma or the line end), other cells skipped, the id copied. False, with nothing decided, for anything
    /// the fast parser does not take or a field count other than the header's.
    /// </summary>
    bool ReadInOnePass(FeatureBatch batch, int n, int start, int length)
    {
        var line = _buf.AsSpan(start, length);
        var pos = 0;
        for (var c = 0; c < _width; c++)
        {
            var rest = line[pos..];
            if (_columnFeature![c] is var f && f >= 0)
            {
                if (rest.IsEmpty || rest[0] == ',') batch.Columns[f][n] = double.NaN;
                else if (Utf8Double.TryParsePrefix(rest, out var v, out var used) && (used == rest.Length || rest[used] == ',')) { batch.Columns[f][n] = v; pos += used; }
                else return false;
            }
            else
            {
                var comma = rest.IndexOf((byte)',');
                var cell = comma < 0 ? rest : rest[..comma];
                if (c == _idIndex)
                {
                    if (cell.IsEmpty) return false;
                    batch.SampleIds[n] = Encoding.UTF8.GetString(cell);
                }
                pos += cell.Length;
            }
            if (c < _width - 1)
            {
                if (pos == line.Length) return false; // too few fields
                pos++;                                // the comma
            }
        }
        return pos == line.Length; // else too many fields
    }

    /// <summary>Field bounds of an unquoted record (the records <see cref="ReadInOnePass"/> declines); returns the number of fields.</summary>
    int SplitFields(int start, int length)
    {
        var line = _buf.AsSpan(start, length);
        int c = 0, from = 0;
        while (line[from..].IndexOf((byte)',') is var i && i >= 0)
        {
            if (c == _width - 1) return line.Count((byte)',') + 1; // too many: count them for the message
            _fieldStart[c] = start + from;
            _fieldEnd[c++] = start + from + i;
            from += i + 1;
        }
        _fieldStart[c] = start + from;
        _fieldEnd[c] = start + length;
        return c + 1;
    }

    /// <summary>A record with quotes (possibly spanning lines) into row <paramref name="n"/>; false for a blank record.</summary>
    bool ReadQuoted(FeatureBatch batch, int n, int start, int length)
    {
        var rec = ReadQuotedRecord(start, length);
        if (rec.Count == 1 && rec[0].Length == 0) return false;
        if (rec.Count != _width) throw FieldCount(rec.Count);
        var id = rec[_idIndex];
        if (id.Length == 0) throw EmptyId();
        batch.SampleIds[n] = id;
        for (var f = 0; f < _featureIndex.Length; f++)
            batch.Columns[f][n] = ParseValue(rec[_featureIndex[f]], Header[_featureIndex[f]]);
        return true;
    }

    BadInputException FieldCount(int fields) => new($"{Description}: line {_recordLine}: {fields} fields, the header has {_width}");
    BadInputException EmptyId() => new($"{Description}: line {_recordLine}: empty id");

    /// <summary>The reference rule for a cell (the fast UTF-8 path only ever agrees with it).</summary>
    double ParseValue(string s, string column)
    {
        var span = s.AsSpan().Trim();
        if (span.Length == 0 || span.Equals("NA", StringComparison.OrdinalIgnoreCase) || span.Equals("null", StringComparison.OrdinalIgnoreCase))
            return double.NaN;
        if (!double.TryParse(span, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !double.IsFinite(v))
            throw new BadInputException($"{Description}: line {_recordLine}, column '{ErrorText.Cut(column, 80)}': '{ErrorText.Cut(s)}' is not a finite number");
        return v;
    }

    /// <summary>Splits one CSV record into strings, honouring RFC 4180 quotes (which may span lines).</summary>
    List<string> ReadQuotedRecord(int start, int length)
    {
        var line = Encoding.UTF8.GetString(_buf, start, length);
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
            if (!NextLine(out start, out length)) throw new BadInputException($"{Description}: line {_recordLine}: unterminated quoted field");
            line = Encoding.UTF8.GetString(_buf, start, length);
        }
        _cells.Add(_cell.ToString());
        return _cells;
    }

    /// <summary>
    /// The next physical line as <c>_buf[start, start + length)</c> without its terminator (\n, \r\n or \r, as
    /// StreamReader.ReadLine). Valid until the next call. False at the end of the file.
    /// </summary>
    bool NextLine(out int start, out int length)
    {
        while (true)
        {
            var rest = _buf.AsSpan(_pos, _end - _pos);
            var i = rest.IndexOfAny((byte)'\n', (byte)'\r');
            // A '\r' at the end of the buffer may be the first half of "\r\n": read on before deciding.
            if (i >= 0 && (rest[i] == '\n' || i + 1 < rest.Length || _eof))
            {
                start = _pos;
                length = i;
                _pos += i + 1 + (rest[i] == '\r' && i + 1 < rest.Length && rest[i + 1] == '\n' ? 1 : 0);
                _line++;
                return true;
            }
            if (_eof)
            {
                start = _pos;
                length = rest.Length;
                _pos = _end;
                if (length == 0) return false;
                _line++;
                return true;
            }
            Fill();
        }
    }

    /// <summary>Moves the unread bytes to the front (growing the buffer for a very long record) and reads more.</summary>
    void Fill()
    {
        if (_pos > 0)
        {
            Buffer.BlockCopy(_buf, _pos, _buf, 0, _end - _pos);
            _end -= _pos;
            _pos = 0;
        }
        if (_end == _buf.Length) Array.Resize(ref _buf, _buf.Length * 2);
        var read = _stream.Read(_buf, _end, _buf.Length - _end);
        if (read == 0) _eof = true;
        _end += read;
    }

    /// <summary>UTF-8 (with or without a byte-order mark) is what Fed reads; a UTF-16/32 mark is refused, not misread.</summary>
    void SkipByteOrderMark()
    {
        while (_end < 4 && !_eof) Fill();
        var head = _buf.AsSpan(0, _end);
        if (head.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF])) _pos = 3;
        else if (head.StartsWith((ReadOnlySpan<byte>)[0xFE, 0xFF]) || head.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xFE]) || head.StartsWith((ReadOnlySpan<byte>)[0, 0, 0xFE, 0xFF]))
            throw new BadInputException($"{Description}: the file is UTF-16 or UTF-32 encoded; save it as UTF-8");
    }

    public void Dispose() => _stream.Dispose();
}
