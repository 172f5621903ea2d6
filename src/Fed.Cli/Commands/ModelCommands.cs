using Fed.Core;
using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.Import.Fate;

namespace Fed.Cli.Commands;

/// <summary>fed model ...: inspect and validate partial-model files; import other frameworks' models.</summary>
public static class ModelCommands
{
    public static IReadOnlyList<CliCommand> All =>
    [
        new("model show", "Validate a partial-model file and print what it holds",
            [new CliOption("model", "partial-model file (JSON)", Required: true)],
            (a, o) =>
            {
                var m = ModelFile.Read(a.Get("model"));
                var s = ScoringModel.From(m);
                o.Say($"{m.ModelId} v{m.Version} {PartialModel.KindName(m.Kind)}: party '{m.PartyId}' ({PartialModel.RoleName(m.Role)}) of [{string.Join(", ", m.Parties)}]");
                o.Say($"  {m.Features.Length} features, {m.OutputCount} output(s), transform {m.Transform.Kind}, missing policy {m.Missing.Kind}");
                o.Say($"  checksum {m.Checksum}");
                o.Result(new
                {
                    ok = true, model_id = m.ModelId, version = m.Version, kind = PartialModel.KindName(m.Kind), classes = m.Classes,
                    party = m.PartyId, role = PartialModel.RoleName(m.Role), parties = m.Parties, features = m.Features,
                    constants = s.Constants, checksum = m.Checksum,
                });
                return 0;
            }),
        new("model import", "Import one party's model trained by another framework (FATE hetero LR/LinR) as a Fed partial-model file",
            [
                new CliOption("from", "the framework: fate (FATE 1.x LRModelParam/LinRModelParam, protobuf or JSON; FATE 2.x coordinated_lr/linr JSON)", Required: true),
                new CliOption("in", "the party's FATE model parameter file", Required: true),
                new CliOption("kind", "logistic (HeteroLR / coordinated_lr; one-vs-rest if the file is) | linear (HeteroLinR / coordinated_linr)", Required: true),
                new CliOption("role", "guest | host", Required: true),
                new CliOption("party", "this party's Fed id", Required: true),
                new CliOption("parties", "every party's Fed id, comma-separated, guest first", Required: true),
                new CliOption("model-id", "Fed model id", Required: true),
                new CliOption("version", "Fed model version", Default: "1"),
                new CliOption("missing", "reject | default:FILE (JSON object: feature -> raw default, FATE's missing fill values)", Required: true),
                new CliOption("scale", "FATE FeatureScale parameter (ScaleParam, protobuf or JSON) to fold in"),
                new CliOption("scale-clip", "refuse | assume-in-range: FATE clips scaled values to the training range, a linear part cannot", Default: "refuse"),
                new CliOption("header", "FATE 2.x only: the party's feature names, comma-separated, in training-data column order"),
                new CliOption("classes", "one-vs-rest host only: the guest's class labels, comma-separated (a host's file numbers them 0..n-1)"),
                new CliOption("out", "where to write the partial-model file", Required: true),
            ],
            (a, o) =>
            {
                if (a.Get("from") != "fate") throw new BadInputException($"--from {a.Get("from")}: only 'fate' is supported");
                if (!PartialModel.TryParseKind(a.Get("kind"), out var kind) || kind is not (ModelKind.Logistic or ModelKind.Linear))
                    throw new BadInputException($"--kind must be logistic or linear, got '{a.Get("kind")}'");
                var role = a.Get("role") switch
                {
                    "guest" => PartyRole.Guest,
                    "host" => PartyRole.Host,
                    var r => throw new BadInputException($"--role must be guest or host, got '{r}'"),
                };
                var clip = a.Get("scale-clip") switch
                {
                    "refuse" => ScaleClip.Refuse,
                    "assume-in-range" => ScaleClip.AssumeInRange,
                    var c => throw new BadInputException($"--scale-clip must be refuse or assume-in-range, got '{c}'"),
                };
                static string[]? List(string? s) => s?.Split(',', StringSplitOptions.TrimEntries);
                var m = FateImporter.Import(new FateImportRequest
                {
                    InputPath = a.Get("in"), Kind = kind, Role = role, PartyId = a.Get("party"), Parties = List(a.Get("parties"))!,
                    ModelId = a.Get("model-id"), Version = a.Int("version"), Missing = a.Get("missing"),
                    ScalePath = a.Opt("scale"), ScaleClip = clip, Header = List(a.Opt("header")), Classes = List(a.Opt("classes")),
                });
                var written = ModelFile.Write(m, a.Get("out"));
                o.Say($"wrote {a.Get("out")}: {m.ModelId} v{m.Version} {PartialModel.KindName(m.Kind)}, party '{m.PartyId}' ({PartialModel.RoleName(m.Role)}), " +
                      $"{m.Features.Length} features from {m.Training["imported_from"]} ({written.Checksum})");
                o.Result(new
                {
                    ok = true, path = a.Get("out"), model_id = m.ModelId, version = m.Version, kind = PartialModel.KindName(m.Kind),
                    classes = m.Classes, party = m.PartyId, features = m.Features.Length, imported_from = m.Training["imported_from"], checksum = written.Checksum,
                });
                return 0;
            }),
    ];
}
