namespace Fed.Core;

/// <summary>
/// Base of every error Fed reports on purpose. The message says what is wrong and what to do;
/// <see cref="ExitCode"/> is what the CLI returns (2 bad input, 1 failure).
/// </summary>
public abstract class FedException : Exception
{
    protected FedException(string message, Exception? inner = null) : base(message, inner) { }
    public abstract int ExitCode { get; }
}

/// <summary>Input (a file, a message, a config, an argument) is wrong. Nothing was written.</summary>
public class BadInputException : FedException
{
    public BadInputException(string message, Exception? inner = null) : base(message, inner) { }
    public override int ExitCode => 2;
}

/// <summary>Something outside the input failed (a server, a disk, a peer). Nothing half-written is left.</summary>
public class FedFailureException : FedException
{
    public FedFailureException(string message, Exception? inner = null) : base(message, inner) { }
    public override int ExitCode => 1;
}

/// <summary>A partial-model file is malformed. Names the file and the field.</summary>
public sealed class ModelFormatException : BadInputException
{
    public ModelFormatException(string file, string field, string problem, Exception? inner = null)
        : base($"{file}: field '{field}': {problem}", inner)
    {
        File = file;
        Field = field;
        Problem = problem;
    }

    public string File { get; }
    public string Field { get; }
    public string Problem { get; }
}

/// <summary>A model, version or party that the registry does not know.</summary>
public sealed class UnknownModelException : BadInputException
{
    public UnknownModelException(string message) : base(message) { }
}

/// <summary>The combiner was given partial scores from fewer parties than the model has.</summary>
public sealed class IncompletePartiesException : BadInputException
{
    public IncompletePartiesException(string modelId, int version, IReadOnlyList<string> missing, string? sampleId = null)
        : base($"model '{modelId}' v{version}: no partial score from part{(missing.Count == 1 ? "y" : "ies")} " +
               $"{string.Join(", ", missing.Select(m => $"'{m}'"))}{(sampleId is null ? "" : $" for sample '{sampleId}'")}; " +
               "refusing to score from an incomplete set of parties")
    {
        MissingParties = missing;
        SampleId = sampleId;
    }

    public IReadOnlyList<string> MissingParties { get; }
    public string? SampleId { get; }
}

/// <summary>A feature the model needs is absent (column missing, or a value missing under the reject policy).</summary>
public sealed class MissingFeatureException : BadInputException
{
    public MissingFeatureException(string message, IReadOnlyList<string> features) : base(message) => Features = features;
    public IReadOnlyList<string> Features { get; }
}

/// <summary>Values quoted in messages are cut: a 10 MB header line must not become a 10 MB error.</summary>
public static class ErrorText
{
    public const int MaxQuoted = 200;

    /// <summary>The value itself, or its first 200 characters followed by "... (N chars)".</summary>
    public static string Cut(string? value, int max = MaxQuoted) =>
        value is null ? "" : value.Length <= max ? value : $"{value[..max]}... ({value.Length:N0} chars)";
}

/// <summary>An input does not come from the model version the registry holds (checksum differs). Names the party.</summary>
public sealed class ProvenanceException : BadInputException
{
    public ProvenanceException(string message) : base(message) { }
}

/// <summary>Nothing was scored (zero rows, zero predictions). Exit 3 so a scheduler notices; --allow-empty accepts it.</summary>
public sealed class EmptyResultException : FedException
{
    public EmptyResultException(string message) : base(message) { }
    public override int ExitCode => 3;
}
