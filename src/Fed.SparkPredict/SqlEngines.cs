using System.Diagnostics;
using Fed.Core;
using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.Warehouse;

namespace Fed.SparkPredict;

/// <summary>
/// Engine "sql": runs the generated SQL on the warehouse itself (SQLite, or PostgreSQL/any transactional ODBC source):
/// DELETE the partition's rows of this model version and party, then INSERT ... SELECT, in one transaction; then
/// the coverage statements. Written against <see cref="IWarehouse"/> only, so every backend runs it unchanged.
/// </summary>
public static class SqlEngine
{
    public static ScoringRunResult Execute(ScoringPlan plan, IWarehouse w)
    {
        if (plan.FeaturesIsFile)
            throw new BadInputException($"--engine sql scores a warehouse feature table, not a file ('{plan.Features}'): load it with 'fed features load' or use --engine local");
        if (!w.TableExists(plan.Features))
            throw new BadInputException($"no feature table '{plan.Features}' in {w.Description}: load it with 'fed features load'");
        var have = WarehouseFeatureSource.ColumnsOf(w, plan.Features);
        var missing = plan.Model.Features.Where(f => !have.Contains(Identifiers.ColumnFor(f))).ToList();
        if (missing.Count > 0)
            throw new MissingFeatureException($"{plan.Features} in {w.Description}: the model needs feature column(s) {string.Join(", ", missing.Select(f => $"'{f}'"))} that the table does not have", missing);
        if (plan.Partition.Hourly && !have.Contains("hour"))
            throw new BadInputException($"{plan.Features} has no hour column: it is a daily feature table; drop --hour or load hourly features");

        var sw = Stopwatch.StartNew();
        var stats = new ScoringRunResult { Engine = "sql" };
        using var ids = IdsTable.Open(w, plan);
        var gen = new SqlGenerator(w.Dialect, plan) { IdsTable = ids?.Name };
        w.Execute(w.Dialect.CreateTable(Schema.PartialScores(plan.Partition.Hourly)));
        var ins = gen.Insert();
        if (w.Dialect.SupportsTransactions)
        {
            // Delete then insert this job's rows in one transaction: readers see the old rows or the new, never half.
            var del = gen.Delete();
            using var tx = w.BeginTransaction();
            w.Execute(del.Sql, del.Args);
            w.Execute(ins.Sql, ins.Args);
            tx.Commit();
        }
        else
        {
            // Hive / Spark Thrift Server over ODBC: INSERT OVERWRITE of this job's partition replaces it atomically.
            w.Execute(ins.Sql, ins.Args);
        }
        stats.ScoreSeconds = sw.Elapsed.TotalSeconds;
        stats.Coverage = Coverage(w, gen, plan.Model, stats.Rejected);
        if (ids != null)
        {
            var q = gen.IdsNotFound();
            using var r = w.Query(q.Sql, q.Args);
            r.Read();
            stats.IdsNotFound = r.GetInt64(0);
        }
        // Counted from the coverage (Hive drivers report no affected-row count for INSERT OVERWRITE).
        stats.RowsScored = stats.Coverage.RowsScored;
        stats.RowsRejected = stats.Coverage.RowsRejected;
        stats.Output = $"{w.Description} {gen.TableName} {plan.Partition}";
        stats.TotalSeconds = sw.Elapsed.TotalSeconds;
        return stats;
    }

    /// <summary>Runs the coverage statements: counts per feature, and the first rejected rows with their first missing feature.</summary>
    public static FeatureCoverage Coverage(IWarehouse w, SqlGenerator gen, ScoringModel m, List<RejectedRow> rejected)
    {
        var counts = gen.CoverageCounts();
        var nulls = new long[m.FeatureCount];
        long seen, anyNull;
        using (var r = w.Query(counts.Sql, counts.Args))
        {
            if (!r.Read()) throw new FedFailureException($"{w.Description}: the coverage query returned no row");
            seen = r.GetInt64(0);
            anyNull = r.IsNull(1) ? 0 : r.GetInt64(1);
            for (var f = 0; f < m.FeatureCount; f++) nulls[f] = r.IsNull(2 + f) ? 0 : r.GetInt64(2 + f);
        }
        if (m.Missing.Kind == MissingPolicyKind.Reject)
        {
            var rows = gen.MissingRows(ScoringRunResult.MaxListed);
            using var r = w.Query(rows.Sql, rows.Args);
            while (r.Read()) rejected.Add(new RejectedRow(r.GetString(0), m.Features[(int)r.GetInt64(1) - 1]));
        }
        return CoverageOf(m, seen, anyNull, nulls);
    }

    /// <summary>The coverage from the counts every SQL engine reads back (rows seen, rows with a NULL, NULLs per feature).</summary>
    public static FeatureCoverage CoverageOf(ScoringModel m, long seen, long anyNull, long[] nulls)
    {
        var cov = new FeatureCoverage(m.Features) { RowsSeen = seen };
        for (var f = 0; f < m.FeatureCount; f++)
        {
            cov.Missing[f] = nulls[f];
            if (m.Missing.Kind == MissingPolicyKind.Default) cov.Defaulted[f] = nulls[f];
        }
        cov.RowsRejected = m.Missing.Kind == MissingPolicyKind.Reject ? anyNull : 0;
        cov.RowsScored = seen - cov.RowsRejected;
        return cov;
    }
}

/// <summary>
/// --ids for the SQL engines: a warehouse table with a sample_id column is used as it is; a file of ids is loaded into
/// a temporary table of this connection (SQLite, PostgreSQL), dropped on dispose. A cluster (hive dialect) needs a table.
/// </summary>
public sealed class IdsTable : IDisposable
{
    readonly IWarehouse? _temp;
    public string Name { get; }

    IdsTable(string name, IWarehouse? temp) { Name = name; _temp = temp; }

    public static IdsTable? Open(IWarehouse w, ScoringPlan plan)
    {
        if (plan.Ids is not { } ids) return null;
        if (!plan.IdsIsFile)
        {
            Identifiers.SqlName(ids, "--ids table name");
            if (!w.TableExists(ids)) throw new BadInputException($"--ids {ids}: no such table in {w.Description} (give a table with a sample_id column, or a file of ids)");
            if (!WarehouseFeatureSource.ColumnsOf(w, ids).Contains("sample_id"))
                throw new BadInputException($"--ids {ids}: the table has no sample_id column");
            return new IdsTable(ids, null);
        }
        if (!w.Dialect.SupportsTransactions)
            throw new BadInputException($"--ids {ids}: on a {w.Dialect.Name} warehouse give a table of agreed ids (column sample_id), not a file");
        var set = plan.ReadIdsFile();
        var name = $"fed_ids_{Environment.ProcessId}_{Guid.NewGuid().ToString("N")[..8]}";
        var d = w.Dialect;
        w.Execute($"CREATE TEMPORARY TABLE {d.Id(name)} ({d.Id("sample_id")} {d.TypeName(ColumnType.String)} NOT NULL)");
        var t = new IdsTable(name, w);
        using (var tx = w.BeginTransaction())
        {
            var ins = $"INSERT INTO {d.Id(name)} ({d.Id("sample_id")}) VALUES (?)";
            foreach (var id in set) w.Execute(ins, id);
            tx.Commit();
        }
        return t;
    }

    public void Dispose() => _temp?.Execute($"DROP TABLE {_temp.Dialect.Id(Name)}");
}

/// <summary>
/// Engine "spark-sql": writes the Spark SQL file (CREATE TABLE IF NOT EXISTS, INSERT OVERWRITE of this job's
/// partition, then the coverage SELECTs, each result row tagged) and runs <c>$SPARK_HOME/bin/spark-sql -S -f FILE</c>.
/// It reads the tagged rows back from spark-sql's stdout (<see cref="SparkSqlOutput"/>) and reports the same counts
/// and coverage as the other engines; a failing spark-sql stops it with exit 1 and spark-sql's own error line.
/// Without SPARK_HOME it stops with an error saying so (the file is still written).
/// </summary>
public static class SparkSqlEngine
{
    public static string Emit(ScoringPlan plan, string path)
    {
        if (plan.FeaturesIsFile)
            throw new BadInputException($"Spark SQL scores a warehouse feature table, not a file ('{plan.Features}')");
        if (plan.Ids != null && plan.IdsIsFile)
            throw new BadInputException($"--ids {plan.Ids}: Spark SQL needs a table of agreed ids (column sample_id) on the cluster, not a local file");
        var gen = new SqlGenerator(SqlDialect.Hive, plan) { IdsTable = plan.Ids is { } ids ? Identifiers.SqlName(ids, "--ids table name") : null };
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        File.WriteAllText(full + ".tmp", gen.Script());
        File.Move(full + ".tmp", full, overwrite: true);
        return full;
    }

    /// <param name="sparkSql">the spark-sql executable (default $SPARK_HOME/bin/spark-sql)</param>
    public static ScoringRunResult Execute(ScoringPlan plan, string? emitPath, Action<string>? progress = null, string? sparkSql = null)
    {
        var path = emitPath ?? Emit(plan, Path.Combine(Path.GetTempPath(), $"fed-{plan.Model.ModelId}-v{plan.Model.Version}-{plan.PartyId}-{plan.Partition.FileTag}.sql"));
        var home = Environment.GetEnvironmentVariable("SPARK_HOME");
        if (sparkSql is null && string.IsNullOrEmpty(home))
            throw new FedFailureException($"--engine spark-sql needs SPARK_HOME (a Spark installation with bin/spark-sql); the Spark SQL was written to {path}: run it with 'spark-sql -S -f {path}' on the cluster, or set SPARK_HOME");
        var exe = sparkSql ?? Path.Combine(home!, "bin", "spark-sql");
        if (!File.Exists(exe)) throw new FedFailureException($"no spark-sql at {exe}");
        var sw = Stopwatch.StartNew();
        var (code, stdout, stderr) = SparkSql.Run(exe, path, progress);
        if (code != 0) throw new FedFailureException($"spark-sql -S -f {path} exited {code}: {SparkSql.ErrorLine(stderr, stdout)}");
        var parsed = SparkSqlOutput.Parse(stdout, plan.Model, expectIds: plan.Ids != null);
        var stats = new ScoringRunResult { Engine = "spark-sql", Coverage = parsed.Coverage, IdsNotFound = parsed.IdsNotFound };
        stats.Rejected.AddRange(parsed.Rejected);
        stats.RowsScored = parsed.Coverage.RowsScored;
        stats.RowsRejected = parsed.Coverage.RowsRejected;
        stats.Output = $"spark-sql {Schema.PartialScores(plan.Partition.Hourly).Name} {SqlDialect.Hive.PartitionSpec(SqlGenerator.PartitionValues(plan))} ({path})";
        stats.TotalSeconds = sw.Elapsed.TotalSeconds;
        return stats;
    }
}

/// <summary>Runs <c>spark-sql -S -f FILE</c> (silent mode: only result rows on stdout, tab-separated, NULL as "NULL").</summary>
public static class SparkSql
{
    public static (int Code, string Stdout, List<string> Stderr) Run(string exe, string file, Action<string>? progress)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in new[] { "-S", "-f", file }) psi.ArgumentList.Add(arg);
        using var p = Process.Start(psi) ?? throw new FedFailureException($"cannot start {exe}");
        var stderr = new List<string>();
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data == null) return;
            lock (stderr) stderr.Add(e.Data);
            progress?.Invoke("  spark-sql: " + e.Data);
        };
        p.BeginErrorReadLine();
        var stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout, stderr);
    }

    /// <summary>spark-sql's own error: its "Error in query" / exception line, else its last line of output.</summary>
    public static string ErrorLine(IReadOnlyList<string> stderr, string stdout)
    {
        var line = stderr.FirstOrDefault(l => l.Contains("Error in query", StringComparison.Ordinal))
                   ?? stderr.FirstOrDefault(l => l.Contains("Exception", StringComparison.Ordinal) || l.Contains("ERROR", StringComparison.Ordinal))
                   ?? stderr.LastOrDefault(l => l.Trim().Length > 0)
                   ?? stdout.Split('\n').LastOrDefault(l => l.Trim().Length > 0);
        return line?.Trim() ?? "no error message";
    }
}

/// <summary>
/// Parses what spark-sql -S prints for the tagged result rows of <see cref="SqlGenerator.Script"/>: one
/// <c>fed_coverage TAB rows TAB rows_with_null TAB null_1 ...</c> line, <c>fed_missing TAB sample_id TAB position</c>
/// lines, and with --ids one <c>fed_ids_not_found TAB n</c> line. Other lines (warnings) are ignored.
/// </summary>
public static class SparkSqlOutput
{
    public sealed record Parsed(FeatureCoverage Coverage, List<RejectedRow> Rejected, long? IdsNotFound);

    public static Parsed Parse(string stdout, ScoringModel m, bool expectIds = false)
    {
        long[]? counts = null;
        long? ids = null;
        var rejected = new List<RejectedRow>();
        foreach (var raw in stdout.Split('\n'))
        {
            var cells = raw.TrimEnd('\r').Split('\t');
            switch (cells[0])
            {
                case SqlGenerator.CoverageTag:
                    if (counts != null) throw Bad("two coverage rows");
                    if (cells.Length != 3 + m.FeatureCount) throw Bad($"a coverage row with {cells.Length - 1} values, expected {2 + m.FeatureCount}");
                    counts = cells.Skip(1).Select(Count).ToArray();
                    break;
                case SqlGenerator.MissingTag:
                    if (cells.Length != 3) throw Bad($"a missing-feature row with {cells.Length - 1} values, expected 2");
                    var pos = Count(cells[2]);
                    if (pos < 1 || pos > m.FeatureCount) throw Bad($"feature position {pos} out of range 1..{m.FeatureCount}");
                    if (m.Missing.Kind == MissingPolicyKind.Reject) rejected.Add(new RejectedRow(cells[1], m.Features[(int)pos - 1]));
                    break;
                case SqlGenerator.IdsTag:
                    if (cells.Length != 2) throw Bad("a malformed ids-not-found row");
                    ids = Count(cells[1]);
                    break;
            }
        }
        if (counts is null) throw Bad($"no '{SqlGenerator.CoverageTag}' row: the coverage query did not run");
        if (expectIds && ids is null) throw Bad($"no '{SqlGenerator.IdsTag}' row");
        return new Parsed(SqlEngine.CoverageOf(m, counts[0], counts[1], counts[2..]), rejected, ids);
    }

    static long Count(string cell) =>
        cell == "NULL" ? 0 : long.TryParse(cell, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var v) && v >= 0
            ? v : throw Bad($"'{cell}' is not a count");

    static FedFailureException Bad(string what) => new($"spark-sql output: {what}");
}
