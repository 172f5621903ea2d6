using Fed.Core.Model;

namespace Fed.Training.Train;

/// <summary>
/// The objective both trainers optimize: (1/n) [sum_i loss(z_i, y_i) + lambda/2 ||w||^2], intercepts unpenalized,
/// lambda = --l2 (scikit-learn's: LogisticRegression(C = 1/lambda), Ridge(alpha = lambda)).
/// <list type="bullet">
/// <item>linear: loss = (z - y)^2 / 2, residual d = z - y (exact, encrypted form d = Z + b with b = z_g - y);</item>
/// <item>softmax: the multinomial cross-entropy from <see cref="SoftmaxSeries"/> (K &lt;= 3), all outputs of a row together;</item>
/// <item>logistic: the log-loss with the sigmoid replaced by its Fourier form
/// <see cref="SigmoidSeries"/> (error below 3e-5 for |z| &lt;= 36, see there). With z = z_g + Z (Z only encrypted),
/// the protocol evaluates it on the arbiter's sines and cosines of the masked Z.</item>
/// </list>
/// </summary>
public static class Objective
{
    /// <summary>The fixed-point scalar round(x 2^bits) a standardized feature value becomes in the encrypted gradient
    /// X^T [[d]]; the plaintext trainer's gradient uses the same quantized value (times 2^-bits).</summary>
    public static long FeatureScalar(double x, int bits) => (long)Math.Round(Math.ScaleB(x, bits));

    /// <summary>Curvature bound c of the loss in z (Boehning: sigmoid' &lt;= 1/4, softmax Hessian &lt;= 1/2 (I - 11^T/K);
    /// linear: 1), for the preconditioner.</summary>
    public static double Curvature(ModelKind kind) => kind switch { ModelKind.Linear => 1.0, ModelKind.Softmax => 0.5, _ => 0.25 };

    /// <summary>Row k of a batch: writes the residuals d[c][k] of every output and returns the row's loss
    /// (softmax: the series' cross-entropy of all K outputs together; otherwise per output).</summary>
    public static double RowResiduals(ModelKind kind, double[][] z, double[][] targets, int[] batch, int k, double[][] d)
    {
        var i = batch[k];
        if (kind != ModelKind.Softmax)
        {
            var loss = 0.0;
            for (var c = 0; c < z.Length; c++)
            {
                d[c][k] = Residual(kind, z[c][k], targets[c][i]);
                loss += Loss(kind, z[c][k], targets[c][i]);
            }
            return loss;
        }
        var series = SoftmaxSeries.For(z.Length);
        Span<double> delta = stackalloc double[z.Length - 1];
        Span<double> p = stackalloc double[z.Length];
        for (var c = 1; c < z.Length; c++) delta[c - 1] = z[c][k] - z[0][k];
        series.Probabilities(delta, p);
        var ce = series.Value(delta);
        for (var c = 0; c < z.Length; c++)
        {
            d[c][k] = p[c] - targets[c][i];
            if (c > 0) ce -= targets[c][i] * delta[c - 1];
        }
        return ce;
    }

    /// <summary>Plain residual d(z, y) = dL/dz, with the approximated sigmoid for logistic/softmax.</summary>
    public static double Residual(ModelKind kind, double z, double y) =>
        kind == ModelKind.Linear ? z - y : SigmoidSeries.Sigmoid(z) - y;

    /// <summary>Plain loss of one row and output (approximated log-loss for logistic/softmax).</summary>
    public static double Loss(ModelKind kind, double z, double y) =>
        kind == ModelKind.Linear ? 0.5 * (z - y) * (z - y) : SigmoidSeries.Softplus(z) - y * z;

    // Encrypted form. The guest knows z_g and y; Z is encrypted. loss = P + c Z + q Z^2 (+ the periodic part of the
    // softplus for logistic, evaluated on the arbiter's cosines and sines).

    /// <summary>Linear residual offset b: d = Z + b.</summary>
    public static double LinearOffset(double zg, double y) => zg - y;

    /// <summary>Guest-only term P of the loss.</summary>
    public static double LossConstant(ModelKind kind, double zg, double y) =>
        kind == ModelKind.Linear ? 0.5 * (zg - y) * (zg - y) : zg / 2 + zg * zg / (2 * SigmoidSeries.Period) - y * zg + SigmoidSeries.SoftplusConstant;

    /// <summary>Coefficient c of the host part Z.</summary>
    public static double LossLinear(ModelKind kind, double zg, double y) =>
        kind == ModelKind.Linear ? zg - y : 0.5 + zg / SigmoidSeries.Period - y;

    /// <summary>Coefficient q of Z^2 (softmax: none, its loss is linear plus periodic in the score differences).</summary>
    public static double LossQuadratic(ModelKind kind) => kind switch { ModelKind.Linear => 0.5, ModelKind.Softmax => 0, _ => 1 / (2 * SigmoidSeries.Period) };
}

/// <summary>
/// The sigmoid and the softplus as Fourier series of period <see cref="Period"/> plus low-degree terms, the form a
/// party can evaluate on a masked input: with x = z + r mod P (r uniform in [0, P), known to the guest; x known to the
/// arbiter, uniform to it), sin(w_j z) = sin(w_j x) cos(w_j r) - cos(w_j x) sin(w_j r), so the guest turns the
/// arbiter's encrypted sin(w_j x), cos(w_j x) into the encrypted sigmoid with plaintext scalars only
/// (the trigonometric method of Boura et al., "High-precision privacy-preserving real-valued function evaluation", 2018).
/// <code>
/// sigmoid(z)  ~ 1/2 + z/P + sum_j b_j sin(w_j z),                 w_j = 2 pi j / P, j = 1..J
/// softplus(z) ~ z/2 + z^2/(2P) + a_0 + sum_j a_j cos(w_j z)       (softplus(z) = ln(1 + e^z))
/// </code>
/// g(z) = sigmoid(z) - 1/2 - z/P is odd and, on [-P/2, P/2], continues smoothly into its periodic extension (its value
/// and first derivative agree at +-P/2 up to e^-P/2), so its sine coefficients decay geometrically (sigmoid's poles at
/// +-i pi: |b_j| ~ e^(-2 pi^2 j / P)); likewise h(z) = ln(2 cosh(z/2)) - z^2/(2P) for the softplus.
/// Error (P = 44, J = 10; SigmoidSeriesTests): sigmoid within 5.5e-3 and softplus within 3.2e-3 for |z| &lt;= 38,
/// 2.0e-2 for |z| &lt;= 40; beyond, the sigmoid series climbs a staircase (~ sigmoid(z - kP) + k, k = round(z / P)), so
/// a row whose score exceeds |z| ~ 40 gets a wrong residual. Standardized features and the L2 penalty keep scores
/// below that (breast_cancer, nearly separable, peaks at |z| ~ 29). Why 10 terms: each term costs the arbiter two
/// encryptions per row and output; the truncation error falls like e^(-2 pi^2 J / P), and an error of 5e-3 on the
/// residual moves the optimum by far less than the tests' tolerances (breast_cancer and german_credit: held-out AUC
/// within 3e-4 and training log-loss within 1e-4 of scikit-learn's, as with 24 terms at P = 48 and error 2.6e-5).
/// The softplus series is the sigmoid series' antiderivative (a_j = -b_j / w_j), so the loss the arbiter watches and
/// the residual the parties descend on belong to one function.
/// </summary>
public static class SigmoidSeries
{
    public const double Period = 44;
    public const int Terms = 10;
    /// <summary>b_j, j = 1..J (index j - 1).</summary>
    public static readonly double[] SineCoefficients;
    /// <summary>a_j, j = 1..J (index j - 1); a_0 is <see cref="SoftplusConstant"/>.</summary>
    public static readonly double[] CosineCoefficients;
    public static readonly double SoftplusConstant;

    static SigmoidSeries()
    {
        // coefficients by the rectangle rule on N points of one period (exact for trigonometric polynomials of
        // degree < N; the aliasing error is below the truncation error for N = 2^14)
        const int N = 1 << 14;
        var b = new double[Terms];
        var a = new double[Terms];
        var a0 = 0.0;
        for (var k = 0; k < N; k++)
        {
            var x = (k - N / 2) * Period / N;
            var g = 1 / (1 + Math.Exp(-x)) - 0.5 - x / Period;
            var h = LogTwoCosh(x / 2) - x * x / (2 * Period);
            a0 += h / N;
            for (var j = 1; j <= Terms; j++)
            {
                var w = Omega(j) * x;
                b[j - 1] += 2.0 / N * g * Math.Sin(w);
                a[j - 1] += 2.0 / N * h * Math.Cos(w);
            }
        }
        SineCoefficients = b; CosineCoefficients = a; SoftplusConstant = a0;
    }

    static double LogTwoCosh(double x) { var ax = Math.Abs(x); return ax + Math.Log(1 + Math.Exp(-2 * ax)); }

    public static double Omega(int j) => 2 * Math.PI * j / Period;

    public static double Sigmoid(double z)
    {
        var s = 0.5 + z / Period;
        for (var j = 1; j <= Terms; j++) s += SineCoefficients[j - 1] * Math.Sin(Omega(j) * z);
        return s;
    }

    public static double Softplus(double z)
    {
        var s = z / 2 + z * z / (2 * Period) + SoftplusConstant;
        for (var j = 1; j <= Terms; j++) s += CosineCoefficients[j - 1] * Math.Cos(Omega(j) * z);
        return s;
    }
}
