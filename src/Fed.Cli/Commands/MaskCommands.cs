using Fed.Core;
using Fed.Core.Scoring;

namespace Fed.Cli.Commands;

/// <summary>fed mask ...: a party's X25519 mask key and its pinned peers (docs/privacy.md, "Masked partial scores").</summary>
public static class MaskCommands
{
    public static IReadOnlyList<CliCommand> All =>
    [
        new("mask keygen", "Create this party's mask key pair (private file, mode 0600) and write its public half for the other parties",
            [new CliOption("party", "this party's id", Required: true), new CliOption("keys", "the private key file to create", Required: true),
             new CliOption("public-out", "where to write the public half (hand it to the other parties)", Required: true)],
            (a, o) =>
            {
                var path = a.Get("keys");
                if (File.Exists(path)) throw new BadInputException($"--keys {ErrorText.Cut(path)} exists; a party keeps one mask key (remove it deliberately to replace it)");
                var keys = MaskKeys.Generate(a.Get("party"));
                using var staged = new StagedOutputs([]);
                var pub = staged.Stage(a.Get("public-out"), "--public-out");
                File.WriteAllText(pub, keys.PublicJson());
                keys.Write(path);
                staged.Commit();
                var fp = MaskKeys.Fingerprint(keys.PublicKey);
                o.Say($"mask key of '{keys.Party}' -> {path} (0600); public half -> {a.Get("public-out")}; fingerprint {fp}");
                o.Result(new { ok = true, party = keys.Party, keys = Path.GetFullPath(path), public_out = Path.GetFullPath(a.Get("public-out")), fingerprint = fp });
                return 0;
            }),
        new("mask trust", "Pin another party's public mask key (compare the printed fingerprint with that party out of band)",
            [new CliOption("keys", "this party's mask key file", Required: true), new CliOption("public", "the peer's public half (from its 'fed mask keygen')", Required: true),
             new CliOption("fingerprint", "the fingerprint the peer told you; refused if it differs")],
            (a, o) =>
            {
                var keys = MaskKeys.Read(a.Get("keys"));
                var (peer, key) = MaskKeys.ReadPublic(a.Get("public"));
                var fp = MaskKeys.Fingerprint(key);
                if (a.Opt("fingerprint") is { } want && want != fp) throw new BadInputException($"--fingerprint: '{ErrorText.Cut(want, 80)}' differs from the key's {fp}; not pinned");
                keys.Pin(peer, key);
                keys.Write(a.Get("keys"));
                o.Say($"'{keys.Party}' pins '{peer}' at {fp}");
                o.Result(new { ok = true, party = keys.Party, peer, fingerprint = fp });
                return 0;
            }),
        new("mask show", "Show a mask key file: the party, its public fingerprint and its pinned peers (never the private key)",
            [new CliOption("keys", "a mask key file", Required: true)],
            (a, o) =>
            {
                var keys = MaskKeys.Read(a.Get("keys"));
                var peers = keys.Peers.ToDictionary(kv => kv.Key, kv => MaskKeys.Fingerprint(kv.Value));
                o.Say($"'{keys.Party}' {MaskKeys.Fingerprint(keys.PublicKey)}");
                foreach (var (p, fp) in peers) o.Say($"  pinned '{p}' {fp}");
                o.Result(new { ok = true, party = keys.Party, fingerprint = MaskKeys.Fingerprint(keys.PublicKey), peers });
                return 0;
            }),
    ];
}
