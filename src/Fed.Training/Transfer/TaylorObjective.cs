using Fed.Core.Model;

namespace Fed.Training.Transfer;

/// <summary>
/// The transfer protocol's objective (vertical training moved to the Fourier series of Train.Objective; transfer keeps
/// the Taylor form, whose residual is linear in the encrypted completed part, until it gets the same series).
/// Logistic (and each one-vs-rest output of softmax) uses the second-order Taylor expansion of the log-loss at z = 0:
///   L(z, y) ~ ln 2 + (1/2 - y) z + z^2 / 8,   dL/dz = d = z/4 + 1/2 - y      (y in {0, 1}),
/// linear regression is exact: L = (z - y)^2 / 2, d = z - y.
/// With z = z_g + Z (guest part z_g known to the guest, host part Z only encrypted):
///   d = a (Z + b),  L = P + c Z + q Z^2,
/// where a, b, P, c, q depend only on z_g and y (see the methods below).
/// </summary>
public static class TaylorObjective
{
    public const double Ln2 = 0.6931471805599453;

    /// <summary>Residual scale a: d = a (Z + b).</summary>
    public static double ResidualScale(ModelKind kind) => kind == ModelKind.Linear ? 1.0 : 0.25;

    /// <summary>Residual offset b (guest-side, plaintext at the guest only).</summary>
    public static double ResidualOffset(ModelKind kind, double zg, double y) =>
        kind == ModelKind.Linear ? zg - y : zg + 2.0 - 4.0 * y;

    /// <summary>Plain residual d(z, y) (z the full linear predictor).</summary>
    public static double Residual(ModelKind kind, double z, double y) =>
        kind == ModelKind.Linear ? z - y : 0.25 * z + 0.5 - y;

    /// <summary>Guest-only term P of the loss.</summary>
    public static double LossConstant(ModelKind kind, double zg, double y) =>
        kind == ModelKind.Linear ? 0.5 * (zg - y) * (zg - y) : Ln2 + (0.5 - y) * zg + zg * zg / 8.0;

    /// <summary>Coefficient c of the host part Z.</summary>
    public static double LossLinear(ModelKind kind, double zg, double y) =>
        kind == ModelKind.Linear ? zg - y : 0.5 - y + zg / 4.0;

    /// <summary>Coefficient q of Z^2.</summary>
    public static double LossQuadratic(ModelKind kind) => kind == ModelKind.Linear ? 0.5 : 0.125;

    /// <summary>Plain loss of one row and output.</summary>
    public static double Loss(ModelKind kind, double z, double y) => LossConstant(kind, z, y);
}
