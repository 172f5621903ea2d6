namespace Fed.Import.Fate;

/// <summary>
/// One party's linear parts as FATE holds them, before they become a Fed partial model: per output (one, or one per
/// one-vs-rest class) the weights in <see cref="Header"/> order and the intercept (0 on a host).
/// </summary>
sealed record FateModel
{
    /// <summary>"fate1-protobuf", "fate1-json" or "fate2-json".</summary>
    public required string Format { get; init; }
    /// <summary>FATE's component: HeteroLR, HeteroLinR, coordinated_lr, coordinated_linr.</summary>
    public required string Component { get; init; }
    public required string[] Header { get; init; }
    /// <summary>Output-major: Weights[c][f] is header feature f's weight for output c.</summary>
    public required double[][] Weights { get; init; }
    public required double[] Intercepts { get; init; }
    /// <summary>One-vs-rest class labels in output order (empty for a single output).</summary>
    public string[] Classes { get; init; } = [];
    public bool OneVsRest => Classes.Length > 0;
    /// <summary>Facts about the training run, recorded in the Fed model's "training" block.</summary>
    public SortedDictionary<string, string> Facts { get; init; } = new(StringComparer.Ordinal);
}
