using Fed.Core.Model;

namespace Fed.Training.Train;

/// <summary>Weights of one party: W[c][f] per output c, and on the guest one intercept per output.</summary>
public sealed record PartyWeights(double[][] W, double[] Intercepts);

/// <summary>Result of a training run (plain or federated).</summary>
public sealed record TrainResult(IReadOnlyList<PartyWeights> Parties, IReadOnlyList<double> LossPerEpoch, int Epochs, string StopReason);

/// <summary>
/// The plaintext centralized reference: the same preprocessing (per-party standardization), the same mini-batch order,
/// the same objective (approximated sigmoid included) and the same per-party optimizer (<see cref="BlockNesterov"/>)
/// as the federated protocol, on all parties' columns in one process. The federated weights must agree with it.
/// </summary>
public static class PlainTrainer
{
    /// <param name="blocks">Per party (guest first), row-major standardized training rows: blocks[p][i][f].</param>
    /// <param name="targets">targets[c][i] (see <see cref="LabelEncoding.Targets"/>).</param>
    public static TrainResult Train(TrainOptions o, IReadOnlyList<double[][]> blocks, double[][] targets, Action<int, double>? progress = null)
    {
        var n = targets[0].Length;
        var outputs = targets.Length;
        var alpha = o.L2 / n;
        var opt = blocks.Select((b, p) => new BlockNesterov(b, outputs, p == 0, Objective.Curvature(o.Kind), alpha, o.LearningRate)).ToArray();
        // the gradient uses the fixed-point features the encrypted X^T [[d]] uses (the forward pass uses doubles, as the parties do)
        var quantized = blocks.Select(b => b.Select(r => r.Select(x => Math.ScaleB(Objective.FeatureScalar(x, o.FeatureBits), -o.FeatureBits)).ToArray()).ToArray()).ToArray();
        var losses = new List<double>();
        var stop = "max-iter";
        for (var epoch = 0; epoch < o.MaxIter; epoch++)
        {
            var loss = 0.0;
            foreach (var batch in BatchPlan.Batches(n, o.BatchSize, o.Seed, epoch))
            {
                var m = batch.Length;
                for (var p = 0; p < blocks.Count; p++) loss += (double)m / n * alpha / 2 * opt[p].PenaltyNorm();
                var grads = opt.Select(x => Enumerable.Range(0, outputs).Select(_ => new double[x.V[0].Length]).ToArray()).ToArray();
                // scores of every output, then the residuals (jointly for softmax: one row's K outputs share its loss)
                var z = new double[outputs][];
                for (var c = 0; c < outputs; c++)
                {
                    z[c] = new double[m];
                    for (var k = 0; k < m; k++)
                    {
                        var i = batch[k];
                        var s = opt[0].V[c][^1];
                        for (var p = 0; p < blocks.Count; p++)
                        {
                            var x = blocks[p][i]; var w = opt[p].V[c];
                            for (var f = 0; f < x.Length; f++) s += w[f] * x[f];
                        }
                        z[c][k] = s;
                    }
                }
                var dd = new double[outputs][];
                for (var c = 0; c < outputs; c++) dd[c] = new double[m];
                for (var k = 0; k < m; k++) loss += Objective.RowResiduals(o.Kind, z, targets, batch, k, dd) / n;
                for (var c = 0; c < outputs; c++)
                {
                    var d = dd[c];
                    for (var p = 0; p < blocks.Count; p++)
                    {
                        var g = grads[p][c];
                        for (var k = 0; k < m; k++)
                        {
                            var x = quantized[p][batch[k]];
                            for (var f = 0; f < x.Length; f++) g[f] += x[f] * d[k];
                            if (p == 0) g[^1] += d[k];
                        }
                        for (var f = 0; f < g.Length; f++) g[f] /= m;
                    }
                }
                for (var p = 0; p < blocks.Count; p++) opt[p].Step(grads[p]);
            }
            losses.Add(loss);
            progress?.Invoke(epoch + 1, loss);
            if (Convergence.Restart(losses)) foreach (var x in opt) x.Restart();
            var decision = Convergence.Decide(o, losses);
            if (decision != null) { stop = decision; break; }
        }
        var parties = opt.Select((x, p) => p == 0
            ? new PartyWeights(x.W.Select(r => r[..^1]).ToArray(), x.W.Select(r => r[^1]).ToArray())
            : new PartyWeights(x.W, [])).ToList();
        return new TrainResult(parties, losses, losses.Count, stop);
    }
}

/// <summary>The arbiter's stopping rule, shared with the plain trainer.</summary>
public static class Convergence
{
    /// <summary>Null to continue, else why training stops: the loss below --loss-threshold, its relative change
    /// below --tolerance ("converged"), or --max-iter epochs.</summary>
    public static string? Decide(TrainOptions o, IReadOnlyList<double> losses)
    {
        var loss = losses[^1];
        if (o.LossThreshold is { } t && loss < t) return "loss-threshold";
        if (losses.Count >= 2 && Math.Abs(losses[^2] - loss) <= o.Tolerance * Math.Abs(loss)) return "converged";
        if (losses.Count >= o.MaxIter) return "max-iter";
        return null;
    }

    /// <summary>The momentum restarts when the epoch's loss rose.</summary>
    public static bool Restart(IReadOnlyList<double> losses) => losses.Count >= 2 && losses[^1] > losses[^2];
}
