using Fed.Core.Model;
using Fed.Warehouse;
using Fed.Warehouse.Sqlite;

namespace Fed.Warehouse.Tests;

public static class Fixtures
{
    public static string RepoRoot => Fed.TestSupport.TestEnvironment.RepoRoot;

    public static string TempDir()
    {
        var d = Path.Combine(Path.GetTempPath(), "fed-wh-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(d);
        return d;
    }

    public static SqliteWarehouse Sqlite(out string path)
    {
        path = Path.Combine(TempDir(), "warehouse.db");
        return new SqliteWarehouse(path);
    }

    /// <summary>A deterministic partial model with awkward numbers and names.</summary>
    public static PartialModel Model(string party = "guest", PartyRole role = PartyRole.Guest, int k = 6, ModelKind kind = ModelKind.Logistic,
        int version = 1, string modelId = "credit_risk", int seed = 5, string[]? features = null, MissingPolicy? missing = null)
    {
        var rng = new Random(seed);
        var classes = kind == ModelKind.Softmax ? new[] { "low", "mid", "high" } : [];
        var outputs = kind == ModelKind.Softmax ? 3 : 1;
        features ??= Enumerable.Range(0, k).Select(i => i == 1 ? $"{party}.odd/name {i}" : $"{party}_f{i}").ToArray();
        k = features.Length;
        double W() => rng.Next(4) switch { 0 => 1e-300 * rng.NextDouble(), 1 => -1e300 * rng.NextDouble(), 2 => 1 / 3.0 * rng.NextDouble(), _ => rng.NextDouble() - 0.5 };
        return ModelFile.Stamp(new PartialModel
        {
            ModelId = modelId, Version = version, Kind = kind, Classes = classes, PartyId = party, Role = role,
            Parties = role == PartyRole.Guest ? [party, "host"] : ["guest", party], Features = features,
            Weights = Enumerable.Range(0, outputs).Select(_ => Enumerable.Range(0, k).Select(_ => W()).ToArray()).ToArray(),
            Intercepts = role == PartyRole.Guest ? Enumerable.Range(0, outputs).Select(_ => W()).ToArray() : [],
            Transform = new FeatureTransform(TransformKind.Standardize, Enumerable.Range(0, k).Select(i => i * 0.1).ToArray(), Enumerable.Range(0, k).Select(i => 0.5 + i).ToArray()),
            Missing = missing ?? MissingPolicy.RejectRow,
        });
    }

    /// <summary>Every row of every table, as text, to prove a failed operation changed nothing.</summary>
    public static string Snapshot(IWarehouse w)
    {
        var sb = new System.Text.StringBuilder();
        var tables = new List<string>();
        using (var r = w.Query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"))
            while (r.Read()) tables.Add(r.GetString(0));
        foreach (var t in tables)
        {
            sb.AppendLine("## " + t);
            using var r = w.Query($"SELECT {string.Join(", ", w.Dialect.ColumnsOf(w, t).Select(w.Dialect.Id))} FROM {w.Dialect.Id(t)}");
            var lines = new List<string>();
            while (r.Read())
                lines.Add(string.Join("|", Enumerable.Range(0, r.FieldCount).Select(i => r.IsNull(i) ? "NULL" : r.GetString(i))));
            lines.Sort(StringComparer.Ordinal);
            foreach (var l in lines) sb.AppendLine(l);
        }
        return sb.ToString();
    }
}
