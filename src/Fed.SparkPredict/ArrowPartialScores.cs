using Apache.Arrow;
using Apache.Arrow.Ipc;
using Apache.Arrow.Types;
using Fed.Core;

namespace Fed.SparkPredict;

/// <summary>
/// Partial scores as an Arrow IPC file, for Fed handing bulk data to Fed (party -> initiator): the columnar bytes the
/// initiator reads without parsing text. Same flat layout and manifest as the CSV files
/// (<c>{model}_v{version}_{party}_{dt}[_hHH].arrow</c> + <c>.manifest.json</c>), long form like the Parquet tables:
/// sample_id (utf8), class_index (int32), partial_score (float64), in record batches of 64k rows.
/// </summary>
public static class ArrowPartialScores
{
    const int BatchRows = 1 << 16;
    static readonly Schema Schema = new Schema.Builder()
        .Field(f => f.Name("sample_id").DataType(StringType.Default).Nullable(false))
        .Field(f => f.Name("class_index").DataType(Int32Type.Default).Nullable(false))
        .Field(f => f.Name("partial_score").DataType(DoubleType.Default).Nullable(false))
        .Build();

    public sealed class Writer : IPartialScoreWriter
    {
        readonly string _dir, _base, _tmp;
        readonly FileStream _stream;
        readonly ArrowFileWriter _writer;
        readonly int _outputs;
        StringArray.Builder _ids = new();
        Int32Array.Builder _classes = new();
        DoubleArray.Builder _scores = new();
        int _used;
        long _rows;
        bool _done;

        public Writer(string dir, string modelId, int version, string party, Partition p, int outputs)
        {
            Directory.CreateDirectory(dir);
            _dir = dir;
            _base = PartialScoreFiles.BaseName(modelId, version, party, p);
            _tmp = Path.Combine(dir, $".{_base}.arrow.tmp-{Environment.ProcessId}");
            _outputs = outputs;
            // ArrowFileWriter needs a seekable stream, so the checksum is taken from the finished file.
            _stream = new FileStream(_tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
            _writer = new ArrowFileWriter(_stream, Schema, leaveOpen: true);
            _writer.WriteStart();
        }

        public string Output => Path.Combine(_dir, _base + PartialScoreManifest.Suffix);

        public void Write(string id, double[][] scores, int r)
        {
            for (var c = 0; c < _outputs; c++)
            {
                _ids.Append(id);
                _classes.Append(c);
                _scores.Append(scores[c][r]);
            }
            _rows++;
            if ((_used += _outputs) >= BatchRows) Flush();
        }

        void Flush()
        {
            if (_used == 0) return;
            using var batch = new RecordBatch(Schema, [_ids.Build(), _classes.Build(), _scores.Build()], _used);
            _writer.WriteRecordBatch(batch);
            _ids = new StringArray.Builder();
            _classes.Clear();
            _scores.Clear();
            _used = 0;
        }

        public PartialScoreManifest Complete(PartialScoreManifest template)
        {
            Flush();
            _writer.WriteEnd();
            _stream.Dispose();
            var sha = PartialScoreFiles.Sha256Of(_tmp);
            var manifest = PartialScoreFiles.Publish(_dir, _base + ".arrow", _tmp, template with { RowCount = _rows, Sha256 = sha, Outputs = _outputs });
            _done = true;
            return manifest;
        }

        public void Dispose()
        {
            _writer.Dispose();
            _stream.Dispose();
            if (!_done && File.Exists(_tmp)) File.Delete(_tmp);
        }
    }

    public static PartialScoreSet Read(string dataPath, PartialScoreManifest m)
    {
        var rows = new LongFormScores(dataPath, m);
        try
        {
            using var stream = File.OpenRead(dataPath);
            using var reader = new ArrowFileReader(stream);
            rows.CheckColumns(reader.Schema.FieldsList.Select(f => f.Name));
            if (reader.Schema.FieldsList.Select(f => f.DataType.TypeId).SequenceEqual([ArrowTypeId.String, ArrowTypeId.Int32, ArrowTypeId.Double]) is false)
                throw new BadInputException($"{dataPath}: column types {string.Join(", ", reader.Schema.FieldsList.Select(f => f.DataType.Name))}; expected utf8, int32, double");
            while (reader.ReadNextRecordBatch() is { } batch)
                using (batch)
                {
                    var ids = (StringArray)batch.Column(0);
                    var cls = (Int32Array)batch.Column(1);
                    var scores = (DoubleArray)batch.Column(2);
                    if (cls.NullCount > 0 || scores.NullCount > 0) throw new BadInputException($"{dataPath}: null class_index or partial_score");
                    for (var i = 0; i < batch.Length; i++) rows.Add(ids.GetString(i), cls.Values[i], scores.Values[i]);
                }
        }
        catch (Exception e) when (e is InvalidDataException or InvalidOperationException or ArgumentException or IOException or InvalidCastException)
        {
            throw new BadInputException($"{dataPath}: not an Arrow IPC file of partial scores: {e.Message}", e);
        }
        return rows.ToSet();
    }
}
