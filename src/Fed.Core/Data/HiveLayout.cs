using System.Globalization;
using System.Text.RegularExpressions;

namespace Fed.Core.Data;

/// <summary>
/// Hive table layout on a file system: <c>TABLE/k1=v1/k2=v2/part-*.parquet</c>, the layout Hive, Spark, Trino and
/// DuckDB (hive_partitioning) read and write. Partition values are checked against a strict pattern, so a value never
/// names another folder (no '/', '..', quotes); files whose names start with '.' or '_' are hidden (temp files,
/// _SUCCESS, Fed's manifest), as for Hive and Spark.
/// </summary>
public static partial class HiveLayout
{
    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")] private static partial Regex SafeValue();

    /// <summary>A partition value that may appear as a folder name (and as a literal in generated SQL).</summary>
    public static string Value(string value, string what)
    {
        if (!SafeValue().IsMatch(value) || value.Contains(".."))
            throw new BadInputException($"{what} '{value}' cannot be a partition folder name: use letters, digits, '_', '.', '-'");
        return value;
    }

    /// <summary><c>root/k1=v1/k2=v2</c> (keys are Fed's own constants; values checked).</summary>
    public static string PartitionPath(string root, params (string Key, string Value)[] spec) =>
        Path.Combine([root, .. spec.Select(s => $"{s.Key}={Value(s.Value, s.Key)}")]);

    /// <summary>
    /// The existing folder of day <paramref name="dt"/> (and hour) under a table location. An hour folder may be
    /// written <c>hour=05</c> or <c>hour=5</c>; both at once is ambiguous and refused.
    /// </summary>
    public static string FindPartition(string table, string dt, int? hour)
    {
        if (!Directory.Exists(table)) throw new BadInputException($"{table}: no such table folder");
        var day = PartitionPath(table, ("dt", dt));
        if (!Directory.Exists(day)) throw new BadInputException($"{table}: no partition dt={dt} (expected the folder {day})");
        RefuseLink(day);
        if (hour is not { } h) return day;
        var forms = new[] { h.ToString("D2", CultureInfo.InvariantCulture), h.ToString(CultureInfo.InvariantCulture) }.Distinct()
            .Select(v => Path.Combine(day, "hour=" + v)).Where(Directory.Exists).ToList();
        if (forms.Count == 0) throw new BadInputException($"{table}: no partition dt={dt}/hour={h:D2} (nor hour={h})");
        if (forms.Count > 1) throw new BadInputException($"{table}: ambiguous hour partition: both {forms[0]} and {forms[1]} exist; keep one");
        RefuseLink(forms[0]);
        return forms[0];
    }

    /// <summary>The visible *.parquet files of a partition folder, in ordinal name order (the read order).</summary>
    public static string[] DataFiles(string dir)
    {
        var files = Directory.EnumerateFiles(dir, "*.parquet")
            .Where(f => Path.GetFileName(f) is var n && n[0] != '.' && n[0] != '_')
            .Order(StringComparer.Ordinal).ToArray();
        foreach (var f in files) RefuseLink(f);
        if (files.Length == 0) throw new BadInputException($"{dir}: no *.parquet files in this partition");
        return files;
    }

    /// <summary>A symbolic link inside a table could point anywhere (another party's data): refused.</summary>
    static void RefuseLink(string path)
    {
        if (new FileInfo(path).LinkTarget != null || new DirectoryInfo(path).LinkTarget != null)
            throw new BadInputException($"{path}: is a symbolic link; Fed reads only real files and folders inside the table location");
    }
}
