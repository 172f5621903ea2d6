using System.Globalization;
using System.Text;
using Fed.Core;
using Fed.Core.Data;
using Fed.Core.Model;
using Fed.Core.Scoring;

namespace Fed.SparkPredict;

/// <summary>
/// 'fed predict local': the reference every other path is compared with. Reads every *.json partial-model file in a
/// directory, scores each party's CSV with the one scorer, intersects ids, combines with the one combiner and writes
/// <c>id,prediction</c> (logistic/linear) or <c>id,predicted_class,p_&lt;class&gt;...</c> (softmax). Samples missing or
/// rejected at some party are listed in the report, never scored.
/// </summary>
public static class LocalPredictor
{
    public sealed record Result(CombinedPredictions Predictions, string OutPath, string ReportPath, Dictionary<string, ScoringRunResult> Runs);

    public static Dictionary<string, PartialModel> ReadModels(string dir)
    {
        if (!Directory.Exists(dir)) throw new BadInputException($"--models {dir}: no such directory");
        // `fed train` writes <party>.model.json beside report.json; a hand-made directory may hold plain *.json.
        var pattern = Directory.EnumerateFiles(dir, "*.model.json").Any() ? "*.model.json" : "*.json";
        var models = Directory.EnumerateFiles(dir, pattern).Where(f => !f.EndsWith(CompletionSuffix, StringComparison.Ordinal))
            .Order(StringComparer.Ordinal).Select(ModelFile.Read).ToList();
        if (models.Count == 0) throw new BadInputException($"--models {dir}: no *.model.json or *.json partial-model files");
        var keys = models.Select(m => $"{m.ModelId} v{m.Version}").Distinct().ToList();
        if (keys.Count > 1) throw new BadInputException($"--models {dir} holds several models ({string.Join(", ", keys)}); give a directory with one model version's partial-model files");
        var byParty = new Dictionary<string, PartialModel>(StringComparer.Ordinal);
        foreach (var m in models)
        {
            if (!byParty.TryAdd(m.PartyId, m)) throw new BadInputException($"--models {dir}: two files for party '{m.PartyId}'");
            if (!m.Parties.SequenceEqual(models[0].Parties) || m.Kind != models[0].Kind || !m.Classes.SequenceEqual(models[0].Classes))
                throw new BadInputException($"--models {dir}: party '{m.PartyId}' disagrees with '{models[0].PartyId}' on the parties, kind or classes");
        }
        var absent = models[0].Parties.Where(p => !byParty.ContainsKey(p)).ToArray();
        if (absent.Length > 0) throw new IncompletePartiesException(models[0].ModelId, models[0].Version, absent);
        return byParty;
    }

    /// <summary>A transfer-learning party's part on customers it does not hold (`fed train local --protocol transfer`).</summary>
    public const string CompletionSuffix = ".completion.model.json";

    /// <summary>The completion models in the directory, by party; each must belong to the same model as the main files.</summary>
    public static Dictionary<string, PartialModel> ReadCompletions(string dir, ModelSignature sig)
    {
        var byParty = new Dictionary<string, PartialModel>(StringComparer.Ordinal);
        foreach (var m in Directory.EnumerateFiles(dir, "*" + CompletionSuffix).Order(StringComparer.Ordinal).Select(ModelFile.Read))
        {
            if (m.ModelId != sig.ModelId || m.Version != sig.Version || m.Kind != sig.Kind || !m.Parties.SequenceEqual(sig.Parties))
                throw new BadInputException($"--models {dir}: the completion model of '{m.PartyId}' belongs to {m.ModelId} v{m.Version}, not {sig.ModelId} v{sig.Version}");
            if (!byParty.TryAdd(m.PartyId, m)) throw new BadInputException($"--models {dir}: two completion files for party '{m.PartyId}'");
        }
        return byParty;
    }

    /// <param name="masked">Masked reference: every party's scores go through <see cref="ScoreMasker"/> (fresh X25519 keys
    /// per run, a fresh request context) and the combiner sums the ring elements; the bits every masked path must give.</param>
    /// <param name="initiator">Masked only: who combines, a party id or <see cref="MaskingPolicy.External"/> (default: the guest).</param>
    public static Result Run(string modelsDir, IReadOnlyList<(string Party, string Path)> inputs, string outPath, string idColumn = "id", string? reportPath = null,
        bool masked = false, string? initiator = null)
    {
        var models = ReadModels(modelsDir);
        // Predictions, report and missing-id list appear together at the end, or not at all; none may be an input.
        using var outputs = new StagedOutputs(inputs.Select(i => i.Path).Concat(Directory.EnumerateFiles(modelsDir)));
        var rp = reportPath ?? outPath + ".report.json";
        var outTemp = outputs.Stage(outPath, "--out");
        var reportTemp = outputs.Stage(rp, "--report");
        var any = models.Values.First();
        var sig = new ModelSignature(any.ModelId, any.Version, any.Kind, any.Classes, any.Parties);
        foreach (var (party, _) in inputs)
            if (!models.ContainsKey(party)) throw new BadInputException($"--party {party}: model '{sig.ModelId}' has no party '{party}' (parties: {string.Join(", ", sig.Parties)})");
        var completions = ReadCompletions(modelsDir, sig);
        var missingInputs = sig.Parties.Where(p => inputs.All(i => i.Party != p)).ToArray();
        if (missingInputs.Length > 0 && (completions.Count == 0 || !missingInputs.All(completions.ContainsKey)))
            throw new IncompletePartiesException(sig.ModelId, sig.Version, missingInputs);
        if (inputs.Select(i => i.Party).Distinct().Count() != inputs.Count) throw new BadInputException("--party given twice for the same party");

        var runs = new Dictionary<string, ScoringRunResult>();
        var sets = new List<PartialScoreSet>();
        foreach (var (party, path) in inputs)
        {
            var model = ScoringModel.From(models[party]);
            var stats = new ScoringRunResult { Engine = "local" };
            using var source = new CsvFeatureSource(path, model.Features, idColumn);
            sets.Add(LocalEngine.ScoreToMemory(model, source, stats));
            runs[party] = stats;
        }
        MaskingPolicy? policy = null;
        if (masked)
        {
            policy = MaskingPolicy.For(sig, initiator, true);
            var keys = MaskKeys.Ephemeral(policy.Maskers);
            var context = MaskContext.Request(sig.ModelId, sig.Version, "local-" + Guid.NewGuid().ToString("N"));
            sets = sets.Select(s =>
            {
                using var masker = new ScoreMasker(sig, policy, s.Party, keys.TryGetValue(s.Party, out var k) ? k.PairSecrets(sig, policy) : [], context);
                return s.MaskWith(masker);
            }).ToList();
        }
        if (masked && completions.Count > 0)
            throw new BadInputException($"--masked: {modelsDir} holds transfer-learning completion models; masked scoring of completed parts is not supported yet");
        var pred = completions.Count == 0 ? CombineCore.Combine(sig, sets, expectMasked: masked) : WithCompletions(sig, sets, inputs, completions, idColumn, runs);
        WriteCsv(pred, outTemp);
        var report = new Dictionary<string, object?>
        {
            ["model_id"] = sig.ModelId, ["version"] = sig.Version, ["predictions"] = pred.Count, ["out"] = Path.GetFullPath(outPath),
            ["rows_by_party"] = pred.RowsByParty,
            ["masking"] = policy is null ? "off" : policy.Describe(sig),
            ["completed_by_party"] = pred.Completed is null ? null
                : sig.Parties.ToDictionary(p => p, p => pred.Completed.Count(c => c.Split(';').Contains(p))),
            ["parties"] = runs.ToDictionary(kv => kv.Key, kv => kv.Value.ToReport()),
        };
        CoverageReport.Write(outputs, rp, reportTemp, report, pred.Missing);
        outputs.Commit();
        return new Result(pred, Path.GetFullPath(outPath), Path.GetFullPath(rp), runs);
    }

    /// <summary>
    /// Transfer-learning models: customers every given party holds are combined as usual; a customer only party Q holds
    /// is combined from Q's part and every other party's completion part, scored on Q's file (the common features),
    /// and flagged with those parties.
    /// </summary>
    static CombinedPredictions WithCompletions(ModelSignature sig, List<PartialScoreSet> sets, IReadOnlyList<(string Party, string Path)> inputs,
        Dictionary<string, PartialModel> completions, string idColumn, Dictionary<string, ScoringRunResult> runs)
    {
        var parts = new List<(CombinedPredictions P, string Flag)>();
        var held = new HashSet<string>(StringComparer.Ordinal);
        if (inputs.Count == sig.Parties.Length)
        {
            var full = CombineCore.Combine(sig, sets);
            parts.Add((full, ""));
            held.UnionWith(full.Ids);
        }
        for (var q = 0; q < inputs.Count; q++)
        {
            var (party, path) = inputs[q];
            var others = sig.Parties.Where(p => p != party).ToArray();
            var absent = others.Where(p => !completions.ContainsKey(p)).ToArray();
            if (absent.Length > 0) throw new IncompletePartiesException(sig.ModelId, sig.Version, absent);
            var onlyHere = sets[q].Ids.Where(id => !held.Contains(id)).ToHashSet(StringComparer.Ordinal);
            var qsets = new List<PartialScoreSet> { sets[q] };
            foreach (var p in others)
            {
                var model = ScoringModel.From(completions[p]);
                var stats = new ScoringRunResult { Engine = "local" };
                using var source = new CsvFeatureSource(path, model.Features, idColumn);
                qsets.Add(LocalEngine.ScoreToMemory(model, source, stats));
                runs[$"{p}.completion@{party}"] = stats;
            }
            parts.Add((CombineCore.Combine(sig, qsets, onlyHere), string.Join(";", others)));
            held.UnionWith(onlyHere);
        }
        return new CombinedPredictions
        {
            Model = sig, Ids = parts.SelectMany(p => p.P.Ids).ToArray(), Values = parts.SelectMany(p => p.P.Values).ToArray(),
            Missing = parts.SelectMany(p => p.P.Missing).Where(m => !held.Contains(m.SampleId)).ToList(),
            RowsByParty = sets.ToDictionary(s => s.Party, s => (long)s.Count),
            Completed = parts.SelectMany(p => Enumerable.Repeat(p.Flag, p.P.Count)).ToArray(),
        };
    }

    public static void WriteCsv(CombinedPredictions p, string path)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var tmp = full + ".tmp";
        using (var w = new StreamWriter(tmp, false, new UTF8Encoding(false), 1 << 16))
        {
            var softmax = PartialModel.HasClasses(p.Model.Kind);
            w.Write(softmax ? "id,predicted_class" + string.Concat(p.Model.Classes.Select(c => ",p_" + c)) : "id,prediction");
            if (p.Completed != null) w.Write(",completed");
            w.Write('\n');
            for (var r = 0; r < p.Count; r++)
            {
                w.Write(Quote(p.Ids[r]));
                if (softmax)
                {
                    w.Write(',');
                    w.Write(Quote(p.ClassLabel(r)!));
                    for (var c = 0; c < p.Probabilities!.Length; c++) { w.Write(','); w.Write(p.Probabilities[c][r].ToString("R", CultureInfo.InvariantCulture)); }
                }
                else { w.Write(','); w.Write(p.Values[r].ToString("R", CultureInfo.InvariantCulture)); }
                if (p.Completed != null) { w.Write(','); w.Write(Quote(p.Completed[r])); }
                w.Write('\n');
            }
        }
        File.Move(tmp, full, overwrite: true);
    }

    internal static string Quote(string s) => s.IndexOfAny([',', '"', '\n']) < 0 ? s : "\"" + s.Replace("\"", "\"\"") + "\"";
}
