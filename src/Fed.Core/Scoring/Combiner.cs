using Fed.Core.Model;

namespace Fed.Core.Scoring;

/// <summary>A final prediction. Value: P(class 1) for logistic, the value for linear, the predicted class's
/// probability for softmax and one-vs-rest (whose <see cref="PredictedClass"/> indexes <see cref="ModelSignature.Classes"/>).</summary>
public readonly record struct Prediction(double Value, int PredictedClass, double[]? Probabilities);

/// <summary>
/// The one implementation of combining: sum the parties' partial scores per output in the model's party order
/// (guest first, left to right, so the bits never depend on arrival order), then the link:
/// sigmoid for logistic, a numerically stable softmax, a sigmoid per class for one-vs-rest, identity for linear.
/// It refuses an incomplete set of parties and names the missing ones.
/// </summary>
public static class Combiner
{
    /// <summary>Combines one sample. <paramref name="partials"/> maps party id to its partial scores (one per output).</summary>
    public static Prediction Combine(ModelSignature model, IReadOnlyDictionary<string, double[]> partials, string? sampleId = null)
    {
        Check(model, partials, sampleId);
        var outputs = model.OutputCount;
        Span<double> z = stackalloc double[outputs];
        for (var c = 0; c < outputs; c++)
        {
            var s = partials[model.Parties[0]][c];
            for (var p = 1; p < model.Parties.Length; p++) s += partials[model.Parties[p]][c];
            z[c] = s;
        }
        return Link(model, z);
    }

    /// <summary>
    /// Combines a batch, columnar: <c>partials[p][c][r]</c> is party p's (in model party order) score for output c, row r.
    /// Writes values[r], and for softmax predictedClass[r] and probabilities[c][r]. Same arithmetic as <see cref="Combine"/>.
    /// </summary>
    public static void CombineBatch(ModelSignature model, IReadOnlyList<double[][]> partials, int rows,
        double[] values, int[]? predictedClass = null, double[][]? probabilities = null)
    {
        if (partials.Count != model.Parties.Length)
            throw new IncompletePartiesException(model.ModelId, model.Version, model.Parties.Skip(partials.Count).ToArray());
        var outputs = model.OutputCount;
        Span<double> z = stackalloc double[outputs];
        for (var r = 0; r < rows; r++)
        {
            for (var c = 0; c < outputs; c++)
            {
                var s = partials[0][c][r];
                for (var p = 1; p < partials.Count; p++) s += partials[p][c][r];
                if (!double.IsFinite(s))
                    throw new BadInputException($"model '{model.ModelId}' v{model.Version}: row {r} has a missing or non-finite partial score; rejected rows must not reach the combiner");
                z[c] = s;
            }
            var pred = Link(model, z);
            values[r] = pred.Value;
            if (predictedClass != null) predictedClass[r] = pred.PredictedClass;
            if (probabilities != null && pred.Probabilities != null)
                for (var c = 0; c < outputs; c++) probabilities[c][r] = pred.Probabilities[c];
        }
    }

    /// <summary>Applies the model's link to summed scores.</summary>
    public static Prediction Link(ModelSignature model, ReadOnlySpan<double> z)
    {
        switch (model.Kind)
        {
            case ModelKind.Logistic: return new Prediction(Sigmoid(z[0]), z[0] >= 0 ? 1 : 0, null);
            case ModelKind.Linear: return new Prediction(z[0], -1, null);
            case ModelKind.OneVsRest:
            {
                // FATE's one-vs-rest rule: a sigmoid per class, no normalisation; the first class of highest probability.
                var q = new double[z.Length];
                var top = 0;
                for (var c = 0; c < q.Length; c++)
                {
                    q[c] = Sigmoid(z[c]);
                    if (q[c] > q[top]) top = c;
                }
                return new Prediction(q[top], top, q);
            }
            default:
                var p = new double[z.Length];
                Softmax(z, p);
                var best = 0;
                for (var c = 1; c < p.Length; c++) if (p[c] > p[best]) best = c;
                return new Prediction(p[best], best, p);
        }
    }

    /// <summary>Sigmoid that neither overflows nor loses precision for large |z|.</summary>
    public static double Sigmoid(double z)
    {
        if (z >= 0) return 1.0 / (1.0 + Math.Exp(-z));
        var e = Math.Exp(z);
        return e / (1.0 + e);
    }

    /// <summary>Softmax with the maximum subtracted first, so exp never overflows.</summary>
    public static void Softmax(ReadOnlySpan<double> z, Span<double> p)
    {
        var max = z[0];
        for (var c = 1; c < z.Length; c++) if (z[c] > max) max = z[c];
        var sum = 0.0;
        for (var c = 0; c < z.Length; c++) sum += p[c] = Math.Exp(z[c] - max);
        for (var c = 0; c < z.Length; c++) p[c] /= sum;
    }

    static void Check(ModelSignature model, IReadOnlyDictionary<string, double[]> partials, string? sampleId)
    {
        var missing = model.Parties.Where(p => !partials.ContainsKey(p)).ToArray();
        if (missing.Length > 0) throw new IncompletePartiesException(model.ModelId, model.Version, missing, sampleId);
        foreach (var (party, scores) in partials)
        {
            if (Array.IndexOf(model.Parties, party) < 0)
                throw new BadInputException($"model '{model.ModelId}' v{model.Version} has no party '{party}' (parties: {string.Join(", ", model.Parties)})");
            if (scores.Length != model.OutputCount)
                throw new BadInputException($"party '{party}' sent {scores.Length} partial score(s); model '{model.ModelId}' v{model.Version} has {model.OutputCount} output(s)");
            foreach (var s in scores)
                if (!double.IsFinite(s))
                    throw new BadInputException($"party '{party}' sent a non-finite partial score ({s}) for model '{model.ModelId}'{(sampleId is null ? "" : $", sample '{sampleId}'")}");
        }
    }
}
