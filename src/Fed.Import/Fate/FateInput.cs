using System.Globalization;
using System.Text.Json;
using Fed.Core;

namespace Fed.Import.Fate;

/// <summary>Checks shared by the FATE readers; each error names the file and FATE's field.</summary>
static class FateInput
{
    /// <summary>JSON if the first non-blank byte opens an object; anything else is taken as protobuf binary.</summary>
    public static bool IsJson(byte[] bytes)
    {
        foreach (var b in bytes)
        {
            if (b is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n') continue;
            // A UTF-8 byte order mark before the brace.
            if (b == 0xEF) continue;
            return b == (byte)'{';
        }
        return false;
    }

    public static JsonDocument ParseJson(byte[] bytes, string source)
    {
        try { return JsonDocument.Parse(bytes.AsMemory(), new JsonDocumentOptions { MaxDepth = 64 }); }
        catch (JsonException e) { throw new ModelFormatException(source, $"(json, line {e.LineNumber + 1})", $"not valid JSON: {e.Message}", e); }
    }

    public static string[] CheckHeader(string[] header, string source, string field)
    {
        if (header.Length == 0) throw new ModelFormatException(source, field, "empty: FATE's header names the features the weights belong to");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < header.Length; i++)
        {
            if (string.IsNullOrWhiteSpace(header[i])) throw new ModelFormatException(source, $"{field}[{i}]", "empty feature name");
            if (!seen.Add(header[i])) throw new ModelFormatException(source, $"{field}[{i}]", $"duplicate feature '{header[i]}'");
        }
        return header;
    }

    public static void Finite(double v, string source, string field)
    {
        if (!double.IsFinite(v)) throw new ModelFormatException(source, field, $"{v.ToString(CultureInfo.InvariantCulture)} is not a finite number (NaN and Infinity are refused)");
    }
}
