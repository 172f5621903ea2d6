using System.Text;
using Fed.Core;

namespace Fed.SparkPredict;

/// <summary>
/// The coverage report of a combine at any scale: counts and the first <see cref="FirstIds"/> missing samples in the
/// JSON, every missing sample in a CSV beside it (<c>&lt;report&gt;.missing.csv</c>: sample_id,missing_parties), both
/// staged with the command's other outputs.
/// </summary>
public static class CoverageReport
{
    public const int FirstIds = 100;

    public static string IdsPath(string reportPath) =>
        Path.Combine(Path.GetDirectoryName(Path.GetFullPath(reportPath))!, Path.GetFileNameWithoutExtension(reportPath) + ".missing.csv");

    public static void Write(StagedOutputs outputs, string reportPath, string reportTemp, Dictionary<string, object?> report, IReadOnlyList<MissingSample> missing)
    {
        var idsPath = IdsPath(reportPath);
        using (var w = new StreamWriter(outputs.Stage(idsPath, "missing-id list"), false, new UTF8Encoding(false), 1 << 16))
        {
            w.Write("sample_id,missing_parties\n");
            foreach (var m in missing) w.Write($"{LocalPredictor.Quote(m.SampleId)},{LocalPredictor.Quote(string.Join(';', m.MissingParties))}\n");
        }
        report["missing_count"] = missing.Count;
        report["missing_first"] = missing.Take(FirstIds).Select(m => new { sample_id = m.SampleId, missing_parties = m.MissingParties }).ToList();
        report["missing_ids_file"] = idsPath;
        File.WriteAllText(reportTemp, System.Text.Json.JsonSerializer.Serialize(report, new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
    }
}
