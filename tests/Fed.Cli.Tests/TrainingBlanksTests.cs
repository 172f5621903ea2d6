using System.Text.Json.Nodes;

namespace Fed.Cli.Tests;

/// <summary>Issue 15 finding 7: training says how many blank values it filled with the mean, per feature.</summary>
public class TrainingBlanksTests
{
    [Fact]
    public void Training_counts_the_blanks_it_filled_with_the_mean_per_feature_on_stderr_in_the_report_and_in_the_json()
    {
        var h = new Harness();
        var guest = File.ReadAllLines(Path.Combine(Harness.Samples, "guest.csv"));
        var host = File.ReadAllLines(Path.Combine(Harness.Samples, "host.csv"));
        var shared = guest.Skip(1).Select(l => l.Split(',')[0]).Intersect(host.Skip(1).Select(l => l.Split(',')[0])).ToList();
        // Blank cells of ids both parties hold (so they are aligned and, with --test-buckets 0, all trained on).
        static string[] Blank(string[] lines, IEnumerable<string> ids, int column)
        {
            var set = ids.ToHashSet();
            return lines.Select((l, i) =>
            {
                var cells = l.Split(',');
                if (i > 0 && set.Contains(cells[0])) cells[column] = "";
                return string.Join(',', cells);
            }).ToArray();
        }
        guest = Blank(guest, shared.Take(5), 3);       // mean_texture
        guest = Blank(guest, shared.Skip(10).Take(2), 5); // mean_area
        host = Blank(host, shared.Skip(20).Take(3), 1);   // the host's first feature
        var hostFeature = host[0].Split(',')[1];
        File.WriteAllLines(h.Path("guest.csv"), guest);
        File.WriteAllLines(h.Path("host.csv"), host);
        string[] Train(string outDir) =>
            ["train", "local", "--kind", "logistic", "--party", "guest=" + h.Path("guest.csv"), "--party", "host=" + h.Path("host.csv"),
             "--out", h.Path(outDir), "--key-bits", "1024", "--insecure-test-key-bits", "--max-iter", "2", "--test-buckets", "0"];

        var r = h.Fed(Train("a"));
        Assert.True(r.Code == 0, r.ToString());
        var lines = r.Err.Split('\n');
        Assert.Contains("guest: filled 7 blank values with the training mean (mean_texture 5, mean_area 2)", lines);
        Assert.Contains($"host: filled 3 blank values with the training mean ({hostFeature} 3)", lines);
        Assert.DoesNotContain("filled", r.Out); // a line for people on stderr; stdout holds only the summary
        var report = JsonNode.Parse(File.ReadAllText(h.Path("a/report.json")))!["filled_with_mean"]!;
        Assert.Equal(5, (int)report["guest"]!["mean_texture"]!);
        Assert.Equal(2, (int)report["guest"]!["mean_area"]!);
        Assert.Equal(3, (int)report["host"]![hostFeature]!);
        Assert.Equal(2, report["guest"]!.AsObject().Count);

        // --json: stdout is the one document, the counts a field of it.
        var j = h.Fed([.. Train("b"), "--json"]);
        Assert.True(j.Code == 0, j.ToString());
        Assert.Single(j.Out.TrimEnd('\n').Split('\n'));
        Assert.Equal(7, j.Json["filled_with_mean"]!["guest"]!.AsObject().Sum(p => (int)p.Value!));
        Assert.Equal(3, (int)j.Json["filled_with_mean"]!["host"]![hostFeature]!);
    }
}
