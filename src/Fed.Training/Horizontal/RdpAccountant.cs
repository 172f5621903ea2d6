using Fed.Core;

namespace Fed.Training.Horizontal;

/// <summary>
/// Rényi-DP accountant for the sampled Gaussian mechanism (the one DP-SGD step is), as Opacus and TF-Privacy do it:
/// <list type="bullet">
/// <item>RDP of one step at integer order a, sampling rate q, noise multiplier sigma (Mironov, Talwar and Zhang 2019,
///   "Rényi Differential Privacy of the Sampled Gaussian Mechanism", sec. 3.3):
///   eps_a = log( sum_{k=0..a} C(a,k) (1-q)^(a-k) q^k exp((k^2 - k) / (2 sigma^2)) ) / (a - 1);
///   q = 1 is the plain Gaussian mechanism, a / (2 sigma^2) (Mironov 2017, "Rényi Differential Privacy", Prop. 7);</item>
/// <item>T steps compose additively in RDP (Mironov 2017, Prop. 1);</item>
/// <item>conversion to (epsilon, delta): epsilon = min_a T eps_a + log((a-1)/a) - (log delta + log a) / (a - 1)
///   (Balle et al. 2020, "Hypothesis Testing Interpretations and Renyi Differential Privacy", Thm. 21; the conversion
///   Opacus uses; never looser than Mironov 2017's eps + log(1/delta)/(a-1)).</item>
/// </list>
/// DP-SGD itself is Abadi et al. 2016, "Deep Learning with Differential Privacy". Integer orders 2..256 only: a valid
/// (slightly conservative) bound.
/// </summary>
public static class Rdp
{
    public static readonly int[] Orders = Enumerable.Range(2, 255).ToArray();

    /// <summary>RDP of one sampled-Gaussian step at each of <see cref="Orders"/>.</summary>
    public static double[] Step(double q, double sigma)
    {
        if (!(q > 0 && q <= 1)) throw new ArgumentOutOfRangeException(nameof(q), q, "sampling rate must be in (0, 1]");
        if (!(sigma > 0)) throw new ArgumentOutOfRangeException(nameof(sigma), sigma, "noise multiplier must be > 0");
        var result = new double[Orders.Length];
        for (var j = 0; j < Orders.Length; j++)
        {
            var a = Orders[j];
            if (q >= 1) { result[j] = a / (2 * sigma * sigma); continue; }
            // log-sum-exp over k of log C(a,k) + k log q + (a-k) log(1-q) + (k^2-k)/(2 sigma^2)
            var terms = new double[a + 1];
            var logBinom = 0.0;
            for (var k = 0; k <= a; k++)
            {
                if (k > 0) logBinom += Math.Log(a - k + 1) - Math.Log(k);
                terms[k] = logBinom + k * Math.Log(q) + (a - k) * Math.Log(1 - q) + (k * (double)k - k) / (2 * sigma * sigma);
            }
            var max = terms.Max();
            var logA = max + Math.Log(terms.Sum(t => Math.Exp(t - max)));
            result[j] = logA / (a - 1);
        }
        return result;
    }

    /// <summary>(epsilon, order) for accumulated RDP values at <see cref="Orders"/>.</summary>
    public static (double Epsilon, int Order) Epsilon(double[] rdp, double delta)
    {
        var best = double.PositiveInfinity; var order = 0;
        for (var j = 0; j < Orders.Length; j++)
        {
            double a = Orders[j];
            var eps = rdp[j] + Math.Log((a - 1) / a) - (Math.Log(delta) + Math.Log(a)) / (a - 1);
            if (eps < best) { best = eps; order = Orders[j]; }
        }
        return (Math.Max(0, best), order);
    }

    /// <summary>Epsilon after <paramref name="steps"/> steps.</summary>
    public static double Epsilon(double q, double sigma, long steps, double delta) =>
        Epsilon(Step(q, sigma).Select(v => v * steps).ToArray(), delta).Epsilon;

    /// <summary>The smallest noise multiplier (to 0.1%) whose epsilon after <paramref name="steps"/> steps is at most the target.</summary>
    public static double NoiseMultiplier(double targetEpsilon, double delta, double q, long steps)
    {
        double lo = 0.05, hi = 0.05;
        while (Epsilon(q, hi, steps, delta) > targetEpsilon)
        {
            lo = hi; hi *= 2;
            if (hi > 1e6) throw new BadInputException($"no noise level reaches epsilon {targetEpsilon} in {steps} steps at sampling rate {q}");
        }
        if (hi == 0.05) return hi;
        while (hi / lo > 1.001)
        {
            var mid = Math.Sqrt(lo * hi);
            if (Epsilon(q, mid, steps, delta) > targetEpsilon) lo = mid; else hi = mid;
        }
        return hi;
    }
}

/// <summary>A DP plan: sampling rate, steps, the noise multiplier calibrated so that the whole planned training spends
/// exactly the target budget, and the running account. Record level (<see cref="ForRecords"/>): one client's DP-SGD,
/// a step is one noisy mini-batch. Client level (<see cref="ForClients"/>): DP-FedAvg, a step is one round, every
/// client takes part in every round (q = 1: the Gaussian mechanism, no sampling amplification).</summary>
public sealed class DpPlan
{
    public double Q { get; }
    public double Sigma { get; }
    public long PlannedSteps { get; }
    public double TargetEpsilon { get; }
    public double Delta { get; }
    readonly double[] perStep;
    public long Steps { get; private set; }

    DpPlan(HorizontalOptions o, double q, long plannedSteps)
    {
        TargetEpsilon = o.DpEpsilon ?? throw new ArgumentException("DP is off");
        Delta = o.DpDelta;
        Q = q;
        PlannedSteps = plannedSteps;
        Sigma = Rdp.NoiseMultiplier(TargetEpsilon, Delta, Q, PlannedSteps);
        perStep = Rdp.Step(Q, Sigma);
    }

    public static DpPlan ForRecords(int rows, HorizontalOptions o)
    {
        var q = o.BatchSize <= 0 || o.BatchSize >= rows ? 1.0 : (double)o.BatchSize / rows;
        return new DpPlan(o, q, (long)o.Rounds * o.LocalEpochs * StepsPerEpoch(q));
    }

    public static DpPlan ForClients(HorizontalOptions o) => new(o, 1.0, o.Rounds);

    public static int StepsPerEpoch(double q) => (int)Math.Ceiling(1 / q - 1e-9);

    public double EpsilonAfter(long steps) => Rdp.Epsilon(perStep.Select(v => v * steps).ToArray(), Delta).Epsilon;
    public double Spent => EpsilonAfter(Steps);

    /// <summary>Refuses a round that would take the client past its budget (training stops there).</summary>
    public bool CanSpend(long steps) => EpsilonAfter(Steps + steps) <= TargetEpsilon * (1 + 1e-9);
    public void Record(long steps) => Steps += steps;
}
