using System.Numerics;
using System.Runtime.InteropServices;
using Fed.Core.Model;

namespace Fed.Core.Scoring;

/// <summary>
/// The one implementation of a party's partial score: <c>constant + w_1·x_1 + w_2·x_2 + ... + w_k·x_k</c>,
/// evaluated strictly left to right with a separate multiply and add (no fused multiply-add).
/// That is the order in which SQLite, PostgreSQL, Hive and Spark evaluate the generated SQL expression,
/// so every path — batch, hourly, streaming, online, and SQL on an engine that uses IEEE doubles — gives the same bits.
/// Batches are columnar: SIMD lanes run across rows, never across features, so the order per row never changes.
/// Missing values are NaN in the input; the model's policy decides (reject with the feature named, or its recorded default).
/// </summary>
public sealed class PartialScorer
{
    readonly double[][] _weights;
    readonly double[] _constants;
    readonly double[]? _defaults;

    public PartialScorer(ScoringModel model)
    {
        Model = model;
        _weights = model.Weights;
        _constants = model.Constants;
        _defaults = model.Missing.Kind == MissingPolicyKind.Default ? model.Missing.Defaults : null;
    }

    public ScoringModel Model { get; }

    /// <summary>
    /// Scores <paramref name="rows"/> rows given as feature columns in model order (NaN = missing).
    /// Writes <c>scores[c][r]</c>; <c>missingFeature[r]</c> is -1 for a scored row, else the index of the first
    /// missing feature that rejected it (its scores are NaN). Returns the number of rejected rows.
    /// </summary>
    public int ScoreBatch(IReadOnlyList<double[]> columns, int rows, double[][] scores, Span<int> missingFeature, FeatureCoverage coverage)
    {
        var k = _weights.Length == 0 ? 0 : _weights[0].Length;
        if (columns.Count != k) throw new ArgumentException($"expected {k} feature columns, got {columns.Count}");
        if (scores.Length != _constants.Length) throw new ArgumentException($"expected {_constants.Length} score columns");
        if (missingFeature.Length < rows) throw new ArgumentException("missingFeature shorter than rows");
        for (var c = 0; c < _constants.Length; c++)
        {
            var acc = scores[c].AsSpan(0, rows);
            acc.Fill(_constants[c]);
            var w = _weights[c];
            for (var f = 0; f < k; f++) MultiplyAdd(acc, w[f], columns[f].AsSpan(0, rows));
        }

        // NaN propagates through the sum, so only rows with a NaN score need a look.
        missingFeature[..rows].Fill(-1);
        var rejected = 0;
        var first = scores[0].AsSpan(0, rows);
        for (var r = FirstNaN(first, 0); r >= 0; r = FirstNaN(first, r + 1))
        {
            if (ResolveMissing(columns, r, scores, coverage) is var f && f >= 0)
            {
                missingFeature[r] = f;
                rejected++;
            }
        }
        coverage.RowsSeen += rows;
        coverage.RowsScored += rows - rejected;
        coverage.RowsRejected += rejected;
        return rejected;
    }

    /// <summary>
    /// Scores one row (features in model order, NaN = missing) into <paramref name="scores"/> (one per output).
    /// Under the reject policy a missing value throws <see cref="MissingFeatureException"/> naming the features.
    /// </summary>
    public void ScoreRow(ReadOnlySpan<double> features, Span<double> scores, FeatureCoverage? coverage = null)
    {
        var k = _weights.Length == 0 ? 0 : _weights[0].Length;
        if (features.Length != k) throw new ArgumentException($"expected {k} features, got {features.Length}");
        List<string>? missing = null;
        for (var f = 0; f < k; f++)
        {
            if (!double.IsNaN(features[f])) continue;
            if (coverage != null) coverage.Missing[f]++;
            if (_defaults is null) (missing ??= []).Add(Model.Features[f]);
            else if (coverage != null) coverage.Defaulted[f]++;
        }
        if (coverage != null) coverage.RowsSeen++;
        if (missing != null)
        {
            if (coverage != null) coverage.RowsRejected++;
            throw new MissingFeatureException(
                $"model '{Model.ModelId}' v{Model.Version}, party '{Model.PartyId}': missing feature(s) {string.Join(", ", missing.Select(m => $"'{m}'"))}; " +
                "the model's policy is to reject such rows", missing);
        }
        for (var c = 0; c < _constants.Length; c++)
        {
            var w = _weights[c];
            var acc = _constants[c];
            for (var f = 0; f < k; f++)
            {
                var x = features[f];
                if (double.IsNaN(x)) x = _defaults![f];
                acc += w[f] * x;
            }
            scores[c] = acc;
        }
        if (coverage != null) coverage.RowsScored++;
    }

    /// <summary>A row whose score came out NaN: count its missing features, then reject it or rescore it with defaults.</summary>
    int ResolveMissing(IReadOnlyList<double[]> columns, int r, double[][] scores, FeatureCoverage coverage)
    {
        var firstMissing = -1;
        for (var f = 0; f < columns.Count; f++)
        {
            if (!double.IsNaN(columns[f][r])) continue;
            coverage.Missing[f]++;
            if (firstMissing < 0) firstMissing = f;
            if (_defaults != null) coverage.Defaulted[f]++;
        }
        if (firstMissing < 0) throw new InvalidOperationException("NaN score from finite features: the model or input holds a non-finite value");
        if (_defaults is null)
        {
            foreach (var s in scores) s[r] = double.NaN;
            return firstMissing;
        }
        for (var c = 0; c < _constants.Length; c++)
        {
            var w = _weights[c];
            var acc = _constants[c];
            for (var f = 0; f < columns.Count; f++)
            {
                var x = columns[f][r];
                if (double.IsNaN(x)) x = _defaults[f];
                acc += w[f] * x;
            }
            scores[c][r] = acc;
        }
        return -1;
    }

    /// <summary>acc[i] = acc[i] + w * x[i], rounded after the multiply and after the add, like the SQL engines.</summary>
    internal static void MultiplyAdd(Span<double> acc, double w, ReadOnlySpan<double> x)
    {
        var i = 0;
        if (Vector.IsHardwareAccelerated && acc.Length >= Vector<double>.Count)
        {
            var wv = new Vector<double>(w);
            var av = MemoryMarshal.Cast<double, Vector<double>>(acc);
            var xv = MemoryMarshal.Cast<double, Vector<double>>(x);
            for (var j = 0; j < av.Length; j++) av[j] += wv * xv[j];
            i = av.Length * Vector<double>.Count;
        }
        for (; i < acc.Length; i++) acc[i] += w * x[i];
    }

    static int FirstNaN(ReadOnlySpan<double> s, int from)
    {
        // x != x only for NaN; a vector scan keeps the common no-missing case cheap.
        var i = from;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i + Vector<double>.Count <= s.Length; i += Vector<double>.Count)
            {
                var v = new Vector<double>(s[i..]);
                if (!Vector.EqualsAll(v, v)) break;
            }
        }
        for (; i < s.Length; i++) if (double.IsNaN(s[i])) return i;
        return -1;
    }
}
