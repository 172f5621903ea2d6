using System.Globalization;
using System.Text;
using System.Text.Json;
using Fed.Core;
using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.Warehouse;

namespace Fed.SparkPredict;

/// <summary>A sample that some party did not score (absent from its data, or rejected for a missing feature): never combined.</summary>
public sealed record MissingSample(string SampleId, string[] MissingParties);

/// <summary>Combined predictions, columnar, in the guest's row order.</summary>
public sealed class CombinedPredictions
{
    public required ModelSignature Model { get; init; }
    public required string[] Ids { get; init; }
    public required double[] Values { get; init; }
    public int[]? PredictedClass { get; init; }
    /// <summary>Softmax: Probabilities[c][r].</summary>
    public double[][]? Probabilities { get; init; }
    public required List<MissingSample> Missing { get; init; }
    public Dictionary<string, long> RowsByParty { get; init; } = [];
    /// <summary>Transfer-learning models only: per row, the parties whose part was computed from their completion model
    /// (the customer is not theirs), joined by ';'; "" when every part is a party's own. Null for other models.</summary>
    public string[]? Completed { get; init; }

    public int Count => Ids.Length;
    public string? ClassLabel(int r) => PartialModel.HasClasses(Model.Kind) ? Model.Classes[PredictedClass![r]] : null;

    public string ProbabilitiesJson(int r)
    {
        if (Probabilities is null) return "";
        var sb = new StringBuilder("[");
        for (var c = 0; c < Probabilities.Length; c++)
        {
            if (c > 0) sb.Append(',');
            sb.Append(Probabilities[c][r].ToString("R", CultureInfo.InvariantCulture));
        }
        return sb.Append(']').ToString();
    }
}

/// <summary>
/// The join and combine of every path (files, warehouse, 'predict local'): inner join on sample id over all the
/// model's parties, sums through <see cref="Combiner.CombineBatch"/> in model party order. Samples missing at some
/// party are listed, never scored.
/// </summary>
public static class CombineCore
{
    /// <param name="expectMasked">The model version's masking policy: a set of the other kind is refused (fails closed).</param>
    public static CombinedPredictions Combine(ModelSignature sig, IReadOnlyList<PartialScoreSet> sets, ISet<string>? only = null, bool? expectMasked = null)
    {
        var byParty = new Dictionary<string, PartialScoreSet>(StringComparer.Ordinal);
        foreach (var s in sets)
        {
            if (Array.IndexOf(sig.Parties, s.Party) < 0)
                throw new BadInputException($"partial scores from party '{s.Party}', which model '{sig.ModelId}' v{sig.Version} does not have (parties: {string.Join(", ", sig.Parties)})");
            if (!byParty.TryAdd(s.Party, s))
                throw new BadInputException($"two partial-score sets from party '{s.Party}' for model '{sig.ModelId}' v{sig.Version}; give one per party");
            if (s.Outputs != sig.OutputCount)
                throw new BadInputException($"party '{s.Party}' sent {s.Outputs} score(s) per sample; model '{sig.ModelId}' v{sig.Version} has {sig.OutputCount} output(s)");
        }
        var absent = sig.Parties.Where(p => !byParty.ContainsKey(p)).ToArray();
        if (absent.Length > 0) throw new IncompletePartiesException(sig.ModelId, sig.Version, absent);

        var ordered = sig.Parties.Select(p => byParty[p]).ToArray();
        var index = ordered.Select(s =>
        {
            var d = new Dictionary<string, int>(s.Count, StringComparer.Ordinal);
            for (var i = 0; i < s.Count; i++)
                if (!d.TryAdd(s.Ids[i], i)) throw new BadInputException($"party '{s.Party}': duplicate sample id '{s.Ids[i]}'; a party sends one partial score per sample");
            return d;
        }).ToArray();

        var rows = new List<int[]>();
        var ids = new List<string>();
        var missing = new List<MissingSample>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var set in ordered)
            foreach (var id in set.Ids)
            {
                if (!seen.Add(id) || only != null && !only.Contains(id)) continue;
                var at = new int[ordered.Length];
                List<string>? gone = null;
                for (var p = 0; p < ordered.Length; p++)
                    if (!index[p].TryGetValue(id, out at[p])) (gone ??= []).Add(ordered[p].Party);
                if (gone != null) { missing.Add(new MissingSample(id, [.. gone])); continue; }
                ids.Add(id);
                rows.Add(at);
            }

        var n = ids.Count;
        var outputs = sig.OutputCount;
        var values = new double[n];
        int[]? cls = PartialModel.HasClasses(sig.Kind) ? new int[n] : null;
        double[][]? probs = PartialModel.HasClasses(sig.Kind) ? Enumerable.Range(0, outputs).Select(_ => new double[n]).ToArray() : null;
        var maskedSets = ordered.Count(s => s.Masked != null);
        if (maskedSets > 0 && maskedSets < ordered.Length)
            throw new BadInputException($"model '{sig.ModelId}' v{sig.Version}: parties {string.Join(", ", ordered.Where(s => s.Masked == null).Select(s => s.Party))} sent clear partial scores " +
                "while the others sent masked ones; every party of a masked run sends masked values");
        if (expectMasked is { } want && want != (maskedSets > 0))
            throw new BadInputException(want
                ? $"model '{sig.ModelId}' v{sig.Version} is masked but the partial scores are in the clear; the initiator refuses them (score again with masking)"
                : $"model '{sig.ModelId}' v{sig.Version} is not masked but the partial scores are masked");
        if (maskedSets > 0)
        {
            var ring = ordered.Select((s, p) => Gather(s.Masked!, rows, p)).ToList();
            Combiner.CombineMaskedBatch(sig, ring, n, values, cls, probs);
            return new CombinedPredictions
            {
                Model = sig, Ids = [.. ids], Values = values, PredictedClass = cls, Probabilities = probs, Missing = missing,
                RowsByParty = ordered.ToDictionary(s => s.Party, s => (long)s.Count),
            };
        }
        var partials = ordered.Select((s, p) => Gather(s.Scores, rows, p)).ToList();
        Combiner.CombineBatch(sig, partials, n, values, cls, probs);
        return new CombinedPredictions
        {
            Model = sig, Ids = [.. ids], Values = values, PredictedClass = cls, Probabilities = probs, Missing = missing,
            RowsByParty = ordered.ToDictionary(s => s.Party, s => (long)s.Count),
        };
    }

    /// <summary>Party p's values (one list per output) in joined row order.</summary>
    static T[][] Gather<T>(List<T>[] byOutput, List<int[]> rows, int p)
    {
        var cols = new T[byOutput.Length][];
        for (var c = 0; c < cols.Length; c++)
        {
            cols[c] = new T[rows.Count];
            var src = byOutput[c];
            for (var r = 0; r < rows.Count; r++) cols[c][r] = src[rows[r][p]];
        }
        return cols;
    }

    /// <summary>The model's signature from the registry: the given version or the active one.</summary>
    public static ModelSignature Signature(IWarehouse w, string modelId, int? version)
    {
        var rows = new ModelRegistry(w).List(Identifiers.ModelId(modelId));
        if (rows.Count == 0) throw new UnknownModelException($"unknown model id '{modelId}' in {w.Description}: export it with 'fed convert' first");
        var e = version is { } v
            ? rows.FirstOrDefault(r => r.Version == v) ?? throw new UnknownModelException($"model '{modelId}' has no version {v} in {w.Description}; versions: {string.Join(", ", rows.Select(r => r.Version).Distinct())}")
            : rows.FirstOrDefault(r => r.IsActive) ?? throw new UnknownModelException($"model '{modelId}' has no active version in {w.Description}; give --version or activate one");
        if (!PartialModel.TryParseKind(e.Kind, out var kind)) throw new FedFailureException($"model '{modelId}' v{e.Version}: unknown kind '{e.Kind}' in the registry");
        return new ModelSignature(e.ModelId, e.Version, kind, e.Classes, e.Parties);
    }
}

/// <summary>
/// The initiator's combine job. Inputs: each party's partial-score files (data + manifest) in a directory, or the
/// shared warehouse table fed_partial_scores[_hourly]. Output: fed_predictions[_hourly] (partition replaced in one
/// transaction) and a coverage report (JSON, temp-then-rename). Any bad input stops it before anything is written.
/// Hourly: each party's newest partial score per sample over hours &lt;= H of the day is used, and only the samples
/// that some party rescored at hour H are combined and written.
/// </summary>
public static class CombineJob
{
    public sealed record Result(CombinedPredictions Predictions, string Table, string ReportPath, Dictionary<string, object?> Report);

    /// <param name="parquetOut">Write the predictions as a Hive-layout Parquet partition under this folder instead of the warehouse table.</param>
    public static Result Run(IWarehouse w, string modelId, int? version, Partition p, string input, string? reportPath, Action<string>? progress = null,
        string? parquetOut = null)
    {
        var sig = CombineCore.Signature(w, modelId, version);
        var fromWarehouse = input.Equals("warehouse", StringComparison.OrdinalIgnoreCase);
        var policy = new MaskingRegistry(w).Policy(sig);
        var latest = sig.Parties.ToDictionary(x => x, _ => new Dictionary<string, double[]>(StringComparer.Ordinal));
        var touched = new HashSet<string>(StringComparer.Ordinal);
        var rejected = new Dictionary<string, object>();
        List<PartialScoreSet> sets;
        if (policy.Enabled)
        {
            if (fromWarehouse) throw new BadInputException($"model '{sig.ModelId}' v{sig.Version} is masked: its partial scores travel as masked files; give --input DIR");
            sets = LoadMaskedFiles(input, sig, p, rejected, RegistryChecksums(w, sig));
        }
        else
        {
            if (fromWarehouse) LoadWarehouse(w, sig, p, latest, touched);
            else LoadFiles(input, sig, p, latest, touched, rejected, RegistryChecksums(w, sig));
            sets = sig.Parties.Select(party =>
            {
                var s = new PartialScoreSet(party, sig.OutputCount);
                foreach (var (id, scores) in latest[party]) s.Add(id, scores);
                return s;
            }).ToList();
        }
        progress?.Invoke($"  loaded partial scores: {string.Join(", ", sets.Select(s => $"{s.Party} {s.Count:N0}"))}");
        var combined = CombineCore.Combine(sig, sets, p.Hourly ? touched : null, expectMasked: policy.Enabled);

        // The report (and the missing-id list) are staged first: an unwritable report path fails before the table is touched.
        var path = reportPath ?? Path.Combine(fromWarehouse ? "." : input, $"fed_coverage_{sig.ModelId}_v{sig.Version}_{p.FileTag}.json");
        using var outputs = new StagedOutputs();
        var reportTemp = outputs.Stage(path, "--report");
        var table = parquetOut is null ? PredictionsTable.Write(w, combined, p) : HiveParquet.WritePredictions(parquetOut, combined, p);
        var report = new Dictionary<string, object?>
        {
            ["model_id"] = sig.ModelId, ["version"] = sig.Version, ["dt"] = p.Dt, ["hour"] = p.HourText,
            ["input"] = fromWarehouse ? $"{w.Description} {Schema.PartialScores(p.Hourly).Name}" : Path.GetFullPath(input),
            ["rows_by_party"] = combined.RowsByParty, ["predictions"] = combined.Count, ["table"] = table,
            ["rejected_by_party"] = rejected,
        };
        CoverageReport.Write(outputs, path, reportTemp, report, combined.Missing);
        outputs.Commit();
        return new Result(combined, table, Path.GetFullPath(path), report);
    }

    /// <summary>
    /// The combine on a cluster: the <see cref="CombineSql"/> script, written to <paramref name="emitPath"/> (if given) and
    /// run by spark-sql (<paramref name="engine"/> "spark-sql") or by the warehouse itself (a Hive/Spark Thrift ODBC
    /// source, engine "sql"); the counts are read back. Engine "emit" only writes the script.
    /// </summary>
    public static Dictionary<string, object?> RunSql(IWarehouse w, string modelId, int? version, Partition p, string engine, string? emitPath,
        Action<string>? progress = null, string? sparkSql = null)
    {
        var sig = CombineCore.Signature(w, modelId, version);
        if (new MaskingRegistry(w).Policy(sig) is { Enabled: true } policy)
            throw new BadInputException($"model '{sig.ModelId}' v{sig.Version} is masked ({policy.Describe(sig)}): combine its masked files with --engine fed --input DIR (masked SQL is not generated yet)");
        var gen = new CombineSql(sig, p);
        string? path = null;
        if (emitPath != null || engine == "spark-sql")
        {
            path = Path.GetFullPath(emitPath ?? Path.Combine(Path.GetTempPath(), $"fed-combine-{sig.ModelId}-v{sig.Version}-{p.FileTag}.sql"));
            // Published before spark-sql runs it: spark-sql reads the script from its final path.
            using var script = new StagedOutputs();
            File.WriteAllText(script.Stage(path, "--emit-sql"), gen.Script());
            script.Commit();
        }
        var report = new Dictionary<string, object?> { ["model_id"] = sig.ModelId, ["version"] = sig.Version, ["dt"] = p.Dt, ["hour"] = p.HourText, ["engine"] = engine, ["emitted_sql"] = path, ["table"] = gen.PredictionsTable };
        (long Predictions, Dictionary<string, long> RowsByParty) counts;
        switch (engine)
        {
            case "emit":
                return report;
            case "spark-sql":
                var exe = sparkSql ?? (Environment.GetEnvironmentVariable("SPARK_HOME") is { Length: > 0 } home ? Path.Combine(home, "bin", "spark-sql")
                    : throw new FedFailureException($"--engine spark-sql needs SPARK_HOME (a Spark installation with bin/spark-sql); the Spark SQL was written to {path}: run it with 'spark-sql -S -f {path}' on the cluster"));
                if (!File.Exists(exe)) throw new FedFailureException($"no spark-sql at {exe}");
                var (code, stdout, stderr) = SparkSql.Run(exe, path!, progress);
                if (code != 0) throw new FedFailureException($"spark-sql -S -f {path} exited {code}: {SparkSql.ErrorLine(stderr, stdout)}");
                counts = gen.ParseCounts(stdout);
                break;
            case "sql":
                if (w.Dialect.Name != "hive") throw new BadInputException($"--engine sql runs the HiveQL combine on a Hive or Spark Thrift ODBC warehouse (odbc:dialect=hive;...), not {w.Description}; without --engine Fed combines itself");
                foreach (var st in gen.Statements().Take(2)) w.Execute(st);
                using (var r = w.Query(gen.Counts()))
                {
                    if (!r.Read()) throw new FedFailureException($"{w.Description}: the combine counts query returned no row");
                    counts = (r.GetInt64(1), sig.Parties.Select((party, i) => (party, r.GetInt64(2 + i))).ToDictionary(x => x.party, x => x.Item2));
                }
                break;
            default:
                throw new BadInputException($"--engine '{engine}': expected fed, sql, spark-sql or emit");
        }
        report["predictions"] = counts.Predictions;
        report["rows_by_party"] = counts.RowsByParty;
        return report;
    }

    /// <summary>The checksum the registry holds for each party of this model version (parties this warehouse knows).</summary>
    static Dictionary<string, string> RegistryChecksums(IWarehouse w, ModelSignature sig) =>
        new ModelRegistry(w).List(sig.ModelId).Where(e => e.Version == sig.Version).GroupBy(e => e.Party).ToDictionary(g => g.Key, g => g.First().Checksum);

    /// <summary>Provenance: a partial-score file must say which model file scored it, and that must be the registry's.</summary>
    static void CheckProvenance(string path, PartialScoreManifest m, ModelSignature sig, Dictionary<string, string> checksums)
    {
        if (string.IsNullOrEmpty(m.ModelChecksum))
            throw new ProvenanceException($"{path}: party '{m.Party}': the manifest carries no model_checksum, so it cannot be tied to model '{sig.ModelId}' v{sig.Version}; re-run 'fed predict batch' for this party");
        if (checksums.TryGetValue(m.Party, out var expected) && !string.Equals(expected, m.ModelChecksum, StringComparison.Ordinal))
            throw new ProvenanceException($"{path}: party '{m.Party}' scored with model checksum {m.ModelChecksum}, but the registry holds {expected} for '{sig.ModelId}' v{sig.Version} party '{m.Party}'; " +
                "the partial scores come from another model file: re-export the right model or re-score this party");
    }

    static void LoadFiles(string dir, ModelSignature sig, Partition p, Dictionary<string, Dictionary<string, double[]>> latest,
        HashSet<string> touched, Dictionary<string, object> rejected, Dictionary<string, string> checksums)
    {
        // Hourly: every hour <= H of the day (newest wins); daily: the day's file.
        var hours = p.Hourly ? Enumerable.Range(0, p.Hour!.Value + 1).Select(h => (int?)h).ToList() : [null];
        foreach (var h in hours)
        {
            var part = new Partition(p.Dt, h);
            var found = PartialScoreFiles.Find(dir, sig.ModelId, sig.Version, part);
            var isTarget = h == p.Hour;
            foreach (var g in found.GroupBy(f => f.Manifest.Party))
                if (g.Count() > 1) throw new BadInputException($"{dir}: {g.Count()} manifests from party '{g.Key}' for {part}: {string.Join(", ", g.Select(f => f.Path))}");
            if (isTarget)
            {
                var absent = sig.Parties.Where(x => found.All(f => f.Manifest.Party != x)).ToArray();
                if (absent.Length > 0)
                    throw new BadInputException($"{dir}: no partial scores from part{(absent.Length == 1 ? "y" : "ies")} {string.Join(", ", absent.Select(a => $"'{a}'"))} " +
                        $"for model '{sig.ModelId}' v{sig.Version} {part}; every party must send its manifest and data file");
            }
            foreach (var (path, m) in found)
            {
                if (!latest.TryGetValue(m.Party, out var dict))
                    throw new BadInputException($"{path}: party '{m.Party}' is not a party of model '{sig.ModelId}' v{sig.Version} ({string.Join(", ", sig.Parties)})");
                if (m.Outputs != sig.OutputCount)
                    throw new BadInputException($"{path}: {m.Outputs} output(s), model '{sig.ModelId}' v{sig.Version} has {sig.OutputCount}");
                CheckProvenance(path, m, sig, checksums);
                if (m.Masking != null)
                    throw new BadInputException($"{path}: party '{m.Party}' sent masked partial scores, but model '{sig.ModelId}' v{sig.Version} is not masked here ('fed model masking')");
                var set = PartialScoreFiles.Read(path, m);
                if (set.Count == 0 && !p.Hourly)
                    throw new BadInputException($"{path}: empty partition: party '{m.Party}' sent no partial scores for {part}; refusing to write an empty prediction set");
                for (var i = 0; i < set.Count; i++)
                {
                    var scores = new double[set.Outputs];
                    for (var c = 0; c < set.Outputs; c++) scores[c] = set.Scores[c][i];
                    dict[set.Ids[i]] = scores;
                    if (isTarget) touched.Add(set.Ids[i]);
                }
                if (isTarget && m.Rejected is { Count: > 0 }) rejected[m.Party] = m.Rejected;
            }
        }
    }

    /// <summary>A masked daily combine: one manifest per party, all from the same run (else the masks do not cancel).</summary>
    static List<PartialScoreSet> LoadMaskedFiles(string dir, ModelSignature sig, Partition p, Dictionary<string, object> rejected, Dictionary<string, string> checksums)
    {
        if (p.Hourly) throw new BadInputException($"model '{sig.ModelId}' v{sig.Version} is masked: masked runs are daily only (docs/privacy.md)");
        var found = PartialScoreFiles.Find(dir, sig.ModelId, sig.Version, p);
        foreach (var g in found.GroupBy(f => f.Manifest.Party))
            if (g.Count() > 1) throw new BadInputException($"{dir}: {g.Count()} manifests from party '{g.Key}' for {p}: {string.Join(", ", g.Select(f => f.Path))}");
        var absent = sig.Parties.Where(x => found.All(f => f.Manifest.Party != x)).ToArray();
        if (absent.Length > 0) throw new IncompletePartiesException(sig.ModelId, sig.Version, absent);
        var clear = found.Where(f => f.Manifest.Masking is null).Select(f => f.Manifest.Party).ToList();
        if (clear.Count > 0)
            throw new BadInputException($"model '{sig.ModelId}' v{sig.Version} is masked but {string.Join(", ", clear.Select(c => $"'{c}'"))} sent clear partial scores; the initiator refuses them (score again with masking)");
        var runs = found.Select(f => f.Manifest.Masking!.RunId).Distinct().ToList();
        if (runs.Count > 1)
            throw new BadInputException($"{dir}: the parties' masked files come from different runs ({string.Join(", ", found.Select(f => $"{f.Manifest.Party}: {f.Manifest.Masking!.RunId}"))}); " +
                "masks cancel only within one run: every party scores the partition with the same --run-id");
        var sets = new List<PartialScoreSet>();
        foreach (var (path, m) in found)
        {
            if (Array.IndexOf(sig.Parties, m.Party) < 0)
                throw new BadInputException($"{path}: party '{m.Party}' is not a party of model '{sig.ModelId}' v{sig.Version} ({string.Join(", ", sig.Parties)})");
            if (m.Outputs != sig.OutputCount) throw new BadInputException($"{path}: {m.Outputs} output(s), model '{sig.ModelId}' v{sig.Version} has {sig.OutputCount}");
            CheckProvenance(path, m, sig, checksums);
            var set = PartialScoreFiles.Read(path, m);
            if (set.Count == 0) throw new BadInputException($"{path}: empty partition: party '{m.Party}' sent no partial scores for {p}; refusing to write an empty prediction set");
            if (m.Rejected is { Count: > 0 }) rejected[m.Party] = m.Rejected;
            sets.Add(set);
        }
        return sets;
    }

    static void LoadWarehouse(IWarehouse w, ModelSignature sig, Partition p, Dictionary<string, Dictionary<string, double[]>> latest, HashSet<string> touched)
    {
        var t = Schema.PartialScores(p.Hourly).Name;
        if (!w.TableExists(t)) throw new BadInputException($"empty partition: no table {t} in {w.Description}; run 'fed predict batch' for every party first");
        var d = w.Dialect;
        using var r = p.Hourly
            ? w.Query($"SELECT party, sample_id, class_index, partial_score, hour FROM {d.Id(t)} WHERE model_id = ? AND version = ? AND dt = ? AND hour <= ? ORDER BY hour", sig.ModelId, sig.Version, p.Dt, p.HourText)
            : w.Query($"SELECT party, sample_id, class_index, partial_score, dt FROM {d.Id(t)} WHERE model_id = ? AND version = ? AND dt = ?", sig.ModelId, sig.Version, p.Dt);
        var stamp = new Dictionary<(string, string), string>();
        var counts = sig.Parties.ToDictionary(x => x, _ => 0L);
        while (r.Read())
        {
            var party = r.GetString(0);
            var id = r.GetString(1);
            var c = (int)r.GetInt64(2);
            var hour = r.GetString(4);
            if (!latest.TryGetValue(party, out var dict))
                throw new BadInputException($"{t}: partial scores from party '{party}', which model '{sig.ModelId}' v{sig.Version} does not have");
            if (c < 0 || c >= sig.OutputCount) throw new BadInputException($"{t}: party '{party}' sample '{id}': class_index {c} out of range");
            if (!dict.TryGetValue(id, out var scores) || stamp[(party, id)] != hour)
            {
                dict[id] = scores = Enumerable.Repeat(double.NaN, sig.OutputCount).ToArray();
                stamp[(party, id)] = hour;
            }
            if (!double.IsNaN(scores[c]))
                throw new BadInputException($"{t}: duplicate sample id '{id}' from party '{party}' ({p}); a party writes one partial score per sample");
            scores[c] = r.GetDouble(3);
            if (!p.Hourly || hour == p.HourText) { touched.Add(id); counts[party]++; }
        }
        foreach (var (party, dict) in latest)
        {
            foreach (var (id, s) in dict)
                if (s.Any(double.IsNaN)) throw new BadInputException($"{t}: party '{party}' sample '{id}' lacks some class scores");
        }
        if (!p.Hourly)
        {
            var empty = counts.Where(kv => kv.Value == 0).Select(kv => kv.Key).ToList();
            if (empty.Count > 0)
                throw new BadInputException($"empty partition: {t} has no partial scores from {string.Join(", ", empty.Select(e => $"'{e}'"))} for model '{sig.ModelId}' v{sig.Version} {p}");
        }
    }
}

/// <summary>Writes fed_predictions[_hourly] (Schema.Predictions): the partition's rows of this model version replaced in one transaction.</summary>
public static class PredictionsTable
{
    public static string Write(IWarehouse w, CombinedPredictions pred, Partition p)
    {
        if (!w.Dialect.SupportsTransactions)
            throw new BadInputException($"{w.Dialect.Name} has no transactions: write predictions to a SQLite or PostgreSQL warehouse");
        var t = Schema.Predictions(p.Hourly);
        var d = w.Dialect;
        w.Execute(d.CreateTable(t));
        var ins = $"INSERT INTO {d.Id(t.Name)} (model_id, version, sample_id, predict_value, predicted_class, probabilities, dt{(p.Hourly ? ", hour" : "")}) VALUES (?, ?, ?, ?, ?, ?, ?{(p.Hourly ? ", ?" : "")})";
        using var tx = w.BeginTransaction();
        if (p.Hourly) w.Execute($"DELETE FROM {d.Id(t.Name)} WHERE model_id = ? AND version = ? AND dt = ? AND hour = ?", pred.Model.ModelId, pred.Model.Version, p.Dt, p.HourText);
        else w.Execute($"DELETE FROM {d.Id(t.Name)} WHERE model_id = ? AND version = ? AND dt = ?", pred.Model.ModelId, pred.Model.Version, p.Dt);
        var args = new object?[p.Hourly ? 8 : 7];
        args[0] = pred.Model.ModelId; args[1] = pred.Model.Version; args[6] = p.Dt;
        if (p.Hourly) args[7] = p.HourText;
        for (var r = 0; r < pred.Count; r++)
        {
            args[2] = pred.Ids[r];
            args[3] = pred.Values[r];
            args[4] = pred.ClassLabel(r);
            args[5] = pred.Probabilities is null ? null : pred.ProbabilitiesJson(r);
            w.Execute(ins, args);
        }
        tx.Commit();
        return t.Name;
    }
}
