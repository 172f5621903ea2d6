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
        var gen = new SqlGenerator(w.Dialect, plan);
        var stats = new ScoringRunResult { Engine = "sql" };
        w.Execute(w.Dialect.CreateTable(Schema.PartialScores(plan.Partition.Hourly)));
        var ins = gen.Insert();
        if (w.Dialect.SupportsTransactions)
        {
            // Delete then insert the partition in one transaction: readers see the old rows or the new, never half.
            var del = gen.Delete();
            using var tx = w.BeginTransaction();
            w.Execute(del.Sql, del.Args);
            w.Execute(ins.Sql, ins.Args);
            tx.Commit();
        }
        else
        {
            // Hive / Spark Thrift Server over ODBC: INSERT OVERWRITE ... PARTITION replaces the partition atomically.
            w.Execute(ins.Sql, ins.Args);
        }
        stats.ScoreSeconds = sw.Elapsed.TotalSeconds;
        stats.Coverage = Coverage(w, gen, plan.Model, stats.Rejected);
        // Counted from the coverage (Hive drivers report no affected-row count for INSERT OVERWRITE).
        stats.RowsScored = stats.Coverage.RowsScored;
        stats.RowsRejected = stats.Coverage.RowsRejected;
        stats.Output = $"{w.Description} {gen.TableName} {plan.Partition}";
        stats.TotalSeconds = sw.Elapsed.TotalSeconds;
        return stats;
    }

    /// <summary>Runs the coverage statements: counts per feature, and the rejected rows with their first missing feature.</summary>
    public static FeatureCoverage Coverage(IWarehouse w, SqlGenerator gen, ScoringModel m, List<RejectedRow> rejected)
    {
        var cov = new FeatureCoverage(m.Features);
        var counts = gen.CoverageCounts();
        using (var r = w.Query(counts.Sql, counts.Args))
        {
            r.Read();
            cov.RowsSeen = r.GetInt64(0);
            for (var f = 0; f < m.FeatureCount; f++)
            {
                cov.Missing[f] = r.IsNull(1 + f) ? 0 : r.GetInt64(1 + f);
                if (m.Missing.Kind == MissingPolicyKind.Default) cov.Defaulted[f] = cov.Missing[f];
            }
        }
        long bad = 0;
        var rows = gen.MissingRows();
        using (var r = w.Query(rows.Sql, rows.Args))
            while (r.Read())
            {
                bad++;
                if (m.Missing.Kind == MissingPolicyKind.Reject && rejected.Count < ScoringRunResult.MaxListed)
                    rejected.Add(new RejectedRow(r.GetString(0), m.Features[(int)r.GetInt64(1) - 1]));
            }
        cov.RowsRejected = m.Missing.Kind == MissingPolicyKind.Reject ? bad : 0;
        cov.RowsScored = cov.RowsSeen - cov.RowsRejected;
        return cov;
    }
}

/// <summary>
/// Engine "spark-sql": writes the Spark SQL file (INSERT OVERWRITE TABLE ... PARTITION) and runs
/// <c>$SPARK_HOME/bin/spark-sql -f FILE</c>. Without SPARK_HOME it stops with an error saying so (the file is still written).
/// </summary>
public static class SparkSqlEngine
{
    public static string Emit(ScoringPlan plan, string path)
    {
        if (plan.FeaturesIsFile)
            throw new BadInputException($"Spark SQL scores a warehouse feature table, not a file ('{plan.Features}')");
        var script = new SqlGenerator(SqlDialect.Hive, plan).Script();
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        File.WriteAllText(full + ".tmp", script);
        File.Move(full + ".tmp", full, overwrite: true);
        return full;
    }

    public static ScoringRunResult Execute(ScoringPlan plan, string? emitPath, Action<string>? progress = null)
    {
        var path = emitPath ?? Path.Combine(Path.GetTempPath(), $"fed-{plan.Model.ModelId}-v{plan.Model.Version}-{plan.PartyId}-{plan.Partition.FileTag}.sql");
        Emit(plan, path);
        var home = Environment.GetEnvironmentVariable("SPARK_HOME");
        if (string.IsNullOrEmpty(home))
            throw new FedFailureException($"--engine spark-sql needs SPARK_HOME (a Spark installation with bin/spark-sql); the Spark SQL was written to {path}: run it with 'spark-sql -f {path}' on the cluster, or set SPARK_HOME");
        var exe = Path.Combine(home, "bin", "spark-sql");
        if (!File.Exists(exe)) throw new FedFailureException($"SPARK_HOME={home} has no bin/spark-sql");
        var sw = Stopwatch.StartNew();
        var psi = new ProcessStartInfo(exe) { RedirectStandardError = true, RedirectStandardOutput = true };
        psi.ArgumentList.Add("-f");
        psi.ArgumentList.Add(path);
        using var p = Process.Start(psi) ?? throw new FedFailureException($"cannot start {exe}");
        p.ErrorDataReceived += (_, e) => { if (e.Data != null) progress?.Invoke("  spark-sql: " + e.Data); };
        p.BeginErrorReadLine();
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new FedFailureException($"spark-sql -f {path} exited {p.ExitCode}");
        return new ScoringRunResult { Engine = "spark-sql", Output = path, TotalSeconds = sw.Elapsed.TotalSeconds };
    }
}
