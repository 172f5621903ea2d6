using System.Numerics;
using System.Text.Json.Serialization;
using Fed.Core;
using Fed.Core.Model;
using Fed.Training.Crypto;
using Fed.Training.Data;
using Fed.Training.Protocol;
using Fed.Training.Train;

namespace Fed.Training.Transfer;

/// <summary>Guest -> host, first message: the model kind, the common features the guest proposes, and who is who.</summary>
public sealed record TransferHello(string Kind, string[] Common, string Guest, string Host, string Arbiter);

/// <summary>Host -> guest: the host's training-row and feature counts.</summary>
public sealed record TransferInfo(int TrainRows, int Features);

/// <summary>Guest -> host and arbiter: everything needed to follow the run (control values only).</summary>
public sealed record TransferPlan(
    string Kind, string[] Common, string[] Parties, int[] TrainRows, int[] Features, int TestBuckets,
    int MaxIter, double LearningRate, double L2, double Tolerance, double? LossThreshold, int KeyBits, string ModelId, int Version)
{
    [JsonIgnore] public int Total => TrainRows.Sum();
    [JsonIgnore] public ModelKind ModelKind { get { PartialModel.TryParseKind(Kind, out var k); return k; } }

    public TrainOptions ToOptions() => new()
    {
        Kind = ModelKind, MaxIter = MaxIter, LearningRate = LearningRate, L2 = L2, Tolerance = Tolerance, LossThreshold = LossThreshold,
        KeyBits = KeyBits, TestBuckets = TestBuckets, ModelId = ModelId, Version = Version,
    };
}

/// <summary>
/// Fixed-point scales of the protocol's encrypted values (fraction bits): see docs/transfer.md.
/// </summary>
static class Scales
{
    public const int F = 53;            // encrypted parameters (beta) and the Gram matrix
    public const int X = 30;            // feature scalars (raw common features, standardized own features)
    public const int L = 40;            // gradient-map scalars
    public const int Q = 60;            // beta_k beta_l q scalars of the squared term
    public const int Residual = F + X;  // [[e_i]], [[z_i + b_i]]
    public const int Loss = F + 2 * X;  // the loss ciphertexts: [[e_i]] times c_i at X bits; [[S]] times q beta beta at Q bits
    public const int Grad = F + 2 * X + L; // own gradient ([[z+b]] times x at X bits) times 2^L; L . G
}

/// <summary>
/// A data party of transfer learning (the guest, first party, also holds the intercept). Per epoch it sends the
/// other party its completion coefficients encrypted under the arbiter's key, evaluates the other party's encrypted
/// part on its own customers (ciphertext times its plaintext common features), forms the encrypted residuals, and
/// returns to the other party only the encrypted aggregate G = sum_i [[d_i]] [c_i; 1], from which that party computes
/// its own encrypted gradient with its plaintext mapping. Gradients reach the arbiter masked; the loss only as the
/// encrypted sum of both parties' parts.
/// </summary>
public sealed class TransferPartyRole(IMessenger net, PartyTable table, string? guest, string other, string arbiter,
    TrainOptions? options, string[]? common, bool insecureTestKeyBits, Action<string>? log = null) : DataParty(net, log)
{
    bool IsGuest => guest is null;

    public async Task<PartyOutcome> RunAsync(CancellationToken ct)
    {
        TransferPlan plan;
        TransferSide side;
        if (IsGuest)
        {
            var o = options ?? throw new ArgumentNullException(nameof(options));
            o.Validate();
            if (o.Kind == ModelKind.Softmax) throw new BadInputException("transfer learning supports --kind logistic or linear (softmax is not implemented)");
            side = TransferSide.Prepare(Net.Self, table, common!, o.TestBuckets, o.Kind);
            await Net.SendAsync(other, "hello", new Message().Control(new TransferHello(PartialModel.KindName(o.Kind), common!, Net.Self, other, arbiter)), ct);
            var info = (await Net.ReceiveAsync(other, "info", ct)).Exactly("host info", "ctl.json").Control<TransferInfo>("host info");
            plan = new TransferPlan(PartialModel.KindName(o.Kind), common!, [Net.Self, other], [side.Rows, info.TrainRows], [side.Features, info.Features],
                o.TestBuckets, o.MaxIter, o.LearningRate, o.L2, o.Tolerance, o.LossThreshold, o.KeyBits, o.ModelId, o.Version);
            foreach (var p in new[] { other, arbiter }) await Net.SendAsync(p, "plan", new Message().Control(plan), ct);
        }
        else
        {
            var hello = (await Net.ReceiveAsync(guest!, "hello", ct)).Exactly("hello", "ctl.json").Control<TransferHello>("hello");
            // The host trusts its own configuration: the key holder and the guest are the ones it was told.
            if (hello.Guest != guest || hello.Arbiter != arbiter || hello.Host != Net.Self)
                throw new FedFailureException($"{Net.Self}: refused the hello: guest '{hello.Guest}', arbiter '{hello.Arbiter}', host '{hello.Host}'; this party's configuration says guest '{guest}', arbiter '{arbiter}'");
            if (options != null && PartialModel.KindName(options.Kind) != hello.Kind)
                throw new FedFailureException($"{Net.Self}: mismatched kinds: the guest trains {hello.Kind}, this party is configured for {PartialModel.KindName(options.Kind)}");
            PartialModel.TryParseKind(hello.Kind, out var kind);
            side = TransferSide.Prepare(Net.Self, table, hello.Common, options?.TestBuckets ?? 3, kind);
            await Net.SendAsync(guest!, "info", new Message().Control(new TransferInfo(side.Rows, side.Features)), ct);
            plan = (await Net.ReceiveAsync(guest!, "plan", ct)).Exactly("plan", "ctl.json").Control<TransferPlan>("plan");
            if (!plan.Common.SequenceEqual(hello.Common) || !plan.Parties.SequenceEqual([guest!, Net.Self])
                || plan.TrainRows[1] != side.Rows || plan.Features[1] != side.Features || plan.Kind != hello.Kind)
                throw new FedFailureException($"{Net.Self}: refused a plan that does not match the hello and this party's counts");
        }
        var me = IsGuest ? 0 : 1;
        var key = ReadKey(await Net.ReceiveAsync(arbiter, "pubkey", ct));
        TrainOptions.CheckKeyBits(key.Bits, insecureTestKeyBits, $"{Net.Self}: the arbiter's public key");
        if (key.Bits != plan.KeyBits) throw new FedFailureException($"{Net.Self}: the arbiter's key has {key.Bits} bits, the plan says {plan.KeyBits}");
        var kindPlan = plan.ModelKind;
        var c = plan.Common.Length; var n = side.Rows; var d = side.Features;
        using var enc = new PaillierEncryptor(key, new FixedPointCodec(key, Scales.F));
        var residualCodec = new FixedPointCodec(key, Scales.Residual);
        var lossCodec = new FixedPointCodec(key, Scales.Loss);
        var gradCodec = new FixedPointCodec(key, Scales.Grad);

        // Fixed-point plaintext scalars: [c_i; 1] raw (row-major and transposed), own features [x_i (; 1)].
        var craw1 = Homomorphic.FixedRows(side.CRaw, Enumerable.Range(0, n).ToArray(), Scales.X, appendOne: true);
        var craw1T = Enumerable.Range(0, c + 1).Select(k => craw1.Select(r => r[k]).ToArray()).ToArray();
        var xfixed = Homomorphic.FixedRows(side.X, Enumerable.Range(0, n).ToArray(), Scales.X, appendOne: IsGuest);
        var lmap = side.GradientMap(IsGuest);
        var lscalars = Enumerable.Range(0, c + 1).Select(k => lmap.Select(r => Objective.FeatureScalar(r[k], Scales.L)).ToArray()).ToArray();
        var width = d + (IsGuest ? 1 : 0);
        var align = BigInteger.One << (Scales.Grad - Scales.Residual - Scales.X);

        // Once: this party's Gram matrix of [c; 1] over its customers, encrypted, so the other party can add
        // q sum_i e_i^2 = q beta^T S beta (its own beta) to the loss without seeing S or revealing beta.
        var gram = new double[(c + 1) * (c + 1)];
        foreach (var r in side.CRaw)
            for (var k = 0; k <= c; k++)
                for (var l = 0; l <= c; l++) gram[k * (c + 1) + l] += (k < c ? r[k] : 1) * (l < c ? r[l] : 1);
        await Net.SendAsync(other, "gram", new Message().Ciphertexts("S", key, enc.EncryptBatch(gram)), ct);
        var otherGram = (await Net.ReceiveAsync(other, "gram", ct)).Exactly("gram", "ct.S").Ciphertexts("S", key, (c + 1) * (c + 1), "gram");

        var w = new double[d];
        var bias = 0.0;
        var a = TaylorObjective.ResidualScale(kindPlan);
        var q = TaylorObjective.LossQuadratic(kindPlan);
        var stop = "";
        var losses = new List<double>();
        for (var epoch = 0; ; epoch++)
        {
            var tag = $"e{epoch}.";
            var beta = side.RawCompletion(w, IsGuest ? bias : 0);
            await Net.SendAsync(other, tag + "beta", new Message().Ciphertexts("beta", key, enc.EncryptBatch(beta)), ct);
            var otherBeta = (await Net.ReceiveAsync(other, tag + "beta", ct)).Exactly("beta", "ct.beta").Ciphertexts("beta", key, c + 1, "beta");

            // [[e_i]]: the other party's part on my customers; [[z_i + b_i]] with my plaintext part and labels.
            var e = Homomorphic.Dot(key, otherBeta, 0, c + 1, craw1T, n);
            var own = new double[n];
            for (var i = 0; i < n; i++) { var z = IsGuest ? bias : 0; for (var f = 0; f < d; f++) z += w[f] * side.X[i][f]; own[i] = z; }
            var resid = new PaillierCiphertext[n];
            Parallel.For(0, n, i => resid[i] = key.AddPlain(e[i], residualCodec.Encode(TaylorObjective.ResidualOffset(kindPlan, own[i], side.Y[i]))));
            var g = Homomorphic.Dot(key, resid, 0, n, craw1, c + 1);
            await Net.SendAsync(other, tag + "G", new Message().Ciphertexts("G", key, g.Select(key.Rerandomize).ToArray()), ct);

            // Loss: my customers' P + c e, the squared term of the other party's customers under my beta, my L2.
            var lin = Homomorphic.WeightedSum(key, e, own.Select((o, i) => Homomorphic.Scalar(TaylorObjective.LossLinear(kindPlan, o, side.Y[i]), Scales.X)).ToArray());
            var sqScalars = new BigInteger[(c + 1) * (c + 1)];
            for (var k = 0; k <= c; k++) for (var l = 0; l <= c; l++) sqScalars[k * (c + 1) + l] = Homomorphic.Scalar(q * beta[k] * beta[l], Scales.Q);
            var sq = key.Multiply(Homomorphic.WeightedSum(key, otherGram, sqScalars), BigInteger.One << (Scales.Loss - Scales.F - Scales.Q));
            var plain = own.Select((o, i) => TaylorObjective.LossConstant(kindPlan, o, side.Y[i])).Sum() + plan.Total * plan.L2 / 2 * w.Sum(v => v * v);
            var loss = key.Rerandomize(key.AddPlain(key.Add(lin, sq), lossCodec.Encode(plain)));

            // My gradient: sum over my customers (X^T [[z+b]]) plus L . G over the other party's customers.
            var gown = Homomorphic.Dot(key, resid, 0, n, xfixed, width);
            var otherG = (await Net.ReceiveAsync(other, tag + "G", ct)).Exactly("G", "ct.G").Ciphertexts("G", key, c + 1, "G");
            var gmap = Homomorphic.Dot(key, otherG, 0, c + 1, lscalars, width);
            var total = new PaillierCiphertext[width];
            for (var f = 0; f < width; f++) total[f] = key.Add(key.Multiply(gown[f], align), gmap[f]);
            var masks = Homomorphic.Masks(key, width);
            await Net.SendAsync(arbiter, tag + "grad", new Message().Ciphertexts("g", key, Homomorphic.Mask(key, total, masks)), ct);
            await Net.SendAsync(arbiter, tag + "loss", new Message().Ciphertexts("loss", key, [loss]), ct);
            var back = (await Net.ReceiveAsync(arbiter, tag + "gradback", ct)).Exactly("gradient", "mask.g").Masked("g", GuestRole.ElementBytes(key), width, "gradient");
            var grad = Homomorphic.Unmask(gradCodec, back, masks, Scales.Grad);
            for (var f = 0; f < d; f++) w[f] -= plan.LearningRate * (a * grad[f] / plan.Total + plan.L2 * w[f]);
            if (IsGuest) bias -= plan.LearningRate * a * grad[d] / plan.Total;

            var decision = (await Net.ReceiveAsync(arbiter, tag + "decision", ct)).Exactly("decision", "ctl.json").Control<Decision>("decision");
            if (decision.Loss is { } lossValue) losses.Add(lossValue);
            if (decision.Stop) { stop = decision.Reason ?? "stopped"; break; }
        }
        Log($"{Net.Self}: training stopped ({stop})");
        var model = BuildModel(plan, me, side, w, bias);
        return new PartyOutcome
        {
            Party = Net.Self, Model = model, Losses = losses, StopReason = stop, TrainRows = n, Intersection = 0,
            Weights = new PartyWeights([w], IsGuest ? [bias] : []), Seconds = new() { ["total"] = Now },
            Completion = side.CompletionModel(model, w, bias),
        };
    }

    static PartialModel BuildModel(TransferPlan plan, int me, TransferSide side, double[] w, double bias) => ModelFile.Stamp(new PartialModel
    {
        ModelId = plan.ModelId, Version = plan.Version, Kind = plan.ModelKind,
        PartyId = plan.Parties[me], Role = me == 0 ? PartyRole.Guest : PartyRole.Host, Parties = plan.Parties,
        Features = side.Table.Features, Weights = [w.ToArray()], Intercepts = me == 0 ? [bias] : [],
        Transform = side.Std.ToTransform(), Missing = side.Std.ToMissingPolicy(),
        Training = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["algorithm"] = "transfer-feature-completion-" + plan.Kind + (plan.ModelKind == ModelKind.Linear ? "" : "-taylor2"),
            ["created_at"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ"),
            ["common_features"] = string.Join(",", plan.Common),
            ["train_rows"] = string.Join(",", plan.TrainRows),
            ["key_bits"] = plan.KeyBits.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["split"] = $"crc32(id) % 10 >= {plan.TestBuckets}",
        },
    });
}

/// <summary>The key holder: decrypts only masked gradients and the sum of the two parties' loss ciphertexts, decides
/// when to stop (loss threshold, tolerance or max-iter) and tells both parties.</summary>
public sealed class TransferArbiterRole(IMessenger net, string guest, string host, bool insecureTestKeyBits, Action<string>? log = null) : DataParty(net, log)
{
    public async Task<PartyOutcome> RunAsync(CancellationToken ct)
    {
        var plan = (await Net.ReceiveAsync(guest, "plan", ct)).Exactly("plan", "ctl.json").Control<TransferPlan>("plan");
        if (!plan.Parties.SequenceEqual([guest, host]))
            throw new FedFailureException($"{Net.Self}: refused the plan: parties [{string.Join(", ", plan.Parties)}], this arbiter's configuration says [{guest}, {host}]");
        TrainOptions.CheckKeyBits(plan.KeyBits, insecureTestKeyBits, $"{Net.Self}: the planned key");
        var options = plan.ToOptions();
        var sk = Paillier.GenerateKeyPair(plan.KeyBits);
        var key = sk.PublicKey;
        var pk = new Message().Put("pk.paillier", key.ToBytes());
        foreach (var p in plan.Parties) await Net.SendAsync(p, "pubkey", pk, ct);
        var lossCodec = new FixedPointCodec(key, Scales.Loss);
        var bytes = GuestRole.ElementBytes(key);
        var losses = new List<double>();
        string? stop;
        for (var epoch = 0; ; epoch++)
        {
            var tag = $"e{epoch}.";
            await Task.WhenAll(plan.Parties.Select(async (p, pi) =>
            {
                var count = plan.Features[pi] + (pi == 0 ? 1 : 0);
                var cts = (await Net.ReceiveAsync(p, tag + "grad", ct)).Exactly($"gradient of {p}", "ct.g").Ciphertexts("g", key, count, $"gradient of {p}");
                var masked = new BigInteger[cts.Length];
                Parallel.For(0, cts.Length, i => masked[i] = sk.Decrypt(cts[i]));
                await Net.SendAsync(p, tag + "gradback", new Message().Masked("g", masked, bytes), ct);
            }));
            // Only the sum of the two loss ciphertexts is decrypted: neither party's share is seen alone.
            var parts = new List<PaillierCiphertext>();
            foreach (var p in plan.Parties)
                parts.Add((await Net.ReceiveAsync(p, tag + "loss", ct)).Exactly($"loss of {p}", "ct.loss").Ciphertexts("loss", key, 1, $"loss of {p}")[0]);
            var loss = lossCodec.Decode(sk.Decrypt(key.Add(parts[0], parts[1])), Scales.Loss) / plan.Total;
            if (!double.IsFinite(loss)) throw new FedFailureException($"the loss diverged at epoch {epoch + 1}; lower --learning-rate");
            losses.Add(loss);
            stop = Convergence.Decide(options, losses);
            Log($"{Net.Self}: epoch {epoch + 1} loss {loss:G6}{(stop is null ? "" : $" -> stop ({stop})")}");
            await Net.SendAsync(guest, tag + "decision", new Message().Control(new Decision(epoch, stop != null, stop, loss)), ct);
            await Net.SendAsync(host, tag + "decision", new Message().Control(new Decision(epoch, stop != null, stop, null)), ct);
            if (stop != null) break;
        }
        return new PartyOutcome { Party = Net.Self, Losses = losses, StopReason = stop, Seconds = new() { ["total"] = Now } };
    }
}
