using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Fed.Core;
using Fed.Core.Data;
using Fed.Core.Scoring;
using Fed.Warehouse;
using ParquetSharp;

namespace Fed.SparkPredict;

/// <summary>
/// Fed's output tables as Hive-layout Parquet, mountable as they are by Hive, Spark SQL, Trino or DuckDB:
/// <c>OUT/fed_partial_scores[_hourly]/model_id=M/version=V/party=P/dt=D[/hour=HH]/part-00000.parquet</c> and
/// <c>OUT/fed_predictions[_hourly]/model_id=M/version=V/dt=D[/hour=HH]/part-00000.parquet</c>. Data columns are the
/// warehouse tables' (<see cref="Schema"/>) minus the partition columns, which live in the folder names as strings.
/// A partition is written into a hidden staging folder and swapped in by rename, so a rerun replaces exactly that
/// partition and a reader never sees half a file; the manifest (<c>_fed_manifest.json</c>, hidden from Hive/Spark)
/// carries the same provenance as the CSV path's.
/// </summary>
public static class HiveParquet
{
    public const string ManifestName = "_fed_manifest.json";
    public const string PartFile = "part-00000.parquet";
    const int RowGroupRows = 1 << 19;

    public static string[] PartialScorePartitions(bool hourly) => hourly ? ["model_id", "version", "party", "dt", "hour"] : ["model_id", "version", "party", "dt"];
    public static string[] PredictionPartitions(bool hourly) => hourly ? ["model_id", "version", "dt", "hour"] : ["model_id", "version", "dt"];

    /// <summary>The table as Fed writes it in Parquet: the warehouse table's columns, partitioned by the given keys (strings).</summary>
    public static TableDef Layout(TableDef warehouseTable, string[] partitions) => warehouseTable with
    {
        Columns = warehouseTable.AllColumns.Where(c => !partitions.Contains(c.Name)).ToArray(),
        PartitionBy = partitions.Select(p => warehouseTable.AllColumns.FirstOrDefault(c => c.Name == p) is { } c
            ? c with { Type = ColumnType.String } : new ColumnDef(p, ColumnType.String)).ToArray(),
        Key = null,
    };

    public static TableDef PartialScoresTable(bool hourly) => Layout(Schema.PartialScores(hourly), PartialScorePartitions(hourly));
    public static TableDef PredictionsTable(bool hourly) => Layout(Schema.Predictions(hourly), PredictionPartitions(hourly));

    static (string, string)[] Spec(string model, int version, string? party, Partition p)
    {
        var spec = new List<(string, string)> { ("model_id", Identifiers.ModelId(model)), ("version", version.ToString(CultureInfo.InvariantCulture)) };
        if (party != null) spec.Add(("party", Identifiers.PartyId(party)));
        spec.Add(("dt", p.Dt));
        if (p.Hourly) spec.Add(("hour", p.HourText!));
        return [.. spec];
    }

    public static string PartialScoresPartition(string root, string model, int version, string party, Partition p) =>
        HiveLayout.PartitionPath(Path.Combine(root, PartialScoresTable(p.Hourly).Name), Spec(model, version, party, p));

    public static string PredictionsPartition(string root, string model, int version, Partition p) =>
        HiveLayout.PartitionPath(Path.Combine(root, PredictionsTable(p.Hourly).Name), Spec(model, version, null, p));

    /// <summary>A partition being written: a hidden staging folder next to the final one, swapped in by <see cref="Commit"/>.</summary>
    sealed class Staging : IDisposable
    {
        readonly string _final;
        readonly List<string> _created = []; // folders made for this partition, deepest first: removed again if it fails
        bool _done;
        public string Dir { get; }

        public Staging(string final)
        {
            _final = Path.GetFullPath(final);
            var parent = Path.GetDirectoryName(_final)!;
            for (var d = parent; d != null && !Directory.Exists(d); d = Path.GetDirectoryName(d)) _created.Add(d);
            Directory.CreateDirectory(parent);
            Dir = Path.Combine(parent, $".{Path.GetFileName(_final)}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}");
            Directory.CreateDirectory(Dir);
        }

        /// <summary>Replaces the final folder by the staged one: old aside, new in, old deleted.</summary>
        public string Commit()
        {
            string? old = null;
            if (Directory.Exists(_final))
            {
                old = Path.Combine(Path.GetDirectoryName(_final)!, $".{Path.GetFileName(_final)}.old-{Guid.NewGuid():N}");
                Directory.Move(_final, old);
            }
            Directory.Move(Dir, _final);
            _done = true;
            if (old != null) Directory.Delete(old, recursive: true);
            return _final;
        }

        public void Dispose()
        {
            if (_done) return;
            if (Directory.Exists(Dir)) Directory.Delete(Dir, recursive: true);
            foreach (var d in _created)
                if (Directory.Exists(d) && !Directory.EnumerateFileSystemEntries(d).Any()) Directory.Delete(d);
        }
    }

    static ParquetSharp.Column ParquetColumn(ColumnDef c) => c.Type switch
    {
        ColumnType.String => new Column<string>(c.Name),
        ColumnType.Double => c.Nullable ? new Column<double?>(c.Name) : new Column<double>(c.Name),
        ColumnType.Int => new Column<int>(c.Name),
        _ => new Column<long>(c.Name),
    };

    /// <summary>One Parquet part file of a staged partition, row groups of up to 512k rows, Snappy (Spark's default).</summary>
    sealed class PartWriter : IDisposable
    {
        readonly HashingStream _stream;
        readonly ParquetFileWriter _writer;
        public PartWriter(string path, TableDef layout)
        {
            _stream = new HashingStream(new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16));
            _writer = new ParquetFileWriter(_stream, layout.Columns.Select(ParquetColumn).ToArray(), LogicalTypeFactory.Default, Compression.Snappy);
        }
        public RowGroupWriter RowGroup() => _writer.AppendRowGroup();
        public string Close() { _writer.Close(); _stream.Flush(); return _stream.Hex(); }
        public void Dispose() { _writer.Dispose(); _stream.Dispose(); }
    }

    /// <summary>Partial scores of one party and partition (sample_id, class_index, partial_score), streamed in input order.</summary>
    public sealed class PartialScoreWriter : IPartialScoreWriter
    {
        readonly Staging _staging;
        readonly PartWriter _part;
        readonly int _outputs;
        readonly string[] _ids = new string[RowGroupRows];
        readonly int[] _classes = new int[RowGroupRows];
        readonly double[] _scores = new double[RowGroupRows];
        int _used;
        long _rows;

        public PartialScoreWriter(string root, string model, int version, string party, Partition p, int outputs)
        {
            Output = PartialScoresPartition(root, model, version, party, p);
            _outputs = outputs;
            _staging = new Staging(Output);
            try { _part = new PartWriter(Path.Combine(_staging.Dir, PartFile), PartialScoresTable(p.Hourly)); }
            catch { _staging.Dispose(); throw; }
        }

        public string Output { get; }

        public void Write(string id, double[][] scores, int r)
        {
            if (_used + _outputs > RowGroupRows) Flush();
            for (var c = 0; c < _outputs; c++)
            {
                _ids[_used] = id;
                _classes[_used] = c;
                _scores[_used++] = scores[c][r];
            }
            _rows++;
        }

        void Flush()
        {
            if (_used == 0) return;
            using (var rg = _part.RowGroup())
            {
                using (var w = rg.NextColumn().LogicalWriter<string>()) w.WriteBatch(_ids, 0, _used);
                using (var w = rg.NextColumn().LogicalWriter<int>()) w.WriteBatch(_classes, 0, _used);
                using (var w = rg.NextColumn().LogicalWriter<double>()) w.WriteBatch(_scores, 0, _used);
            }
            Array.Clear(_ids, 0, _used);
            _used = 0;
        }

        public PartialScoreManifest Complete(PartialScoreManifest template)
        {
            Flush();
            var sha = _part.Close();
            var manifest = template with
            {
                RowCount = _rows, Sha256 = sha, DataFile = PartFile, Outputs = _outputs,
                WrittenAt = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture),
            };
            File.WriteAllText(Path.Combine(_staging.Dir, ManifestName), JsonSerializer.Serialize(manifest, PartialScoreManifest.Json));
            _part.Dispose();
            _staging.Commit();
            return manifest;
        }

        public void Dispose()
        {
            _part.Dispose();
            _staging.Dispose();
        }
    }

    /// <summary>
    /// The manifests of model/version/partition under a Hive-layout output root (or its fed_partial_scores[_hourly]
    /// table folder), one per party folder; a manifest that disagrees with its folder names is refused.
    /// </summary>
    public static List<(string Path, PartialScoreManifest Manifest)> FindPartialScores(string root, string model, int version, Partition p)
    {
        var table = PartialScoresTable(p.Hourly).Name;
        var tableDir = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(root))) == table ? root : Path.Combine(root, table);
        var list = new List<(string, PartialScoreManifest)>();
        var versionDir = HiveLayout.PartitionPath(tableDir, ("model_id", model), ("version", version.ToString(CultureInfo.InvariantCulture)));
        if (!Directory.Exists(versionDir)) return list;
        foreach (var partyDir in Directory.EnumerateDirectories(versionDir, "party=*").Order(StringComparer.Ordinal))
        {
            var party = Path.GetFileName(partyDir)["party=".Length..];
            var dir = HiveLayout.PartitionPath(partyDir, p.Hourly ? [("dt", p.Dt), ("hour", p.HourText!)] : [("dt", p.Dt)]);
            var path = Path.Combine(dir, ManifestName);
            if (!File.Exists(path)) continue;
            var m = PartialScoreFiles.ReadManifest(path);
            if (m.ModelId != model || m.Version != version || m.Party != party || m.Dt != p.Dt || m.Hour != p.HourText)
                throw new BadInputException($"{path}: the manifest says model '{m.ModelId}' v{m.Version} party '{m.Party}' dt={m.Dt} hour={m.Hour ?? "-"}, its folder says otherwise; the file was moved");
            list.Add((path, m));
        }
        return list;
    }

    /// <summary>Reads a partial-score part file (long form: one row per sample and class) into a set, checking every row.</summary>
    public static PartialScoreSet ReadPartialScores(string dataPath, PartialScoreManifest m)
    {
        var rows = new LongFormScores(dataPath, m);
        try
        {
            using var file = new ParquetFileReader(dataPath);
            var schema = file.FileMetaData.Schema;
            rows.CheckColumns(Enumerable.Range(0, schema.NumColumns).Select(i => schema.Column(i).Name));
            for (var g = 0; g < file.FileMetaData.NumRowGroups; g++)
            {
                using var rg = file.RowGroup(g);
                var n = checked((int)rg.MetaData.NumRows);
                string[] ids; int[] cls; double[] scores;
                using (var r = rg.Column(0).LogicalReader<string>()) ids = r.ReadAll(n);
                using (var r = rg.Column(1).LogicalReader<int>()) cls = r.ReadAll(n);
                using (var r = rg.Column(2).LogicalReader<double>()) scores = r.ReadAll(n);
                for (var i = 0; i < n; i++) rows.Add(ids[i], cls[i], scores[i]);
            }
        }
        catch (ParquetException e) { throw new BadInputException($"{dataPath}: cannot read as Parquet: {e.Message}", e); }
        return rows.ToSet();
    }

    /// <summary>Writes a predictions partition (sample_id, predict_value, predicted_class, probabilities); returns its folder.</summary>
    public static string WritePredictions(string root, CombinedPredictions pred, Partition p)
    {
        using var staging = new Staging(PredictionsPartition(root, pred.Model.ModelId, pred.Model.Version, p));
        var layout = PredictionsTable(p.Hourly);
        if (!layout.Columns.Select(c => c.Name).SequenceEqual(["sample_id", "predict_value", "predicted_class", "probabilities"]))
            throw new FedFailureException($"{layout.Name}: unexpected columns {string.Join(", ", layout.Columns.Select(c => c.Name))}");
        using (var part = new PartWriter(Path.Combine(staging.Dir, PartFile), layout))
        {
            for (var start = 0; start < pred.Count || start == 0; start += RowGroupRows)
            {
                var n = Math.Min(RowGroupRows, pred.Count - start);
                using var rg = part.RowGroup();
                using (var w = rg.NextColumn().LogicalWriter<string>()) w.WriteBatch(pred.Ids, start, n);
                using (var w = rg.NextColumn().LogicalWriter<double>()) w.WriteBatch(pred.Values, start, n);
                using (var w = rg.NextColumn().LogicalWriter<string?>()) w.WriteBatch(Enumerable.Range(start, n).Select(pred.ClassLabel).ToArray());
                using (var w = rg.NextColumn().LogicalWriter<string?>())
                    w.WriteBatch(Enumerable.Range(start, n).Select(r => pred.Probabilities is null ? null : pred.ProbabilitiesJson(r)).ToArray());
                if (pred.Count == 0) break;
            }
            part.Close();
        }
        return staging.Commit();
    }

    /// <summary>
    /// HiveQL/Spark SQL that mounts Fed's Parquet output at <paramref name="location"/>: one CREATE EXTERNAL TABLE ...
    /// STORED AS PARQUET LOCATION per table, then MSCK REPAIR TABLE, and an ALTER TABLE ... ADD PARTITION for every
    /// partition folder already there when the location is a local folder (for catalogs without MSCK).
    /// </summary>
    public static List<string> MountStatements(string location)
    {
        var loc = Location(location);
        var d = SqlDialect.Hive;
        var list = new List<string>();
        foreach (var t in new[] { PartialScoresTable(false), PartialScoresTable(true), PredictionsTable(false), PredictionsTable(true) })
        {
            // The warehouse DDL of the layout, made external and Parquet at the location.
            var ddl = d.CreateTable(t);
            const string create = "CREATE TABLE IF NOT EXISTS ", orc = "STORED AS ORC";
            if (!ddl.StartsWith(create, StringComparison.Ordinal) || !ddl.EndsWith(orc, StringComparison.Ordinal))
                throw new FedFailureException($"unexpected Hive DDL for {t.Name}: {ddl}");
            list.Add($"CREATE EXTERNAL TABLE IF NOT EXISTS {ddl[create.Length..^orc.Length]}STORED AS PARQUET\nLOCATION '{loc}/{t.Name}'");
            list.Add($"MSCK REPAIR TABLE {d.Id(t.Name)}");
            var dir = Path.Combine(location, t.Name);
            if (location.Contains("://") || !Directory.Exists(dir)) continue;
            foreach (var part in PartitionFolders(dir, t.PartitionBy.Count))
            {
                var spec = part.Select((v, i) => $"{d.Id(t.PartitionBy[i].Name)} = '{HiveLayout.Value(v, t.PartitionBy[i].Name)}'");
                var rel = string.Join("/", part.Select((v, i) => $"{t.PartitionBy[i].Name}={v}"));
                list.Add($"ALTER TABLE {d.Id(t.Name)} ADD IF NOT EXISTS PARTITION ({string.Join(", ", spec)}) LOCATION '{loc}/{t.Name}/{rel}'");
            }
        }
        return list;
    }

    static IEnumerable<string[]> PartitionFolders(string dir, int depth)
    {
        if (depth == 0) { yield return []; yield break; }
        foreach (var sub in Directory.EnumerateDirectories(dir).Order(StringComparer.Ordinal))
        {
            var name = Path.GetFileName(sub);
            var eq = name.IndexOf('=');
            if (name[0] is '.' or '_' || eq < 0) continue;
            foreach (var rest in PartitionFolders(sub, depth - 1)) yield return [name[(eq + 1)..], .. rest];
        }
    }

    /// <summary>A location literal: a path or URI of safe characters only (no quote, backslash or space can end the literal).</summary>
    static string Location(string location)
    {
        var loc = location.TrimEnd('/');
        if (loc.Length == 0 || loc.Any(ch => !(char.IsAsciiLetterOrDigit(ch) || "/._-:=+@%~".Contains(ch))))
            throw new BadInputException($"--location '{location}': use a path or URI of letters, digits and / . _ - : = + @ % ~ only");
        return loc;
    }
}
