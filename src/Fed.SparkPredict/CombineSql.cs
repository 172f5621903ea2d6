using System.Globalization;
using System.Text;
using Fed.Core;
using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.Warehouse;

namespace Fed.SparkPredict;

/// <summary>
/// <c>fed predict combine</c> as HiveQL/Spark SQL, for a cluster: joins every party's partial scores of one model
/// version and partition in fed_partial_scores[_hourly] (inner join on sample_id: a sample some party lacks is not
/// combined) and overwrites this job's partition of fed_predictions[_hourly] (model_id, version, dt[, hour]).
/// The arithmetic is <see cref="Combiner"/>'s, spelled in SQL: the sum <c>p_guest + p_host1 + ...</c> in model party
/// order, then the stable sigmoid, identity, or softmax with the maximum subtracted first (ties: the first class).
/// Hourly: each party's newest score per sample over hours &lt;= H; only samples some party rescored at hour H.
/// The tagged counts row (<see cref="Tag"/>) lets spark-sql's stdout be read back.
/// </summary>
public sealed class CombineSql(ModelSignature sig, Partition p)
{
    static readonly SqlDialect D = SqlDialect.Hive;
    public const string Tag = "fed_combine";
    int Outputs => sig.OutputCount;
    string Version => sig.Version.ToString(CultureInfo.InvariantCulture);
    static string L(string v) => SqlDialect.PartitionLiteral(v);

    public string PredictionsTable => Schema.Predictions(p.Hourly).Name;

    /// <summary>One party's scores as a FROM item: sample_id, hour (hourly), z_0..z_{n-1}.</summary>
    string PartyScores(string party)
    {
        var t = D.Id(Schema.PartialScores(p.Hourly).Name);
        var z = string.Join(", ", Enumerable.Range(0, Outputs).Select(c => $"MAX(CASE WHEN class_index = {c} THEN partial_score END) AS z_{c}"));
        var where = $"model_id = {L(sig.ModelId)} AND version = {L(Version)} AND party = {L(party)} AND dt = {L(p.Dt)}";
        if (!p.Hourly) return $"(SELECT sample_id, {z} FROM {t} WHERE {where} GROUP BY sample_id)";
        var zs = string.Join(", ", Enumerable.Range(0, Outputs).Select(c => $"z_{c}"));
        return $"(SELECT sample_id, hour, {zs} FROM (SELECT sample_id, hour, {zs}, ROW_NUMBER() OVER (PARTITION BY sample_id ORDER BY hour DESC) AS rn\n" +
               $"      FROM (SELECT sample_id, hour, {z} FROM {t} WHERE {where} AND hour <= {L(p.HourText!)} GROUP BY sample_id, hour) h) r WHERE rn = 1)";
    }

    /// <summary>The joined sums: sample_id, s_0..s_{n-1} (party order, left to right).</summary>
    string Sums()
    {
        var sb = new StringBuilder();
        var sums = string.Join(", ", Enumerable.Range(0, Outputs).Select(c =>
            "(" + string.Join(" + ", sig.Parties.Select((_, i) => $"p{i}.z_{c}")) + $") AS s_{c}"));
        sb.Append($"SELECT p0.sample_id, {sums}\n  FROM {PartyScores(sig.Parties[0])} p0");
        for (var i = 1; i < sig.Parties.Length; i++)
            sb.Append($"\n  JOIN {PartyScores(sig.Parties[i])} p{i} ON p{i}.sample_id = p0.sample_id");
        if (p.Hourly) sb.Append("\n  WHERE " + string.Join(" OR ", sig.Parties.Select((_, i) => $"p{i}.hour = {L(p.HourText!)}")));
        return sb.ToString();
    }

    static string Double(double v) => $"CAST({v.ToString("R", CultureInfo.InvariantCulture)} AS DOUBLE)";

    /// <summary>SELECT sample_id, predict_value, predicted_class, probabilities (the table's data columns).</summary>
    public string Select()
    {
        var one = Double(1);
        switch (sig.Kind)
        {
            case ModelKind.Logistic:
                return $"SELECT sample_id, CASE WHEN s_0 >= 0 THEN {one} / ({one} + EXP(-s_0)) ELSE EXP(s_0) / ({one} + EXP(s_0)) END AS predict_value,\n" +
                       $"  CAST(NULL AS STRING) AS predicted_class, CAST(NULL AS STRING) AS probabilities\nFROM ({Sums()}) s";
            case ModelKind.Linear:
                return $"SELECT sample_id, s_0 AS predict_value, CAST(NULL AS STRING) AS predicted_class, CAST(NULL AS STRING) AS probabilities\nFROM ({Sums()}) s";
            case ModelKind.Softmax:
                var n = Outputs;
                var e = string.Join(", ", Enumerable.Range(0, n).Select(c => $"EXP(s_{c} - mx) AS e_{c}"));
                var sum = string.Join(" + ", Enumerable.Range(0, n).Select(c => $"e_{c}"));
                var probs = string.Join(", ", Enumerable.Range(0, n).Select(c => $"e_{c} / esum AS q_{c}"));
                var best = "CASE" + string.Concat(Enumerable.Range(0, n - 1).Select(c => $" WHEN q_{c} = qmax THEN {HiveRegistry.Literal(sig.Classes[c])}")) + $" ELSE {HiveRegistry.Literal(sig.Classes[n - 1])} END";
                var json = "CONCAT('['" + string.Concat(Enumerable.Range(0, n).Select(c => (c > 0 ? ", ','" : "") + $", CAST(q_{c} AS STRING)")) + ", ']')";
                var q = string.Join(", ", Enumerable.Range(0, n).Select(c => $"q_{c}"));
                return $"SELECT sample_id, qmax AS predict_value, {best} AS predicted_class, {json} AS probabilities\n" +
                       $"FROM (SELECT sample_id, {q}, GREATEST({q}) AS qmax\n" +
                       $" FROM (SELECT sample_id, {probs}\n" +
                       $"  FROM (SELECT sample_id, {string.Join(", ", Enumerable.Range(0, n).Select(c => $"e_{c}"))}, {sum} AS esum\n" +
                       $"   FROM (SELECT sample_id, {e}\n" +
                       $"    FROM (SELECT sample_id, {string.Join(", ", Enumerable.Range(0, n).Select(c => $"s_{c}"))}, GREATEST({string.Join(", ", Enumerable.Range(0, n).Select(c => $"s_{c}"))}) AS mx\n" +
                       $"     FROM ({Sums()}) s) m) x) y) pr) z";
            default:
                throw new BadInputException($"model '{sig.ModelId}' v{sig.Version}: kind {sig.Kind} has no SQL combine; combine it with Fed ('predict combine' without --engine spark-sql)");
        }
    }

    (string, string)[] Spec => [("model_id", sig.ModelId), ("version", Version), ("dt", p.Dt), .. p.Hourly ? new[] { ("hour", p.HourText!) } : []];

    /// <summary>INSERT OVERWRITE of this job's partition only.</summary>
    public string Insert() => $"INSERT OVERWRITE TABLE {D.Id(PredictionsTable)} {D.PartitionSpec(Spec)}\n{Select()}";

    /// <summary>The tagged counts: predictions written, then partial-score rows per party (model party order).</summary>
    public string Counts()
    {
        var pred = $"(SELECT COUNT(*) AS n FROM {D.Id(PredictionsTable)} WHERE model_id = {L(sig.ModelId)} AND version = {L(Version)} AND dt = {L(p.Dt)}" +
                   (p.Hourly ? $" AND hour = {L(p.HourText!)}" : "") + ") pred";
        var parties = sig.Parties.Select((party, i) => $"(SELECT COUNT(DISTINCT sample_id) AS n FROM {D.Id(Schema.PartialScores(p.Hourly).Name)} WHERE model_id = {L(sig.ModelId)} AND version = {L(Version)} AND party = {L(party)} AND dt = {L(p.Dt)}" +
                                                        (p.Hourly ? $" AND hour = {L(p.HourText!)}" : "") + $") c{i}");
        return $"SELECT '{Tag}', pred.n, {string.Join(", ", sig.Parties.Select((_, i) => $"c{i}.n"))}\nFROM {pred}\n" +
               string.Join("\n", parties.Select(x => "CROSS JOIN " + x));
    }

    public IReadOnlyList<string> Statements() => [D.CreateTable(Schema.Predictions(p.Hourly)), Insert(), Counts()];

    public string Script() =>
        $"-- Fed combine: model {sig.ModelId} v{sig.Version} ({string.Join(", ", sig.Parties)}), {p}\n" +
        string.Join(";\n\n", Statements()) + ";\n";

    /// <summary>Reads the tagged counts row from spark-sql's stdout: predictions, then rows per party.</summary>
    public (long Predictions, Dictionary<string, long> RowsByParty) ParseCounts(string stdout)
    {
        var line = stdout.Split('\n').Select(l => l.TrimEnd('\r').Split('\t')).Where(c => c[0] == Tag).ToList();
        if (line.Count != 1) throw new FedFailureException($"spark-sql output: expected one '{Tag}' row, got {line.Count}");
        var cells = line[0];
        if (cells.Length != 2 + sig.Parties.Length) throw new FedFailureException($"spark-sql output: a '{Tag}' row with {cells.Length - 1} values, expected {1 + sig.Parties.Length}");
        long N(string s) => long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v >= 0 ? v : throw new FedFailureException($"spark-sql output: '{s}' is not a count");
        return (N(cells[1]), sig.Parties.Select((party, i) => (party, N(cells[2 + i]))).ToDictionary(x => x.party, x => x.Item2));
    }
}
