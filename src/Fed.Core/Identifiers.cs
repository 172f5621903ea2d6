using System.Text;
using System.Text.RegularExpressions;

namespace Fed.Core;

/// <summary>
/// The one place where names that may reach SQL, Redis keys, Kafka topics or file names are checked.
/// Fed never builds SQL from an unchecked name: table and column names must pass <see cref="SqlName"/>,
/// and values (model ids, feature names, sample ids) travel as bound parameters.
/// </summary>
public static partial class Identifiers
{
    public const int MaxLength = 128;

    [GeneratedRegex("^[a-z_][a-z0-9_]*$")]
    private static partial Regex SqlNamePattern();

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    private static partial Regex ModelIdPattern();

    /// <summary>A table or column name: lower-case letters, digits, underscore; not starting with a digit.
    /// Lower case because Hive folds identifiers; a mixed-case name would silently meet another.</summary>
    public static string SqlName(string value, string what = "identifier")
    {
        if (string.IsNullOrEmpty(value) || value.Length > MaxLength || !SqlNamePattern().IsMatch(value) || IsReserved(value))
            throw new BadInputException(
                $"unsafe {what} '{Printable(value)}': use 1-{MaxLength} characters of [a-z0-9_], not starting with a digit and not an SQL keyword");
        return value;
    }

    /// <summary>A model id or party id: letters, digits, '_', '.', '-'. Safe in Redis keys, Kafka keys and file names.</summary>
    public static string ModelId(string value, string what = "model id")
    {
        if (string.IsNullOrEmpty(value) || value.Length > MaxLength || !ModelIdPattern().IsMatch(value))
            throw new BadInputException(
                $"invalid {what} '{Printable(value)}': use 1-{MaxLength} characters of [A-Za-z0-9_.-], starting with a letter or digit");
        return value;
    }

    /// <summary>A party id is also used in table names (the per-party wide table), so it must be SQL-safe too.</summary>
    public static string PartyId(string value) => SqlName(value, "party id");

    /// <summary>A feature name is data (any printable text up to 128 chars, e.g. "od280/od315_of_diluted_wines").</summary>
    public static string FeatureName(string value)
    {
        if (string.IsNullOrWhiteSpace(value) || value.Length > MaxLength || value.Any(char.IsControl))
            throw new BadInputException($"invalid feature name '{Printable(value)}': use 1-{MaxLength} printable characters");
        return value;
    }

    /// <summary>
    /// The warehouse column that holds a feature: lower case, every other character '_'.
    /// Deterministic, so each party's feature tables and the converter agree without a lookup;
    /// collisions within one model are rejected by the model validation.
    /// </summary>
    public static string ColumnFor(string featureName)
    {
        var sb = new StringBuilder(featureName.Length + 2);
        foreach (var ch in featureName.ToLowerInvariant())
            sb.Append(ch is >= 'a' and <= 'z' or >= '0' and <= '9' or '_' ? ch : '_');
        var s = sb.ToString();
        if (s.Length == 0 || char.IsDigit(s[0]) || IsReserved(s)) s = "f_" + s;
        return s.Length > MaxLength ? s[..MaxLength] : s;
    }

    static string Printable(string? s) => s is null ? "(null)" : s.Length > 60 ? s[..60] + "..." : s.Replace("\n", "\\n").Replace("\r", "\\r");

    // Words that are reserved in HiveQL/Spark SQL, PostgreSQL or SQLite and would need quoting everywhere.
    static readonly HashSet<string> Reserved = new(StringComparer.Ordinal)
    {
        "all", "alter", "and", "any", "as", "asc", "between", "by", "case", "cast", "check", "column", "constraint",
        "create", "cross", "current", "date", "default", "delete", "desc", "distinct", "drop", "else", "end", "exists",
        "false", "for", "foreign", "from", "full", "grant", "group", "having", "in", "inner", "insert", "interval",
        "into", "is", "join", "left", "like", "limit", "not", "null", "of", "on", "or", "order", "outer", "partition",
        "primary", "references", "right", "rows", "select", "set", "table", "then", "to", "true", "union", "unique",
        "update", "user", "using", "values", "when", "where", "with", "timestamp", "time", "function", "range",
        "window", "over", "both", "leading", "trailing", "percent", "extended", "lateral", "macro", "map", "reduce",
        "transform", "array", "bigint", "binary", "boolean", "char", "decimal", "double", "float", "int", "smallint",
    };

    public static bool IsReserved(string name) => Reserved.Contains(name);
}
