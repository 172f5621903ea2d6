using Fed.Core.Model;
using Fed.Core.Scoring;

namespace Fed.Cli.Commands;

/// <summary>fed model ...: inspect and validate partial-model files.</summary>
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
    ];
}
