using Fed.Core;
using Fed.Core.Model;
using Fed.Training.Data;
using Fed.Training.Protocol;

namespace Fed.Training.Train;

/// <summary>
/// The centralized plaintext reference run: joins the parties' files on the id in the clear (the aligned order is the
/// guest's PSI order, SHA-256(id) bytewise, so batches match the federated run), applies the same per-party
/// preprocessing and runs <see cref="PlainTrainer"/>. Produces partial models in the same file format.
/// </summary>
public static class PlainReference
{
    public sealed record Result(TrainResult Train, IReadOnlyList<PartialModel> Models, int Intersection);

    public static Result Run(IReadOnlyList<LocalParty> parties, string idColumn, string labelColumn, TrainOptions o, Action<int, double>? progress = null)
    {
        o.Validate();
        var (guestParty, hostParties) = LocalTraining.Roles(parties, labelColumn);
        var tables = new List<PartyTable> { PartyTable.Load(guestParty.Path, idColumn, labelColumn) };
        tables.AddRange(hostParties.Select(h => PartyTable.Load(h.Path, idColumn, null)));
        var names = new[] { guestParty.Name }.Concat(hostParties.Select(h => h.Name)).ToArray();
        var idx = tables.Select(t => t.Ids.Select((id, i) => (id, i)).ToDictionary(x => x.id, x => x.i, StringComparer.Ordinal)).ToList();
        var common = tables[0].Ids.Where(id => idx.All(ix => ix.ContainsKey(id)))
            .OrderBy(id => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(id))), StringComparer.Ordinal)
            .ToArray();
        if (common.Length == 0) throw new BadInputException("empty intersection: the parties share no ids");
        var aligned = tables.Select((t, p) => t.Select(common.Select(id => idx[p][id]).ToArray())).ToList();
        var (train, _) = BatchPlan.Split(common, new SplitRule(o.TestBuckets));
        var labels = train.Select(i => aligned[0].Labels![i]).ToArray();
        var enc = LabelEncoding.For(o.Kind, labels, guestParty.Path);
        var stds = aligned.Select(t => Standardizer.Fit(t.Columns, train)).ToList();
        var blocks = aligned.Select((t, p) => stds[p].Transform(t.Columns, train)).ToList();
        var result = PlainTrainer.Train(o, blocks, enc.Targets(labels), progress);
        var models = aligned.Select((t, p) => ModelFile.Stamp(new PartialModel
        {
            ModelId = o.ModelId, Version = o.Version, Kind = o.Kind, Classes = o.Kind == ModelKind.Softmax ? enc.Classes : [],
            PartyId = names[p], Role = p == 0 ? PartyRole.Guest : PartyRole.Host, Parties = names, Features = t.Features,
            Weights = result.Parties[p].W, Intercepts = result.Parties[p].Intercepts,
            Transform = stds[p].ToTransform(), Missing = stds[p].ToMissingPolicy(),
            Training = new SortedDictionary<string, string>(StringComparer.Ordinal) { ["algorithm"] = "plaintext-reference", ["epochs"] = result.Epochs.ToString() },
        })).ToList();
        return new Result(result, models, common.Length);
    }
}
