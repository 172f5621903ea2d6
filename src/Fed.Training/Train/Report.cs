using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Fed.Training.Train;

/// <summary>The training report: report.json (loss per epoch, timings, sizes) and loss_curve.svg, drawn by hand.</summary>
public static class TrainingReport
{
    public static void Write(string dir, Dictionary<string, object?> report, IReadOnlyList<double> losses, string title)
    {
        Directory.CreateDirectory(dir);
        var json = Path.Combine(dir, "report.json");
        File.WriteAllText(json + ".tmp", JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
        File.Move(json + ".tmp", json, overwrite: true);
        File.WriteAllText(Path.Combine(dir, "loss_curve.svg"), LossCurveSvg(losses, title));
    }

    public static string LossCurveSvg(IReadOnlyList<double> losses, string title)
    {
        const int W = 640, H = 400, L = 70, R = 20, T = 40, B = 50;
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">\n");
        sb.Append($"<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n");
        sb.Append($"<text x=\"{W / 2}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{System.Security.SecurityElement.Escape(title)}</text>\n");
        sb.Append($"<line x1=\"{L}\" y1=\"{H - B}\" x2=\"{W - R}\" y2=\"{H - B}\" stroke=\"black\"/><line x1=\"{L}\" y1=\"{T}\" x2=\"{L}\" y2=\"{H - B}\" stroke=\"black\"/>\n");
        sb.Append($"<text x=\"{(L + W - R) / 2}\" y=\"{H - 12}\" text-anchor=\"middle\">epoch</text>\n");
        sb.Append($"<text x=\"16\" y=\"{(T + H - B) / 2}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {(T + H - B) / 2})\">loss</text>\n");
        if (losses.Count > 0)
        {
            var lo = losses.Min(); var hi = losses.Max();
            if (hi - lo < 1e-12) { hi += 0.5; lo -= 0.5; }
            double X(int i) => L + (losses.Count == 1 ? 0.5 : (double)i / (losses.Count - 1)) * (W - L - R);
            double Y(double v) => H - B - (v - lo) / (hi - lo) * (H - T - B);
            for (var t = 0; t <= 4; t++)
            {
                var v = lo + (hi - lo) * t / 4;
                sb.Append(inv, $"<line x1=\"{L - 4}\" y1=\"{Y(v):F1}\" x2=\"{W - R}\" y2=\"{Y(v):F1}\" stroke=\"#ddd\"/><text x=\"{L - 6}\" y=\"{Y(v) + 4:F1}\" text-anchor=\"end\">{v:G4}</text>\n");
            }
            var step = Math.Max(1, losses.Count / 8);
            for (var i = 0; i < losses.Count; i += step)
                sb.Append(inv, $"<text x=\"{X(i):F1}\" y=\"{H - B + 16}\" text-anchor=\"middle\">{i + 1}</text>\n");
            sb.Append("<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"");
            for (var i = 0; i < losses.Count; i++) sb.Append(inv, $"{X(i):F1},{Y(losses[i]):F1} ");
            sb.Append("\"/>\n");
            for (var i = 0; i < losses.Count; i++) sb.Append(inv, $"<circle cx=\"{X(i):F1}\" cy=\"{Y(losses[i]):F1}\" r=\"2.5\" fill=\"#1f77b4\"/>\n");
        }
        sb.Append("</svg>\n");
        return sb.ToString();
    }
}
