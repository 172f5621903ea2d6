using System.Globalization;
using System.Runtime.Intrinsics;
using ParquetSharp;

namespace Fed.Core.Data;

/// <summary>
/// Streams Parquet files (e.g. one Hive partition's part files) as columnar feature batches: one row group at a time,
/// up to a batch of rows per read straight into the batch's columns, so memory is a few batches whatever the file
/// size. Each row group is a part that a worker can read on its own (<see cref="IPartitionedFeatureSource"/>).
/// Columns are matched to features by name or warehouse column name (<see cref="Identifiers.ColumnFor"/>),
/// case-insensitively as Hive does; a name that matches two columns is refused as ambiguous. Feature columns are
/// DOUBLE, FLOAT, INT32 or INT64 (exactly converted); a Parquet null is a missing value (NaN, then the model's policy),
/// and a literal NaN or Infinity is refused, as in CSV.
/// </summary>
public sealed class ParquetFeatureSource : IPartitionedFeatureSource
{
    sealed record Binding(int Id, PhysicalType IdType, short IdMaxDef, int[] Columns, PhysicalType[] Types, short[] MaxDef);
    readonly record struct Part(int File, int RowGroup, long Rows);

    readonly string[] _files;
    readonly Binding[] _bindings;
    readonly List<Part> _parts = [];
    readonly IReadOnlyList<string> _features;
    int _next;
    IFeatureSource? _current;

    public ParquetFeatureSource(IReadOnlyList<string> files, IReadOnlyList<string> features, string idColumn = "id", string? description = null)
    {
        _files = [.. files];
        _features = features;
        Description = description ?? string.Join(", ", files);
        _bindings = new Binding[_files.Length];
        for (var f = 0; f < _files.Length; f++)
        {
            using var reader = Open(_files[f]);
            var md = reader.FileMetaData;
            _bindings[f] = Bind(_files[f], md.Schema, features, idColumn);
            for (var g = 0; g < md.NumRowGroups; g++)
            {
                using var rg = reader.RowGroup(g);
                var rows = rg.MetaData.NumRows;
                if (rows > 0) _parts.Add(new Part(f, g, rows));
            }
        }
        Rows = _parts.Sum(p => p.Rows);
    }

    /// <summary>The partition dt[/hour] of a Hive table location (see <see cref="HiveLayout.FindPartition"/>).</summary>
    public static ParquetFeatureSource OpenPartition(string table, string dt, int? hour, IReadOnlyList<string> features, string idColumn = "id")
    {
        var dir = HiveLayout.FindPartition(table, dt, hour);
        return new ParquetFeatureSource(HiveLayout.DataFiles(dir), features, idColumn, dir);
    }

    public string Description { get; }
    public long Rows { get; }
    public int PartCount => _parts.Count;
    public IFeatureSource OpenPart(int part) => new RowGroupSource(this, _parts[part]);

    public bool ReadBatch(FeatureBatch batch)
    {
        while (true)
        {
            if (_current is null)
            {
                if (_next == _parts.Count) { batch.Count = 0; return false; }
                _current = OpenPart(_next++);
            }
            if (_current.ReadBatch(batch)) return true;
            _current.Dispose();
            _current = null;
        }
    }

    public void Dispose() => _current?.Dispose();

    static ParquetFileReader Open(string path)
    {
        try { return new ParquetFileReader(path); }
        catch (Exception e) when (e is ParquetException or IOException or UnauthorizedAccessException)
        {
            throw new BadInputException($"{path}: cannot read as Parquet: {e.Message}", e);
        }
    }

    static Binding Bind(string file, SchemaDescriptor schema, IReadOnlyList<string> features, string idColumn)
    {
        var names = new string[schema.NumColumns];
        for (var i = 0; i < names.Length; i++) names[i] = schema.Column(i).Path.ToDotString();
        int Find(string name, string? alt, string what)
        {
            var hits = Enumerable.Range(0, names.Length)
                .Where(i => names[i].Equals(name, StringComparison.OrdinalIgnoreCase) || alt != null && names[i].Equals(alt, StringComparison.OrdinalIgnoreCase)).ToList();
            if (hits.Count > 1)
                throw new BadInputException($"{file}: {what} '{name}' is ambiguous: columns {string.Join(", ", hits.Select(h => $"'{names[h]}'"))} all match (names are case-insensitive, as in Hive)");
            if (hits.Count == 1 && schema.Column(hits[0]).MaxRepetitionLevel > 0)
                throw new BadInputException($"{file}: column '{names[hits[0]]}' is repeated (a list); {what} must be a plain column");
            return hits.Count == 1 ? hits[0] : -1;
        }
        var id = Find(idColumn, null, "id column");
        if (id < 0) throw new BadInputException($"{file}: no id column '{idColumn}' ({string.Join(", ", names.Take(10))}{(names.Length > 10 ? ", ..." : "")})");
        var idType = schema.Column(id).PhysicalType;
        if (idType is not (PhysicalType.ByteArray or PhysicalType.Int32 or PhysicalType.Int64))
            throw new BadInputException($"{file}: id column '{names[id]}' is {idType}; an id is a string or an integer");
        var cols = new int[features.Count];
        var missing = new List<string>();
        for (var f = 0; f < features.Count; f++)
        {
            cols[f] = Find(features[f], Identifiers.ColumnFor(features[f]), "feature");
            if (cols[f] < 0) { missing.Add(features[f]); continue; }
            if (cols[f] == id) throw new BadInputException($"{file}: feature '{features[f]}' is the id column");
            var d = schema.Column(cols[f]);
            if (d.PhysicalType is not (PhysicalType.Double or PhysicalType.Float or PhysicalType.Int32 or PhysicalType.Int64) || d.LogicalType is DecimalLogicalType)
                throw new BadInputException($"{file}: feature column '{names[cols[f]]}' is {d.PhysicalType} {d.LogicalType}; a feature must be DOUBLE, FLOAT, INT32 or INT64");
        }
        if (missing.Count > 0)
            throw new MissingFeatureException($"{file}: the model needs feature column(s) {string.Join(", ", missing.Select(m => $"'{m}'"))} that the file does not have", missing);
        return new Binding(id, idType, (short)schema.Column(id).MaxDefinitionLevel, cols,
            cols.Select(c => schema.Column(c).PhysicalType).ToArray(), cols.Select(c => (short)schema.Column(c).MaxDefinitionLevel).ToArray());
    }

    /// <summary>One row group of one file, read in batches; owns its file handle so that parts read in parallel.</summary>
    sealed class RowGroupSource : IFeatureSource
    {
        readonly ParquetFeatureSource _owner;
        readonly ParquetFileReader _file;
        readonly RowGroupReader _rg;
        readonly ColumnReader _id;
        readonly ColumnReader[] _cols;
        readonly Binding _b;
        long _left;
        short[] _def = [];
        ByteArray[] _bytes = [];
        long[] _longs = [];
        float[] _floats = [];

        public RowGroupSource(ParquetFeatureSource owner, Part part)
        {
            _owner = owner;
            Description = owner._files[part.File];
            _b = owner._bindings[part.File];
            _left = part.Rows;
            _file = Open(Description);
            try
            {
                _rg = _file.RowGroup(part.RowGroup);
                _id = _rg.Column(_b.Id);
                _cols = _b.Columns.Select(c => _rg.Column(c)).ToArray();
            }
            catch { _file.Dispose(); throw; }
        }

        public string Description { get; }

        public bool ReadBatch(FeatureBatch batch)
        {
            var n = (int)Math.Min(batch.Capacity, _left);
            batch.Count = n;
            if (n == 0) return false;
            if (_def.Length < n) _def = new short[batch.Capacity];
            try
            {
                ReadIds(batch.SampleIds, n);
                for (var f = 0; f < _cols.Length; f++) ReadFeature(f, batch.Columns[f].AsSpan(0, n));
            }
            catch (ParquetException e) { throw new BadInputException($"{Description}: corrupt Parquet data: {e.Message}", e); }
            _left -= n;
            return true;
        }

        void ReadIds(string[] ids, int n)
        {
            if (_b.IdType == PhysicalType.ByteArray)
            {
                if (_bytes.Length < n) _bytes = new ByteArray[ids.Length];
                var r = (ColumnReader<ByteArray>)_id;
                for (int levels = 0, at = 0; levels < n;)
                {
                    // A ByteArray points into the reader's page: decode each batch before the next read.
                    var l = Chunk(r.ReadBatch(n - levels, _def.AsSpan(levels, n - levels), default, _bytes, out var v));
                    if (v != l) throw NullId();
                    for (var i = 0; i < v; i++) ids[at++] = Utf8(_bytes[i]);
                    levels += l;
                }
            }
            else
            {
                if (_longs.Length < n) _longs = new long[ids.Length];
                var vals = _b.IdType == PhysicalType.Int64 ? ReadDense((ColumnReader<long>)_id, n, _longs) : ReadInts(_id, n);
                if (vals != n) throw NullId();
                for (var i = 0; i < n; i++) ids[i] = _longs[i].ToString(CultureInfo.InvariantCulture);
            }
            for (var i = 0; i < n; i++)
                if (ids[i].Length == 0) throw new BadInputException($"{Description}: empty id");
        }

        BadInputException NullId() => new($"{Description}: a null in the id column; every row needs an id");

        int ReadInts(ColumnReader reader, int n)
        {
            var ints = System.Buffers.ArrayPool<int>.Shared.Rent(n);
            try
            {
                var vals = ReadDense((ColumnReader<int>)reader, n, ints);
                for (var i = 0; i < vals; i++) _longs[i] = ints[i];
                return vals;
            }
            finally { System.Buffers.ArrayPool<int>.Shared.Return(ints); }
        }

        void ReadFeature(int f, Span<double> dst)
        {
            var n = dst.Length;
            int vals;
            switch (_b.Types[f])
            {
                case PhysicalType.Double:
                    vals = ReadDense((ColumnReader<double>)_cols[f], n, dst);
                    if (FirstNonFinite(dst[..vals]) is var bad && bad >= 0)
                        throw new BadInputException($"{Description}: column '{_owner._features[f]}': literal {dst[bad]} is not a value; write a missing value as null");
                    break;
                case PhysicalType.Float:
                    if (_floats.Length < n) _floats = new float[dst.Length];
                    vals = ReadDense((ColumnReader<float>)_cols[f], n, _floats.AsSpan(0, n));
                    for (var i = 0; i < vals; i++)
                        dst[i] = float.IsFinite(_floats[i]) ? _floats[i] : throw new BadInputException($"{Description}: column '{_owner._features[f]}': literal {_floats[i]} is not a value; write a missing value as null");
                    break;
                case PhysicalType.Int64:
                    if (_longs.Length < n) _longs = new long[dst.Length];
                    vals = ReadDense((ColumnReader<long>)_cols[f], n, _longs.AsSpan(0, n));
                    for (var i = 0; i < vals; i++) dst[i] = _longs[i];
                    break;
                default:
                    if (_longs.Length < n) _longs = new long[dst.Length];
                    vals = ReadInts(_cols[f], n);
                    for (var i = 0; i < vals; i++) dst[i] = _longs[i];
                    break;
            }
            if (vals == n) return;
            // Nulls: the values came dense; spread them to their rows from the back (in place), NaN where null.
            var max = _b.MaxDef[f];
            for (int i = n - 1, j = vals - 1; i >= 0; i--) dst[i] = _def[i] == max ? dst[j--] : double.NaN;
        }

        /// <summary>Reads n rows' levels and their (dense) non-null values; returns the number of values.</summary>
        int ReadDense<T>(ColumnReader<T> r, int n, Span<T> values) where T : unmanaged
        {
            int levels = 0, vals = 0;
            while (levels < n)
            {
                levels += Chunk(r.ReadBatch(n - levels, _def.AsSpan(levels, n - levels), default, values[vals..], out var v));
                vals += (int)v;
            }
            return vals;
        }

        int Chunk(long levels) => levels > 0 ? (int)levels
            : throw new BadInputException($"{Description}: a column chunk ends before its row group's row count; the file is corrupt");

        static unsafe string Utf8(ByteArray b) => System.Text.Encoding.UTF8.GetString((byte*)b.Pointer, b.Length);

        public void Dispose()
        {
            _id?.Dispose();
            if (_cols != null) foreach (var c in _cols) c.Dispose();
            _rg?.Dispose();
            _file.Dispose();
        }
    }

    /// <summary>Index of the first NaN or infinity (x - x is 0 only for finite x), or -1.</summary>
    static int FirstNonFinite(ReadOnlySpan<double> s)
    {
        var i = 0;
        for (; i + Vector256<double>.Count <= s.Length; i += Vector256<double>.Count)
        {
            var v = Vector256.Create(s.Slice(i, Vector256<double>.Count));
            if (!Vector256.EqualsAll(v - v, Vector256<double>.Zero)) break;
        }
        for (; i < s.Length; i++)
            if (!double.IsFinite(s[i])) return i;
        return -1;
    }
}
