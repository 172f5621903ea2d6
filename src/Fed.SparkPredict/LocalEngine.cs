using System.Collections.Concurrent;
using System.Diagnostics;
using Fed.Core;
using Fed.Core.Data;
using Fed.Core.Scoring;
using Fed.Warehouse;

namespace Fed.SparkPredict;

/// <summary>Statistics of one scoring run, whatever the engine.</summary>
public sealed class ScoringRunResult
{
    public required string Engine { get; init; }
    public long RowsScored { get; set; }
    public long RowsRejected { get; set; }
    public long RowsUnchanged { get; set; }
    /// <summary>With --ids: agreed ids that had no feature row to score (null without --ids).</summary>
    public long? IdsNotFound { get; set; }
    public FeatureCoverage? Coverage { get; set; }
    public List<RejectedRow> Rejected { get; } = [];
    public string? Output { get; set; }
    public double ReadSeconds { get; set; }
    public double ScoreSeconds { get; set; }
    public double WriteSeconds { get; set; }
    public double TotalSeconds { get; set; }

    public Dictionary<string, object?> ToReport() => new()
    {
        ["engine"] = Engine, ["rows_scored"] = RowsScored, ["rows_rejected"] = RowsRejected, ["rows_unchanged"] = RowsUnchanged, ["ids_not_found"] = IdsNotFound,
        ["coverage"] = Coverage?.ToReport(), ["rejected"] = Rejected.Take(MaxListed).ToList(), ["rejected_listed"] = Math.Min(Rejected.Count, MaxListed),
        ["output"] = Output, ["seconds"] = new { total = TotalSeconds, read = ReadSeconds, score = ScoreSeconds, write = WriteSeconds },
    };

    public const int MaxListed = 100_000;
}

/// <summary>
/// The embedded engine: streams a feature source in bounded memory as columnar <see cref="FeatureBatch"/> chunks,
/// scores the chunks in parallel with the one <see cref="PartialScorer"/> (one reader, N scoring workers, results
/// handed to the sink in input order), so the output is the same whatever the parallelism.
/// Memory: (2 x workers + 1) chunks of batchSize x features doubles. Parquet output goes through
/// <see cref="RunUnordered"/> instead: every worker writes its own part file, same rows and bits, no order.
/// </summary>
public static class LocalEngine
{
    public delegate void Sink(FeatureBatch batch, double[][] scores, int[] missingFeature);

    sealed class Work(int features, int outputs, int size)
    {
        public readonly FeatureBatch Batch = new(features, size);
        public readonly double[][] Scores = Enumerable.Range(0, outputs).Select(_ => new double[size]).ToArray();
        public readonly int[] Missing = new int[size];
        public long Seq;
        // RunParts: the row group, whether this is its end marker, and the worker's pool it returns to.
        public int Part;
        public bool Last;
        public BlockingCollection<Work>? Pool;
    }

    public static FeatureCoverage Run(PartialScorer scorer, IFeatureSource source, Sink sink, ScoringRunResult stats,
        int batchSize = 16_384, int workers = 0, Action<long>? progress = null)
    {
        var model = scorer.Model;
        workers = workers > 0 ? workers : Math.Max(1, Environment.ProcessorCount);
        if (source is IPartitionedFeatureSource parts && workers > 1) return RunParts(scorer, parts, sink, stats, batchSize, workers, progress);
        var total = Stopwatch.StartNew();
        var free = new BlockingCollection<Work>();
        for (var i = 0; i < 2 * workers + 1; i++) free.Add(new Work(model.FeatureCount, model.OutputCount, batchSize));
        var toScore = new BlockingCollection<Work>(2 * workers + 1);
        var done = new BlockingCollection<Work>();
        using var cts = new CancellationTokenSource();
        var ct = cts.Token;
        var coverages = Enumerable.Range(0, workers).Select(_ => new FeatureCoverage(model.Features)).ToArray();
        long readTicks = 0, scoreTicks = 0;

        var reader = Task.Run(() =>
        {
            try
            {
                for (long seq = 0; ; seq++)
                {
                    var w = free.Take(ct);
                    var t0 = Stopwatch.GetTimestamp();
                    var more = source.ReadBatch(w.Batch);
                    Interlocked.Add(ref readTicks, Stopwatch.GetTimestamp() - t0);
                    if (!more) break;
                    w.Seq = seq;
                    toScore.Add(w, ct);
                }
            }
            finally { toScore.CompleteAdding(); }
        }, ct);
        var scorers = Enumerable.Range(0, workers).Select(i => Task.Run(() =>
        {
            foreach (var w in toScore.GetConsumingEnumerable(ct))
            {
                var t0 = Stopwatch.GetTimestamp();
                scorer.ScoreBatch(w.Batch.Columns, w.Batch.Count, w.Scores, w.Missing, coverages[i]);
                Interlocked.Add(ref scoreTicks, Stopwatch.GetTimestamp() - t0);
                done.Add(w, ct);
            }
        }, ct)).ToArray();
        var closer = Task.WhenAll(scorers.Append(reader)).ContinueWith(_ => done.CompleteAdding(), TaskScheduler.Default);

        var pending = new Dictionary<long, Work>();
        long next = 0, rows = 0;
        var writeWatch = new Stopwatch();
        try
        {
            foreach (var w in done.GetConsumingEnumerable(ct))
            {
                pending[w.Seq] = w;
                while (pending.Remove(next, out var item))
                {
                    writeWatch.Start();
                    sink(item.Batch, item.Scores, item.Missing);
                    writeWatch.Stop();
                    rows += item.Batch.Count;
                    next++;
                    free.Add(item);
                    progress?.Invoke(rows);
                }
            }
        }
        catch
        {
            cts.Cancel();
            try { closer.Wait(); } catch { /* the first error is the one to report */ }
            throw;
        }
        closer.Wait();
        return Summarize(model, scorers.Append(reader), coverages, stats, readTicks, scoreTicks / workers, writeWatch.Elapsed, total);
    }

    /// <summary>
    /// Like <see cref="Run"/> for a sink that takes batches in any order from several workers at once, each worker through
    /// a lane of its own (<paramref name="lanes"/>(worker) is called once per worker, on that worker's thread). A partitioned
    /// source (Parquet row groups) is read, scored and written by every worker in parallel, with one batch of buffers per
    /// worker and no ordering step; any other source runs as <see cref="Run"/> into lane 0. The set of rows written and
    /// their bits are the same whatever the parallelism; which lane holds a row is not.
    /// </summary>
    public static FeatureCoverage RunUnordered(PartialScorer scorer, IFeatureSource source, Func<int, Sink> lanes, ScoringRunResult stats,
        int batchSize = 16_384, int workers = 0, Action<long>? progress = null)
    {
        workers = workers > 0 ? workers : Math.Max(1, Environment.ProcessorCount);
        if (source is not IPartitionedFeatureSource parts || workers == 1 || parts.PartCount < 2)
            return Run(scorer, source, lanes(0), stats, batchSize, workers, progress);
        var model = scorer.Model;
        var total = Stopwatch.StartNew();
        using var cts = new CancellationTokenSource();
        var coverages = Enumerable.Range(0, workers).Select(_ => new FeatureCoverage(model.Features)).ToArray();
        long readTicks = 0, scoreTicks = 0, writeTicks = 0, rows = 0;
        var nextPart = -1;
        var tasks = Enumerable.Range(0, workers).Select(i => Task.Run(() =>
        {
            try
            {
                var sink = lanes(i);
                var w = new Work(model.FeatureCount, model.OutputCount, batchSize);
                for (int part; !cts.IsCancellationRequested && (part = Interlocked.Increment(ref nextPart)) < parts.PartCount;)
                {
                    using var src = parts.OpenPart(part);
                    while (!cts.IsCancellationRequested)
                    {
                        var t0 = Stopwatch.GetTimestamp();
                        if (!src.ReadBatch(w.Batch)) break;
                        var t1 = Stopwatch.GetTimestamp();
                        scorer.ScoreBatch(w.Batch.Columns, w.Batch.Count, w.Scores, w.Missing, coverages[i]);
                        var t2 = Stopwatch.GetTimestamp();
                        sink(w.Batch, w.Scores, w.Missing);
                        Interlocked.Add(ref readTicks, t1 - t0);
                        Interlocked.Add(ref scoreTicks, t2 - t1);
                        Interlocked.Add(ref writeTicks, Stopwatch.GetTimestamp() - t2);
                        progress?.Invoke(Interlocked.Add(ref rows, w.Batch.Count));
                    }
                }
            }
            catch { cts.Cancel(); throw; } // the others stop at their next batch
        })).ToArray();
        try { Task.WaitAll(tasks); }
        catch (AggregateException) { /* Summarize throws the first worker's error as itself */ }
        return Summarize(model, tasks, coverages, stats, readTicks / workers, scoreTicks / workers, TimeSpan.FromSeconds(writeTicks / (double)Stopwatch.Frequency / workers), total);
    }

    /// <summary>Surfaces a reader or scorer failure (e.g. a bad CSV cell) as itself, not as an AggregateException; sums the statistics.</summary>
    static FeatureCoverage Summarize(ScoringModel model, IEnumerable<Task> tasks, FeatureCoverage[] coverages, ScoringRunResult stats,
        long readTicks, long scoreTicks, TimeSpan write, Stopwatch total)
    {
        foreach (var t in tasks)
            if (t.Exception?.InnerException is { } e and not OperationCanceledException) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e).Throw();
        var coverage = new FeatureCoverage(model.Features);
        foreach (var c in coverages) coverage.Add(c);
        stats.Coverage = coverage;
        stats.RowsScored += coverage.RowsScored;
        stats.RowsRejected += coverage.RowsRejected;
        stats.ReadSeconds += readTicks / (double)Stopwatch.Frequency;
        stats.ScoreSeconds += scoreTicks / (double)Stopwatch.Frequency;
        stats.WriteSeconds += write.TotalSeconds;
        stats.TotalSeconds += total.Elapsed.TotalSeconds;
        return coverage;
    }

    /// <summary>
    /// Parallel parts (e.g. Parquet row groups): each worker takes the next part and reads and scores it with
    /// buffers of its own (3 batches, so a worker ahead waits for the sink instead of holding everyone's buffers);
    /// the calling thread hands the batches to the sink in (part, batch) order, so the output is the sequential one.
    /// </summary>
    static FeatureCoverage RunParts(PartialScorer scorer, IPartitionedFeatureSource source, Sink sink, ScoringRunResult stats,
        int batchSize, int workers, Action<long>? progress)
    {
        var model = scorer.Model;
        var total = Stopwatch.StartNew();
        var done = new BlockingCollection<Work>();
        using var cts = new CancellationTokenSource();
        var ct = cts.Token;
        var coverages = Enumerable.Range(0, workers).Select(_ => new FeatureCoverage(model.Features)).ToArray();
        long readTicks = 0, scoreTicks = 0;
        var nextPart = -1;
        var tasks = Enumerable.Range(0, workers).Select(i => Task.Run(() =>
        {
            try { ReadAndScore(i); }
            catch { cts.Cancel(); throw; } // the sink would wait forever for this worker's part
        }, ct)).ToArray();
        void ReadAndScore(int i)
        {
            var free = new BlockingCollection<Work>();
            // Enough batches for a whole row group (122,880 rows = 8 batches in Spark's and DuckDB's default layout) plus its
            // end marker: with fewer, a worker one part ahead stalls until the ordered writer has drained the part before
            // (3 batches measured 1.19x from the second core, 2026-12-03). Bounded: 9 x 16,384 rows x features per worker.
            for (var k = 0; k < 9; k++) free.Add(new Work(model.FeatureCount, model.OutputCount, batchSize) { Pool = free });
            for (int part; (part = Interlocked.Increment(ref nextPart)) < source.PartCount;)
            {
                using var src = source.OpenPart(part);
                for (var chunk = 0; ; chunk++)
                {
                    var w = free.Take(ct);
                    w.Part = part;
                    w.Seq = chunk;
                    var t0 = Stopwatch.GetTimestamp();
                    var more = src.ReadBatch(w.Batch);
                    var t1 = Stopwatch.GetTimestamp();
                    if (more) scorer.ScoreBatch(w.Batch.Columns, w.Batch.Count, w.Scores, w.Missing, coverages[i]);
                    Interlocked.Add(ref readTicks, t1 - t0);
                    Interlocked.Add(ref scoreTicks, Stopwatch.GetTimestamp() - t1);
                    w.Last = !more;
                    done.Add(w, ct);
                    if (!more) break;
                }
            }
        }
        var closer = Task.WhenAll(tasks).ContinueWith(_ => done.CompleteAdding(), TaskScheduler.Default);

        var pending = new Dictionary<(int, long), Work>();
        var next = (Part: 0, Seq: 0L);
        long rows = 0;
        var writeWatch = new Stopwatch();
        try
        {
            foreach (var w in done.GetConsumingEnumerable(ct))
            {
                pending[(w.Part, w.Seq)] = w;
                while (pending.Remove(next, out var item))
                {
                    if (item.Last) next = (next.Part + 1, 0);
                    else
                    {
                        writeWatch.Start();
                        sink(item.Batch, item.Scores, item.Missing);
                        writeWatch.Stop();
                        rows += item.Batch.Count;
                        next.Seq++;
                        progress?.Invoke(rows);
                    }
                    item.Pool!.Add(item);
                }
            }
        }
        catch (OperationCanceledException)
        {
            try { closer.Wait(); } catch { /* reported below */ }
            Summarize(model, tasks, coverages, stats, 0, 0, writeWatch.Elapsed, total); // throws the worker's error
            throw;
        }
        catch
        {
            cts.Cancel();
            try { closer.Wait(); } catch { /* the first error is the one to report */ }
            throw;
        }
        closer.Wait();
        return Summarize(model, tasks, coverages, stats, readTicks, scoreTicks / workers, writeWatch.Elapsed, total);
    }

    /// <summary>Opens the plan's feature source: a Hive-layout Parquet table folder, a CSV file, or the party's warehouse feature table.</summary>
    public static IFeatureSource OpenSource(ScoringPlan plan, IWarehouse? warehouse) =>
        plan.FeaturesIsFolder
            ? ParquetFeatureSource.OpenPartition(plan.Features, plan.Partition.Dt, plan.Partition.Hour, plan.Model.Features, plan.IdColumn)
            : plan.FeaturesIsFile
            ? new CsvFeatureSource(plan.Features, plan.Model.Features, plan.IdColumn)
            : new WarehouseFeatureSource(warehouse ?? throw new BadInputException("a feature table needs --warehouse"), plan.Features, plan.Model.Features, plan.Partition);

    /// <summary>--ids: the agreed ids from a file, or from a warehouse table's sample_id column.</summary>
    public static HashSet<string> AgreedIds(ScoringPlan plan, IWarehouse? warehouse)
    {
        if (plan.IdsIsFile) return plan.ReadIdsFile();
        var w = warehouse ?? throw new BadInputException($"--ids {plan.Ids}: a table of ids needs --warehouse");
        var t = Identifiers.SqlName(plan.Ids!, "--ids table name");
        if (!w.TableExists(t)) throw new BadInputException($"--ids {t}: no such table in {w.Description} (give a table with a sample_id column, or a file of ids)");
        var set = new HashSet<string>(StringComparer.Ordinal);
        using var r = w.Query($"SELECT {w.Dialect.Id("sample_id")} FROM {w.Dialect.Id(t)}");
        while (r.Read()) if (!r.IsNull(0)) set.Add(r.GetString(0));
        return set;
    }

    static void Finish(IFeatureSource source, ScoringRunResult stats)
    {
        if (source is IdFilteredSource f) { stats.IdsNotFound = f.NotFound; source = f.Inner; }
        if (source is WarehouseFeatureSource ws) stats.RowsUnchanged = ws.Unchanged;
    }

    /// <summary>Scores a source into memory (used by 'predict local' and tests).</summary>
    public static PartialScoreSet ScoreToMemory(ScoringModel model, IFeatureSource source, ScoringRunResult stats, int batchSize = 16_384)
    {
        var set = new PartialScoreSet(model.PartyId, model.OutputCount);
        var scorer = new PartialScorer(model);
        var buf = new double[model.OutputCount];
        Run(scorer, source, (b, s, miss) =>
        {
            for (var r = 0; r < b.Count; r++)
            {
                if (miss[r] >= 0) { stats.Rejected.Add(new RejectedRow(b.SampleIds[r], model.Features[miss[r]])); continue; }
                for (var c = 0; c < buf.Length; c++) buf[c] = s[c][r];
                set.Add(b.SampleIds[r], buf);
            }
        }, stats, batchSize);
        return set;
    }

    /// <summary>
    /// Runs the plan: partial scores to files in <paramref name="outDir"/> (data + manifest), or, when outDir is null,
    /// into the warehouse's fed_partial_scores[_hourly] partition (replaced in one transaction).
    /// </summary>
    /// <param name="masking">A masked run (<see cref="BatchMasking"/>): the party writes fixed-point values with its masks,
    /// never its clear scores; CSV files only.</param>
    public static ScoringRunResult Execute(ScoringPlan plan, IWarehouse? warehouse, string? outDir, Action<string>? progress = null,
        OutputFormat format = OutputFormat.Csv, int workers = 0, BatchMasking? masking = null)
    {
        var m = plan.Model;
        var stats = new ScoringRunResult { Engine = "local" };
        var wall = Stopwatch.StartNew(); // total: opening the source to publishing the output (the last row group, manifest, swap)
        var opened = OpenSource(plan, warehouse);
        using var source = plan.Ids is null ? opened : new IdFilteredSource(opened, AgreedIds(plan, warehouse));
        var scorer = new PartialScorer(m);
        var lastReport = Stopwatch.StartNew();
        // Parquet metadata gives the row count for free (an ETA); CSV and warehouse scans would need a second pass.
        long? total = source is ParquetFeatureSource pq ? pq.Rows : null;
        void Progress(long rows) // from several workers at once on the parallel path
        {
            if (progress is null) return;
            lock (lastReport)
            {
                if (lastReport.ElapsedMilliseconds < 2000) return;
                lastReport.Restart();
                progress(total is { } t ? $"  {rows:N0} of {t:N0} rows scored" : $"  {rows:N0} rows scored");
            }
        }
        void Rejected(FeatureBatch b, int[] miss, int r)
        {
            lock (stats.Rejected)
                if (stats.Rejected.Count < ScoringRunResult.MaxListed) stats.Rejected.Add(new RejectedRow(b.SampleIds[r], m.Features[miss[r]]));
        }

        if (masking != null)
        {
            if (outDir is null || format != OutputFormat.Csv)
                throw new BadInputException("a masked run writes partial-score CSV files: give --out DIR (no --format, or csv); masked values never go into fed_partial_scores");
            // A run id names one set of masks: scoring other data under it again would hand the initiator the difference.
            var previous = Path.Combine(outDir, PartialScoreFiles.BaseName(m.ModelId, m.Version, m.PartyId, plan.Partition) + PartialScoreManifest.Suffix);
            if (File.Exists(previous) && PartialScoreFiles.ReadManifest(previous).Masking?.RunId == masking.RunId)
                throw new BadInputException($"run id '{masking.RunId}' was already used for party '{m.PartyId}' {plan.Partition} ({previous}); " +
                    "a rerun needs a fresh --run-id at every party, so that no masks are reused");
            using var writer = new PartialScoreFiles.Writer(outDir, m.ModelId, m.Version, m.PartyId, plan.Partition, m.OutputCount, masked: true);
            var coverage = Run(scorer, source, (b, s, miss) =>
            {
                var masked = masking.Masker.MaskBatch(b.SampleIds, s, b.Count, miss);
                for (var r = 0; r < b.Count; r++)
                    if (miss[r] < 0) writer.WriteMasked(b.SampleIds[r], masked, r); else Rejected(b, miss, r);
            }, stats, workers: workers, progress: Progress);
            Finish(source, stats);
            writer.Complete(new PartialScoreManifest
            {
                ModelId = m.ModelId, Version = m.Version, Party = m.PartyId, Dt = plan.Partition.Dt, Hour = plan.Partition.HourText,
                Outputs = m.OutputCount, RowCount = 0, Sha256 = "", DataFile = "", ModelChecksum = m.Checksum,
                Coverage = coverage.ToReport(), Rejected = stats.Rejected,
                Masking = new MaskManifest { FixedPointBits = FixedPoint.FractionBits, RunId = masking.RunId, MaskedByParty = masking.MaskedByParty },
            });
            stats.Output = writer.Output;
            return stats;
        }

        if (outDir != null)
        {
            FeatureCoverage coverage;
            using IPartialScoreWriter writer = format switch
            {
                OutputFormat.Parquet => new HiveParquet.PartialScoreWriter(outDir, m.ModelId, m.Version, m.PartyId, plan.Partition, m.OutputCount),
                OutputFormat.Arrow => new ArrowPartialScores.Writer(outDir, m.ModelId, m.Version, m.PartyId, plan.Partition, m.OutputCount),
                _ => new PartialScoreFiles.Writer(outDir, m.ModelId, m.Version, m.PartyId, plan.Partition, m.OutputCount),
            };
            if (writer is HiveParquet.PartialScoreWriter parquet)
            {
                // One part file per worker, written by that worker (as Spark's tasks do): no ordered writer thread.
                coverage = RunUnordered(scorer, source, lane =>
                {
                    var file = parquet.Lane(lane);
                    return (b, s, miss) =>
                    {
                        for (var r = 0; r < b.Count; r++)
                            if (miss[r] < 0) file.Write(b.SampleIds[r], s, r); else Rejected(b, miss, r);
                    };
                }, stats, workers: workers, progress: Progress);
                // Workers list rejections in the order they meet them: by id, so the manifest does not depend on scheduling.
                stats.Rejected.Sort((x, y) => string.CompareOrdinal(x.SampleId, y.SampleId));
            }
            else
                coverage = Run(scorer, source, (b, s, miss) =>
                {
                    for (var r = 0; r < b.Count; r++)
                        if (miss[r] < 0) writer.Write(b.SampleIds[r], s, r); else Rejected(b, miss, r);
                }, stats, workers: workers, progress: Progress);
            Finish(source, stats);
            var manifest = writer.Complete(new PartialScoreManifest
            {
                ModelId = m.ModelId, Version = m.Version, Party = m.PartyId, Dt = plan.Partition.Dt, Hour = plan.Partition.HourText,
                Outputs = m.OutputCount, RowCount = 0, Sha256 = "", DataFile = "", ModelChecksum = m.Checksum,
                Coverage = coverage.ToReport(), Rejected = stats.Rejected,
            });
            stats.Output = writer.Output;
            stats.TotalSeconds = wall.Elapsed.TotalSeconds;
            return stats;
        }

        if (format != OutputFormat.Csv) throw new BadInputException($"--format {format.ToString().ToLowerInvariant()} needs --out DIR");
        var w = warehouse ?? throw new BadInputException("give --out DIR or a --warehouse to write partial scores to");
        if (!w.Dialect.SupportsTransactions)
            throw new BadInputException($"the local engine cannot write into a {w.Dialect.Name} warehouse; use --out DIR, or --engine spark-sql");
        var table = Schema.PartialScores(plan.Partition.Hourly);
        w.Execute(w.Dialect.CreateTable(table));
        var (deleteSql, deleteArgs) = PartialScoresTable.DeletePartition(w.Dialect, plan);
        var insert = PartialScoresTable.InsertRow(w.Dialect, plan.Partition.Hourly);
        using (var tx = w.BeginTransaction())
        {
            w.Execute(deleteSql, deleteArgs);
            var args = new object?[plan.Partition.Hourly ? 8 : 7];
            args[0] = m.ModelId; args[1] = m.Version; args[2] = m.PartyId; args[6] = plan.Partition.Dt;
            if (plan.Partition.Hourly) args[7] = plan.Partition.HourText;
            Run(scorer, source, (b, s, miss) =>
            {
                for (var r = 0; r < b.Count; r++)
                {
                    if (miss[r] >= 0) { Rejected(b, miss, r); continue; }
                    args[3] = b.SampleIds[r];
                    for (var c = 0; c < m.OutputCount; c++) { args[4] = c; args[5] = s[c][r]; w.Execute(insert, args); }
                }
            }, stats, progress: Progress);
            tx.Commit();
        }
        Finish(source, stats);
        stats.Output = $"{w.Description} {table.Name} {plan.Partition}";
        stats.TotalSeconds = wall.Elapsed.TotalSeconds;
        return stats;
    }
}

/// <summary>
/// A party's masked batch run: the model version's policy, this party's masker for the context
/// (model, version, partition, run id), and the run id every party of the run was given.
/// </summary>
public sealed class BatchMasking : IDisposable
{
    public required ScoreMasker Masker { get; init; }
    public required string RunId { get; init; }
    public required bool MaskedByParty { get; init; }

    /// <summary>The masking of <paramref name="plan"/>'s party under <paramref name="policy"/>; keys are needed only by a masker.</summary>
    public static BatchMasking For(ScoringPlan plan, MaskingPolicy policy, MaskKeys? keys, string runId)
    {
        var sig = plan.Model.Signature;
        if (!policy.Enabled) throw new BadInputException($"model '{sig.ModelId}' v{sig.Version} is not masked ({policy.Describe(sig)})");
        if (plan.Partition.Hourly)
            throw new BadInputException("masked hourly runs are not supported: the hourly combine mixes each party's newest score per sample across hours, " +
                "whose masks come from different runs and would not cancel (docs/privacy.md)");
        if (!System.Text.RegularExpressions.Regex.IsMatch(runId, "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"))
            throw new BadInputException($"--run-id '{ErrorText.Cut(runId, 80)}': 1-128 letters, digits, '_', '.', ':' or '-', starting with a letter or digit");
        var masker = policy.Maskers.Contains(plan.PartyId);
        if (masker && keys is null) throw new BadInputException($"model '{sig.ModelId}' v{sig.Version} is masked and party '{plan.PartyId}' masks: give --mask-keys FILE");
        if (keys != null && keys.Party != plan.PartyId) throw new BadInputException($"--mask-keys holds the key of '{keys.Party}', not of party '{plan.PartyId}'");
        var context = MaskContext.Batch(sig.ModelId, sig.Version, plan.Partition.ToString(), runId);
        return new BatchMasking
        {
            Masker = new ScoreMasker(sig, policy, plan.PartyId, masker ? keys!.PairSecrets(sig, policy) : [], context),
            RunId = runId, MaskedByParty = masker,
        };
    }

    public void Dispose() => Masker.Dispose();
}

/// <summary>--ids on the local engine: only rows whose id is agreed pass; counts the agreed ids never seen.</summary>
public sealed class IdFilteredSource(IFeatureSource inner, HashSet<string> ids) : IFeatureSource
{
    readonly HashSet<string> _found = new(StringComparer.Ordinal);
    public IFeatureSource Inner => inner;
    public string Description => inner.Description + " (agreed ids only)";
    public long NotFound => ids.Count - _found.Count;

    public bool ReadBatch(FeatureBatch batch)
    {
        while (inner.ReadBatch(batch))
        {
            var n = 0;
            for (var r = 0; r < batch.Count; r++)
            {
                var id = batch.SampleIds[r];
                if (!ids.Contains(id)) continue;
                _found.Add(id);
                if (n != r)
                {
                    batch.SampleIds[n] = id;
                    foreach (var col in batch.Columns) col[n] = col[r];
                    if (batch.Stamps is { } st) st[n] = st[r];
                }
                n++;
            }
            batch.Count = n;
            if (n > 0) return true;
        }
        batch.Count = 0;
        return false;
    }

    public void Dispose() => inner.Dispose();
}

/// <summary>Statements on fed_partial_scores[_hourly] shared by the engines and the combine job.</summary>
public static class PartialScoresTable
{
    public static (string Sql, object?[] Args) DeletePartition(SqlDialect d, ScoringPlan plan)
    {
        var t = Schema.PartialScores(plan.Partition.Hourly).Name;
        return plan.Partition.Hourly
            ? ($"DELETE FROM {d.Id(t)} WHERE model_id = ? AND version = ? AND party = ? AND dt = ? AND hour = ?",
                [plan.Model.ModelId, plan.Model.Version, plan.PartyId, plan.Partition.Dt, plan.Partition.HourText])
            : ($"DELETE FROM {d.Id(t)} WHERE model_id = ? AND version = ? AND party = ? AND dt = ?",
                [plan.Model.ModelId, plan.Model.Version, plan.PartyId, plan.Partition.Dt]);
    }

    public static string InsertRow(SqlDialect d, bool hourly) =>
        $"INSERT INTO {d.Id(Schema.PartialScores(hourly).Name)} (model_id, version, party, sample_id, class_index, partial_score, dt{(hourly ? ", hour" : "")}) " +
        $"VALUES (?, ?, ?, ?, ?, ?, ?{(hourly ? ", ?" : "")})";
}
