using Fed.Core.Model;

namespace Fed.Training.Train;

/// <summary>Weights of one party: W[c][f] per output c, and on the guest one intercept per output.</summary>
public sealed record PartyWeights(double[][] W, double[] Intercepts);

/// <summary>Result of a training run (plain or federated).</summary>
public sealed record TrainResult(IReadOnlyList<PartyWeights> Parties, IReadOnlyList<double> LossPerEpoch, int Epochs, string StopReason);

/// <summary>
/// The plaintext centralized reference: the same preprocessing (per-party standardization), the same
/// mini-batch order, the same Taylor-approximated objective and the same gradient-descent update as the
/// federated protocol, on all parties' columns in one process. The federated weights must agree with it.
/// </summary>
public static class PlainTrainer
{
    /// <param name="blocks">Per party (guest first), row-major standardized training rows: blocks[p][i][f].</param>
    /// <param name="targets">targets[c][i] (see <see cref="LabelEncoding.Targets"/>).</param>
    public static TrainResult Train(TrainOptions o, IReadOnlyList<double[][]> blocks, double[][] targets, Action<int, double>? progress = null)
    {
        var n = targets[0].Length;
        var outputs = targets.Length;
        var weights = blocks.Select(b => Enumerable.Range(0, outputs).Select(_ => new double[b.Length == 0 ? 0 : b[0].Length]).ToArray()).ToArray();
        var bias = new double[outputs];
        // the gradient uses the fixed-point features the encrypted X^T [[d]] uses (the forward pass uses doubles, as the parties do)
        var quantized = blocks.Select(b => b.Select(r => r.Select(x => Math.ScaleB(Objective.FeatureScalar(x, o.FeatureBits), -o.FeatureBits)).ToArray()).ToArray()).ToArray();
        var losses = new List<double>();
        var stop = "max-iter";
        var epoch = 0;
        for (; epoch < o.MaxIter; epoch++)
        {
            var loss = 0.0;
            foreach (var batch in BatchPlan.Batches(n, o.BatchSize, o.Seed, epoch))
            {
                var m = batch.Length;
                var reg = 0.0;
                foreach (var wp in weights) foreach (var row in wp) foreach (var w in row) reg += w * w;
                loss += (double)m / n * o.L2 / 2 * reg;
                for (var c = 0; c < outputs; c++)
                {
                    var d = new double[m];
                    for (var k = 0; k < m; k++)
                    {
                        var i = batch[k];
                        var z = bias[c];
                        for (var p = 0; p < blocks.Count; p++)
                        {
                            var x = blocks[p][i]; var w = weights[p][c];
                            for (var f = 0; f < w.Length; f++) z += w[f] * x[f];
                        }
                        d[k] = Objective.Residual(o.Kind, z, targets[c][i]);
                        loss += Objective.Loss(o.Kind, z, targets[c][i]) / n;
                    }
                    for (var p = 0; p < blocks.Count; p++)
                    {
                        var w = weights[p][c];
                        var g = new double[w.Length];
                        for (var k = 0; k < m; k++)
                        {
                            var x = quantized[p][batch[k]];
                            for (var f = 0; f < w.Length; f++) g[f] += x[f] * d[k];
                        }
                        for (var f = 0; f < w.Length; f++) w[f] -= o.LearningRate * (g[f] / m + o.L2 * w[f]);
                    }
                    bias[c] -= o.LearningRate * d.Sum() / m;
                }
            }
            losses.Add(loss);
            progress?.Invoke(epoch + 1, loss);
            var decision = Convergence.Decide(o, losses);
            if (decision != null) { stop = decision; epoch++; break; }
        }
        var parties = weights.Select((w, p) => new PartyWeights(w, p == 0 ? bias : [])).ToList();
        return new TrainResult(parties, losses, losses.Count, stop);
    }
}

/// <summary>The arbiter's stopping rule, shared with the plain trainer.</summary>
public static class Convergence
{
    /// <summary>Null to continue, else why training stops.</summary>
    public static string? Decide(TrainOptions o, IReadOnlyList<double> losses)
    {
        var loss = losses[^1];
        if (o.LossThreshold is { } t && loss < t) return "loss-threshold";
        if (losses.Count >= 2 && Math.Abs(losses[^2] - loss) < o.Tolerance) return "converged";
        if (losses.Count >= o.MaxIter) return "max-iter";
        return null;
    }
}
