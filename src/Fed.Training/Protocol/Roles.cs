using System.Diagnostics;
using System.Numerics;
using Fed.Core;
using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.Training.Crypto;
using Fed.Training.Data;
using Fed.Training.Psi;
using Fed.Training.Train;

namespace Fed.Training.Protocol;

/// <summary>Common state of a data party (guest or host) after alignment.</summary>
public abstract class DataParty
{
    protected const int F = 53; // fraction bits of encrypted values (FixedPointCodec default)
    protected readonly IMessenger Net;
    protected readonly Action<string> Log;
    protected readonly Stopwatch Clock = Stopwatch.StartNew();
    protected readonly Dictionary<string, double> Seconds = new();

    protected DataParty(IMessenger net, Action<string>? log) { Net = net; Log = log ?? (_ => { }); }

    protected void Time(string what, double since) => Seconds[what] = Seconds.GetValueOrDefault(what) + Clock.Elapsed.TotalSeconds - since;
    protected double Now => Clock.Elapsed.TotalSeconds;

    protected static PaillierPublicKey ReadKey(Message m)
    {
        try { return PaillierPublicKey.FromBytes(m.Get("pk.paillier", "public key")); }
        catch (ArgumentException e) { throw new FedFailureException($"protocol error: the arbiter's public key is invalid: {e.Message}", e); }
    }

    /// <summary>The arbiter's key must have the planned size, and at least 2048 bits unless this party's own
    /// configuration allows test keys.</summary>
    protected void CheckKey(PaillierPublicKey key, Plan plan, bool insecureTestKeyBits)
    {
        TrainOptions.CheckKeyBits(key.Bits, insecureTestKeyBits, $"{Net.Self}: the arbiter's public key");
        if (key.Bits != plan.KeyBits) throw new FedFailureException($"{Net.Self}: the arbiter's key has {key.Bits} bits, the plan says {plan.KeyBits}");
    }

    protected static PartialModel BuildModel(Plan plan, string party, PartyRole role, string[] features, Standardizer std,
        double[][] w, double[] intercepts, IReadOnlyDictionary<string, string> meta)
    {
        PartialModel.TryParseKind(plan.Kind, out var kind);
        var training = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["algorithm"] = "vertical-hetero-" + plan.Kind + kind switch { ModelKind.Linear => "", ModelKind.Softmax => "-multinomial-fourier", _ => "-fourier-sigmoid" },
            ["optimizer"] = "per-party preconditioned nesterov with restart",
            ["created_at"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ"),
            ["step"] = plan.LearningRate.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
            ["l2"] = plan.L2.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
            ["batch_size"] = plan.BatchSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["key_bits"] = plan.KeyBits.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["train_rows"] = plan.TrainRows.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["split"] = $"crc32(id) % 10 >= {plan.TestBuckets}",
        };
        foreach (var (k, v) in meta) training[k] = v;
        return ModelFile.Stamp(new PartialModel
        {
            ModelId = plan.ModelId, Version = plan.Version, Kind = kind,
            Classes = kind == ModelKind.Softmax ? plan.Classes : [],
            PartyId = party, Role = role, Parties = plan.Parties, Features = features,
            Weights = w.Select(r => r.ToArray()).ToArray(), Intercepts = intercepts,
            Transform = std.ToTransform(), Missing = std.ToMissingPolicy(), Training = training,
        });
    }
}

/// <summary>
/// The guest: holds the labels, initiates PSI and training, combines the hosts' encrypted forward parts with its
/// own plaintext part into the encrypted residual, and computes the encrypted loss for the arbiter.
/// </summary>
public sealed class GuestRole(IMessenger net, PartyTable table, TrainOptions options, IReadOnlyList<string> hosts, string arbiter,
    string psi = "ecdh", Action<string>? log = null) : DataParty(net, log)
{
    public async Task<PartyOutcome> RunAsync(CancellationToken ct)
    {
        options.Validate();
        var labels = table.Labels ?? throw new BadInputException($"{table.Path}: the guest's file has no label column");
        var parties = new[] { Net.Self }.Concat(hosts).ToArray();
        var hello = new Hello(psi, PartialModel.KindName(options.Kind), Net.Self, hosts.ToArray(), arbiter);
        var t0 = Now;
        Log($"{Net.Self}: aligning ids with {string.Join(", ", hosts)} ({psi} PSI, {table.Rows} local ids)");
        foreach (var h in hosts) await Net.SendAsync(h, "hello", new Message().Control(hello), ct);
        var hostFeatures = new int[hosts.Count];
        for (var h = 0; h < hosts.Count; h++)
        {
            hostFeatures[h] = (await Net.ReceiveAsync(hosts[h], "info", ct)).Exactly("host info", "ctl.json").Control<HostInfo>("host info").Features;
            if (hostFeatures[h] < 1) throw new FedFailureException($"protocol error: host '{hosts[h]}' declares {hostFeatures[h]} features");
        }
        var rows = await AlignAsync(ct);
        Time("psi", t0);
        if (rows.Length == 0)
            throw new BadInputException("empty intersection: the parties share no ids (check --id-column and that the files describe the same customers)");
        var aligned = table.Select(rows);
        var (train, test) = BatchPlan.Split(aligned.Ids, new SplitRule(options.TestBuckets));
        if (train.Length == 0) throw new BadInputException($"no training rows among the {rows.Length} aligned ids (test buckets {options.TestBuckets})");
        var encoding = LabelEncoding.For(options.Kind, train.Select(i => aligned.Labels![i]).ToArray(), table.Path);
        var targets = encoding.Targets(train.Select(i => aligned.Labels![i]).ToArray());
        var std = Standardizer.Fit(aligned.Columns, train);
        var x = std.Transform(aligned.Columns, train);
        var blanks = Standardizer.Blanks(table.Features, aligned.Columns, train);
        Log(Standardizer.BlanksLine(Net.Self, blanks));
        var plan = Plan.From(options, encoding.Classes, encoding.Outputs, rows.Length, train.Length, parties, [table.Features.Length, .. hostFeatures]);
        plan.CheckBatch(Net.Self);
        Log($"{Net.Self}: {rows.Length} ids in the intersection, {train.Length} for training, {test.Length} held out");
        foreach (var p in hosts.Append(arbiter)) await Net.SendAsync(p, "plan", new Message().Control(plan), ct);
        var key = ReadKey(await Net.ReceiveAsync(arbiter, "pubkey", ct));
        CheckKey(key, plan, options.InsecureTestKeyBits);

        var K = encoding.Outputs; var d = table.Features.Length; var n = train.Length;
        var opt = new BlockNesterov(x, K, intercept: true, Objective.Curvature(options.Kind), options.L2 / n, options.LearningRate);
        var codec = new FixedPointCodec(key, F);
        var codec2 = new FixedPointCodec(key, 2 * F);
        var codecRes = new FixedPointCodec(key, Residuals.Bits(options.Kind));
        using var enc = new PaillierEncryptor(key, codec);
        using var encRes = new PaillierEncryptor(key, codecRes);
        var logistic = options.Kind == ModelKind.Logistic;
        var series = options.Kind == ModelKind.Softmax ? SoftmaxSeries.For(K) : null;
        var losses = new List<double>();
        var stop = "";
        var fx = options.FeatureBits;
        var xfixed = Homomorphic.FixedRows(x, Enumerable.Range(0, n).ToArray(), fx, appendOne: true);
        for (var epoch = 0; ; epoch++)
        {
            var batches = BatchPlan.Batches(n, options.BatchSize, options.Seed, epoch);
            for (var b = 0; b < batches.Count; b++)
            {
                var tag = $"e{epoch}.b{b}.";
                var batch = batches[b];
                var m = batch.Length;
                var t1 = Now;
                // z_g at the optimizer's look-ahead point (intercept last)
                var zg = new double[K * m];
                for (var c = 0; c < K; c++)
                    for (var k = 0; k < m; k++)
                    {
                        var row = x[batch[k]]; var v = opt.V[c]; var z = v[d];
                        for (var f = 0; f < d; f++) z += v[f] * row[f];
                        zg[c * m + k] = z;
                    }
                // linear: b = z_g - y encrypted afresh before the hosts' parts arrive (it depends only on z_g and y)
                var fresh = options.Kind != ModelKind.Linear ? null : enc.EncryptBatch(Enumerable.Range(0, K * m).Select(i => Objective.LinearOffset(zg[i], targets[i / m][batch[i % m]])).ToArray());
                var fwd = new Message[hosts.Count];
                for (var h = 0; h < hosts.Count; h++) fwd[h] = (await Net.ReceiveAsync(hosts[h], tag + "fwd", ct)).Exactly($"forward of {hosts[h]}", "ct.sq", "ct.z");
                var zh = fwd.Select((f, h) => f.Ciphertexts("z", key, K * m, $"forward of {hosts[h]}")).ToArray();
                var Z = zh[0];
                for (var h = 1; h < hosts.Count; h++)
                {
                    // host h gets the encrypted sum of the hosts before it, for the cross terms of Z^2
                    await Net.SendAsync(hosts[h], tag + "zprev", new Message().Ciphertexts("z", key, Z), ct);
                    Z = Homomorphic.Add(key, Z, zh[h]);
                }
                PaillierCiphertext[] res;
                Residuals.Trig? trig = null;
                (PaillierCiphertext[] Trig, double[][] U, PaillierCiphertext[] Diff)? soft = null;
                if (series != null)
                {
                    // [[Z_k - Z_0 + R]] to the arbiter (uniform to it mod P 2^F); back come cos/sin of 2 pi w.x / P per frequency
                    var diff = Residuals.Differences(key, Z, K, m);
                    var mask = Residuals.SoftmaxMasks(series, diff.Length);
                    await Net.SendAsync(arbiter, tag + "sig", new Message().Ciphertexts("s", key, Homomorphic.Mask(key, diff, mask.Select(r => r.Full).ToArray())), ct);
                    var back = (await Net.ReceiveAsync(arbiter, tag + "trig", ct)).Exactly("trigonometric values", "ct.t")
                        .Ciphertexts("t", key, m * series.Width, "trigonometric values");
                    var u = Residuals.SoftmaxShifts(zg, mask, K, m);
                    var offsets = encRes.EncryptBatch(Enumerable.Range(0, K * m).Select(i => Residuals.SoftmaxOffset(series, i / m, targets[i / m][batch[i % m]])).ToArray());
                    res = Residuals.Softmax(key, series, back, u, offsets);
                    soft = (back, u, diff);
                }
                else if (logistic)
                {
                    // [[Z + R]] to the arbiter (uniform to it mod P 2^F); back come [[sin w_j x]], [[cos w_j x]] of x = Z + r mod P
                    var mask = Residuals.Masks(K * m);
                    await Net.SendAsync(arbiter, tag + "sig", new Message().Ciphertexts("s", key, Homomorphic.Mask(key, Z, mask.Select(r => r.Full).ToArray())), ct);
                    var back = (await Net.ReceiveAsync(arbiter, tag + "trig", ct)).Exactly("trigonometric values", "ct.t")
                        .Ciphertexts("t", key, K * m * Residuals.Width, "trigonometric values");
                    trig = new Residuals.Trig(back, Enumerable.Range(0, K * m).Select(i => zg[i] - mask[i].Shift).ToArray());
                    var offsets = encRes.EncryptBatch(Enumerable.Range(0, K * m).Select(i => Residuals.SigmoidOffset(zg[i], targets[i / m][batch[i % m]])).ToArray());
                    res = Residuals.Sigmoid(key, trig, Z, offsets);
                }
                else res = Homomorphic.Add(key, Z, fresh!); // [[Z + b]], b fresh: the hosts cannot strip their own [[z_h]]
                foreach (var h in hosts) await Net.SendAsync(h, tag + "res", new Message().Ciphertexts("d", key, res), ct);
                Time("residual", t1);

                // own gradient, masked for the arbiter
                var t2 = Now;
                var grads = new PaillierCiphertext[K * (d + 1)];
                var rowsFixed = batch.Select(i => xfixed[i]).ToArray();
                for (var c = 0; c < K; c++)
                    Homomorphic.Dot(key, res, c * m, m, rowsFixed, d + 1).CopyTo(grads, c * (d + 1));
                var masks = Homomorphic.Masks(key, grads.Length);
                await Net.SendAsync(arbiter, tag + "grad", new Message().Ciphertexts("g", key, Homomorphic.Mask(key, grads, masks)), ct);
                Time("gradient", t2);

                // encrypted loss: sum_i P_i/n + c_i/n [[Z_i]] + [[q sum z_h^2/n + reg_h]] + cross terms + reg_g (+ periodic part)
                var t3 = Now;
                var plain = (double)m / n * options.L2 / n / 2 * opt.PenaltyNorm();
                PaillierCiphertext encrypted;
                if (soft is { } sm)
                {
                    // the cross-entropy f(delta) - delta_y of every row (SoftmaxSeries)
                    for (var k = 0; k < m; k++) plain += Residuals.SoftmaxLossConstant(series!, zg, targets, batch, m, k) / n;
                    encrypted = Residuals.SoftmaxLossSum(key, series!, sm.Trig, sm.U, sm.Diff, targets, batch, 1.0 / n, 2 * F);
                }
                else
                {
                    var lin = new BigInteger[K * m];
                    for (var c = 0; c < K; c++)
                        for (var k = 0; k < m; k++)
                        {
                            var y = targets[c][batch[k]]; var z = zg[c * m + k];
                            plain += Objective.LossConstant(options.Kind, z, y) / n;
                            lin[c * m + k] = Homomorphic.Scalar(Objective.LossLinear(options.Kind, z, y) / n, F);
                        }
                    encrypted = Homomorphic.WeightedSum(key, Z, lin);
                    if (trig != null) encrypted = key.Add(encrypted, Residuals.SoftplusSum(key, trig, 1.0 / n, 2 * F));
                }
                var loss = key.Add(enc.Encrypt(codec2.Encode(plain)), encrypted);
                foreach (var f in fwd) loss = key.Add(loss, f.Ciphertexts("sq", key, 1, "forward")[0]);
                for (var h = 1; h < hosts.Count; h++)
                    loss = key.Add(loss, (await Net.ReceiveAsync(hosts[h], tag + "cross", ct)).Exactly($"cross term of {hosts[h]}", "ct.cross")
                        .Ciphertexts("cross", key, 1, $"cross term of {hosts[h]}")[0]);
                await Net.SendAsync(arbiter, tag + "loss", new Message().Ciphertexts("loss", key, [loss]), ct);
                Time("loss", t3);

                var gradBack = (await Net.ReceiveAsync(arbiter, tag + "gradback", ct)).Exactly("gradient", "mask.g").Masked("g", ElementBytes(key), grads.Length, "gradient");
                var g = Homomorphic.Unmask(codec, gradBack, masks, Residuals.Bits(options.Kind) + fx);
                opt.Step(Enumerable.Range(0, K).Select(c => Enumerable.Range(0, d + 1).Select(f => g[c * (d + 1) + f] / m).ToArray()).ToArray());
            }
            var decision = (await Net.ReceiveAsync(arbiter, $"e{epoch}.decision", ct)).Exactly("decision", "ctl.json").Control<Decision>("decision");
            if (decision.Loss is { } l) losses.Add(l);
            Log($"{Net.Self}: epoch {epoch + 1}/{options.MaxIter} loss {decision.Loss:G6}");
            if (decision.Restart) opt.Restart();
            if (decision.Stop) { stop = decision.Reason ?? "stop"; break; }
        }
        var W = opt.W.Select(r => r[..d]).ToArray();
        var bias = opt.W.Select(r => r[d]).ToArray();
        var model = BuildModel(plan, Net.Self, PartyRole.Guest, table.Features, std, W, bias, new Dictionary<string, string>
        {
            ["epochs"] = losses.Count.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["final_loss"] = losses.Count > 0 ? losses[^1].ToString("R", System.Globalization.CultureInfo.InvariantCulture) : "",
            ["stop_reason"] = stop, ["psi"] = psi,
        });
        var holdout = await HoldoutAsync(model, aligned, test, encoding, ct);
        Seconds["total"] = Now;
        return new PartyOutcome
        {
            Party = Net.Self, Model = model, Losses = losses, Intersection = rows.Length, TrainRows = n, TestRows = test.Length,
            StopReason = stop, Seconds = Seconds, Weights = new PartyWeights(W, bias), Holdout = holdout, FilledWithMean = blanks,
        };
    }

    /// <summary>Held-out evaluation by a federated prediction of the held-out ids: each host sends its partial scores
    /// (from its final model, Fed.Core's scorer) for them; the guest combines with Fed.Core's combiner.</summary>
    async Task<Holdout?> HoldoutAsync(PartialModel model, PartyTable aligned, int[] test, LabelEncoding encoding, CancellationToken ct)
    {
        if (test.Length == 0) return null;
        var scoring = ScoringModel.From(model);
        var partials = new List<double[][]> { HoldoutScores(scoring, aligned, test) };
        foreach (var h in hosts)
            partials.Add(Holdout.Unpack((await Net.ReceiveAsync(h, "holdout", ct)).Exactly($"held-out scores of {h}", "score.z").Get("score.z", "held-out scores"),
                test.Length, scoring.OutputCount, $"held-out scores of {h}"));
        var predictions = new Prediction[test.Length];
        for (var i = 0; i < test.Length; i++)
        {
            var byParty = new Dictionary<string, double[]>(StringComparer.Ordinal);
            for (var p = 0; p < partials.Count; p++) byParty[model.Parties[p]] = partials[p][i];
            predictions[i] = Combiner.Combine(scoring.Signature, byParty, aligned.Ids[test[i]]);
        }
        return Holdout.Evaluate(model.Kind, encoding, test.Select(i => aligned.Labels![i]).ToArray(), predictions);
    }

    /// <summary>Partial scores of the held-out rows with Fed.Core's scorer (raw features; the model's own transform).</summary>
    internal static double[][] HoldoutScores(ScoringModel scoring, PartyTable aligned, int[] test)
    {
        var scorer = new PartialScorer(scoring);
        var index = scoring.Features.Select(f => Array.IndexOf(aligned.Features, f)).ToArray();
        return test.Select(r =>
        {
            var row = index.Select(j => aligned.Columns[j][r]).ToArray();
            var s = new double[scoring.OutputCount];
            scorer.ScoreRow(row, s);
            return s;
        }).ToArray();
    }

    internal static int ElementBytes(PaillierPublicKey key) => (int)((key.N.GetBitLength() + 7) / 8);

    async Task<int[]> AlignAsync(CancellationToken ct)
    {
        PsiGuest guest;
        if (psi == "rsa")
        {
            var g = new RsaPsiGuest(table.Ids);
            guest = g;
            await Task.WhenAll(hosts.Select(async h =>
            {
                var km = await Net.ReceiveAsync(h, "psi.key", ct);
                var req = g.CreateRequest(h, new RsaPsiPublicKey(km.Get("psi.modulus", "psi"), km.Get("psi.exponent", "psi")));
                await Net.SendAsync(h, "psi.req", new Message().Put("psi.blinded", req.Blinded), ct);
                var resp = await Net.ReceiveAsync(h, "psi.resp", ct);
                g.AcceptResponse(h, new RsaPsiResponse(resp.Get("psi.signatures", "psi"), resp.Get("psi.tokens", "psi")));
            }));
        }
        else
        {
            var g = new EcdhPsiGuest(table.Ids);
            guest = g;
            await Task.WhenAll(hosts.Select(async h =>
            {
                var req = g.CreateRequest(h);
                await Net.SendAsync(h, "psi.req", new Message().Put("psi.points", req.GuestPoints), ct);
                var resp = await Net.ReceiveAsync(h, "psi.resp", ct);
                g.AcceptResponse(h, new EcdhPsiResponse(resp.Get("psi.doubled", "psi"), resp.Get("psi.points", "psi")));
            }));
        }
        var result = guest.Finish();
        foreach (var h in hosts) await Net.SendAsync(h, "psi.align", new Message().Put("psi.tokens", result.Alignments[h].Tokens), ct);
        return result.GuestIndexes;
    }
}

/// <summary>A host: features only. Sends its encrypted forward part, computes its encrypted gradient from the
/// encrypted residual, masks it for the arbiter and updates its own weights.</summary>
/// <remarks>The host trusts its own configuration, never the guest's word, for who holds the key: <paramref name="arbiter"/>
/// (reached with the certificate pin configured for that name), the guest and the other hosts come from it, and a
/// <c>hello</c> naming another arbiter is refused, so a guest cannot make itself the key holder.</remarks>
public sealed class HostRole(IMessenger net, PartyTable table, string guest, string arbiter, IReadOnlyList<string>? hosts = null,
    ModelKind? expectedKind = null, bool insecureTestKeyBits = false, Action<string>? log = null)
    : DataParty(net, log)
{
    public async Task<PartyOutcome> RunAsync(CancellationToken ct)
    {
        var hello = (await Net.ReceiveAsync(guest, "hello", ct)).Exactly("hello", "ctl.json").Control<Hello>("hello");
        if (hello.Arbiter != arbiter)
            throw new FedFailureException($"{Net.Self}: refused the guest's hello: it names '{hello.Arbiter}' as arbiter, this host's configuration says '{arbiter}'");
        if (hello.Guest != guest)
            throw new FedFailureException($"{Net.Self}: refused the guest's hello: it names '{hello.Guest}' as guest, this host's configuration says '{guest}'");
        if (hosts is { Count: > 0 } && !hosts.SequenceEqual(hello.Hosts))
            throw new FedFailureException($"{Net.Self}: refused the guest's hello: hosts [{string.Join(", ", hello.Hosts)}], this host's configuration says [{string.Join(", ", hosts)}]");
        if (expectedKind is { } ek && PartialModel.KindName(ek) != hello.Kind)
            throw new BadInputException($"mismatched kinds: the guest trains '{hello.Kind}', this host ({Net.Self}) is configured for '{PartialModel.KindName(ek)}'");
        var index = Array.IndexOf(hello.Hosts, Net.Self);
        if (index < 0) throw new FedFailureException($"the guest does not list '{Net.Self}' among its hosts ({string.Join(", ", hello.Hosts)})");
        await Net.SendAsync(guest, "info", new Message().Control(new HostInfo(table.Features.Length)), ct);
        var t0 = Now;
        var rows = await AlignAsync(hello.Psi, ct);
        Time("psi", t0);
        var plan = (await Net.ReceiveAsync(guest, "plan", ct)).Exactly("plan", "ctl.json").Control<Plan>("plan");
        var options = plan.ToOptions();
        if (!plan.Parties.SequenceEqual(hello.Hosts.Prepend(guest)))
            throw new FedFailureException($"{Net.Self}: refused the plan: parties [{string.Join(", ", plan.Parties)}] differ from the hello's");
        if (plan.Features is null || plan.Features.Length != plan.Parties.Length || plan.Features[index + 1] != table.Features.Length)
            throw new FedFailureException($"{Net.Self}: refused the plan: it does not carry this host's {table.Features.Length} features");
        plan.CheckBatch(Net.Self);
        var aligned = table.Select(rows);
        var (train, test) = BatchPlan.Split(aligned.Ids, new SplitRule(plan.TestBuckets));
        if (train.Length != plan.TrainRows)
            throw new FedFailureException($"alignment mismatch: the guest trains on {plan.TrainRows} rows, this host ({Net.Self}) has {train.Length}");
        var std = Standardizer.Fit(aligned.Columns, train);
        var x = std.Transform(aligned.Columns, train);
        var blanks = Standardizer.Blanks(table.Features, aligned.Columns, train);
        Log(Standardizer.BlanksLine(Net.Self, blanks));
        var key = ReadKey(await Net.ReceiveAsync(arbiter, "pubkey", ct));
        CheckKey(key, plan, insecureTestKeyBits);
        Log($"{Net.Self}: aligned {rows.Length} ids, training on {train.Length}");

        var K = plan.Outputs; var d = table.Features.Length; var n = train.Length; var fx = plan.FeatureBits;
        var opt = new BlockNesterov(x, K, intercept: false, Objective.Curvature(options.Kind), options.L2 / n, options.LearningRate);
        var codec = new FixedPointCodec(key, F);
        var codec2 = new FixedPointCodec(key, 2 * F);
        using var enc = new PaillierEncryptor(key, codec);
        var q = Objective.LossQuadratic(options.Kind);
        var xfixed = Homomorphic.FixedRows(x, Enumerable.Range(0, n).ToArray(), fx, appendOne: false);
        var epochs = 0;
        string stop;
        for (var epoch = 0; ; epoch++)
        {
            var batches = BatchPlan.Batches(n, options.BatchSize, options.Seed, epoch);
            for (var b = 0; b < batches.Count; b++)
            {
                var tag = $"e{epoch}.b{b}.";
                var batch = batches[b]; var m = batch.Length;
                var t1 = Now;
                var z = new double[K * m];
                var sq = 0.0;
                for (var c = 0; c < K; c++)
                    for (var k = 0; k < m; k++)
                    {
                        var row = x[batch[k]]; var v = opt.V[c]; var s = 0.0;
                        for (var f = 0; f < d; f++) s += v[f] * row[f];
                        z[c * m + k] = s;
                        sq += q * s * s / n;
                    }
                sq += (double)m / n * options.L2 / n / 2 * opt.PenaltyNorm();
                var zct = enc.EncryptBatch(z);
                await Net.SendAsync(guest, tag + "fwd", new Message().Ciphertexts("z", key, zct)
                    .Ciphertexts("sq", key, [enc.Encrypt(codec2.Encode(sq))]), ct);
                if (index > 0)
                {
                    var prev = (await Net.ReceiveAsync(guest, tag + "zprev", ct)).Exactly("previous hosts' forward", "ct.z").Ciphertexts("z", key, K * m, "previous hosts' forward");
                    var scal = z.Select(v => Homomorphic.Scalar(2 * q * v / n, F)).ToArray();
                    await Net.SendAsync(guest, tag + "cross", new Message().Ciphertexts("cross", key, [key.Rerandomize(Homomorphic.WeightedSum(key, prev, scal))]), ct);
                }
                Time("forward", t1);
                var res = (await Net.ReceiveAsync(guest, tag + "res", ct)).Exactly("residual", "ct.d").Ciphertexts("d", key, K * m, "residual");
                var t2 = Now;
                var grads = new PaillierCiphertext[K * d];
                var rowsFixed = batch.Select(i => xfixed[i]).ToArray();
                for (var c = 0; c < K; c++) Homomorphic.Dot(key, res, c * m, m, rowsFixed, d).CopyTo(grads, c * d);
                var masks = Homomorphic.Masks(key, grads.Length);
                await Net.SendAsync(arbiter, tag + "grad", new Message().Ciphertexts("g", key, Homomorphic.Mask(key, grads, masks)), ct);
                Time("gradient", t2);
                var back = (await Net.ReceiveAsync(arbiter, tag + "gradback", ct)).Exactly("gradient", "mask.g").Masked("g", GuestRole.ElementBytes(key), grads.Length, "gradient");
                var g = Homomorphic.Unmask(codec, back, masks, Residuals.Bits(options.Kind) + fx);
                opt.Step(Enumerable.Range(0, K).Select(c => Enumerable.Range(0, d).Select(f => g[c * d + f] / m).ToArray()).ToArray());
            }
            var decision = (await Net.ReceiveAsync(arbiter, $"e{epoch}.decision", ct)).Exactly("decision", "ctl.json").Control<Decision>("decision");
            epochs = epoch + 1;
            if (decision.Restart) opt.Restart();
            if (decision.Stop) { stop = decision.Reason ?? "stop"; break; }
        }
        var model = BuildModel(plan, Net.Self, PartyRole.Host, table.Features, std, opt.W, [], new Dictionary<string, string>
        {
            ["epochs"] = epochs.ToString(System.Globalization.CultureInfo.InvariantCulture), ["stop_reason"] = stop, ["psi"] = hello.Psi,
        });
        if (test.Length > 0)
            await Net.SendAsync(guest, "holdout", new Message().Put("score.z",
                Holdout.Pack(GuestRole.HoldoutScores(ScoringModel.From(model), aligned, test))), ct);
        Seconds["total"] = Now;
        return new PartyOutcome
        {
            Party = Net.Self, Model = model, Intersection = rows.Length, TrainRows = n, TestRows = test.Length, StopReason = stop,
            Seconds = Seconds, Weights = new PartyWeights(opt.W, []), FilledWithMean = blanks,
        };
    }

    async Task<int[]> AlignAsync(string psi, CancellationToken ct)
    {
        if (psi == "rsa")
        {
            var host = new RsaPsiHost(table.Ids);
            await Net.SendAsync(guest, "psi.key", new Message().Put("psi.modulus", host.PublicKey.Modulus).Put("psi.exponent", host.PublicKey.Exponent), ct);
            var req = await Net.ReceiveAsync(guest, "psi.req", ct);
            var resp = host.Respond(new RsaPsiRequest(req.Get("psi.blinded", "psi")));
            await Net.SendAsync(guest, "psi.resp", new Message().Put("psi.signatures", resp.Signatures).Put("psi.tokens", resp.HostTokens), ct);
            return host.ApplyAlignment(new PsiAlignment((await Net.ReceiveAsync(guest, "psi.align", ct)).Get("psi.tokens", "psi")));
        }
        if (psi != "ecdh") throw new BadInputException($"unknown PSI '{psi}'; expected rsa or ecdh");
        var eh = new EcdhPsiHost(table.Ids);
        var r = await Net.ReceiveAsync(guest, "psi.req", ct);
        var er = eh.Respond(new EcdhPsiRequest(r.Get("psi.points", "psi")));
        await Net.SendAsync(guest, "psi.resp", new Message().Put("psi.doubled", er.DoubledGuestPoints).Put("psi.points", er.HostPoints), ct);
        return eh.ApplyAlignment(new PsiAlignment((await Net.ReceiveAsync(guest, "psi.align", ct)).Get("psi.tokens", "psi")));
    }
}

/// <summary>
/// The arbiter: generates the Paillier key pair, decrypts only masked gradients (uniform in Z_n to it) and the
/// aggregate loss, and decides when training stops.
/// </summary>
/// <remarks>It decrypts exactly what the protocol step expects, per party and batch: party p's gradient message must
/// hold exactly <see cref="Plan.GradientCount"/> ciphertexts and the guest's loss message one; anything else stops the
/// run. The parties, key size and batch size come from its own configuration and the rules, not from the guest.</remarks>
public sealed class ArbiterRole(IMessenger net, string guest, IReadOnlyList<string> hosts, bool insecureTestKeyBits = false, Action<string>? log = null)
    : DataParty(net, log)
{
    public async Task<PartyOutcome> RunAsync(CancellationToken ct)
    {
        var plan = (await Net.ReceiveAsync(guest, "plan", ct)).Exactly("plan", "ctl.json").Control<Plan>("plan");
        var options = plan.ToOptions();
        if (!plan.Parties.SequenceEqual(hosts.Prepend(guest)))
            throw new FedFailureException($"{Net.Self}: refused the plan: parties [{string.Join(", ", plan.Parties)}], this arbiter's configuration says [{string.Join(", ", hosts.Prepend(guest))}]");
        TrainOptions.CheckKeyBits(plan.KeyBits, insecureTestKeyBits, $"{Net.Self}: the planned key");
        plan.CheckBatch(Net.Self);
        var t0 = Now;
        Log($"{Net.Self}: generating a {plan.KeyBits}-bit Paillier key");
        var sk = Paillier.GenerateKeyPair(plan.KeyBits);
        var key = sk.PublicKey;
        Time("keygen", t0);
        var pkMsg = new Message().Put("pk.paillier", key.ToBytes());
        foreach (var p in hosts.Prepend(guest)) await Net.SendAsync(p, "pubkey", pkMsg, ct);
        var codec2 = new FixedPointCodec(key, 2 * F);
        using var encTrig = new PaillierEncryptor(sk, new FixedPointCodec(key, Residuals.TrigBits)); // CRT fixed-base: the arbiter's bulk of work
        var nonlinear = options.Kind != ModelKind.Linear; // logistic and softmax: a masked round per batch
        var series = options.Kind == ModelKind.Softmax ? SoftmaxSeries.For(plan.Outputs) : null;
        var bytes = GuestRole.ElementBytes(key);
        var losses = new List<double>();
        string? stop;
        for (var epoch = 0; ; epoch++)
        {
            var batches = BatchPlan.Batches(plan.TrainRows, options.BatchSize, options.Seed, epoch);
            var loss = 0.0;
            for (var b = 0; b < batches.Count; b++)
            {
                var tag = $"e{epoch}.b{b}.";
                var m = batches[b].Length;
                if (nonlinear)
                {
                    // exactly one masked [[Z + R]] per row and output (softmax: per row and score difference); back go the
                    // encrypted sines and cosines of x
                    var expected = series != null ? (plan.Outputs - 1) * m : plan.Outputs * m;
                    var s = (await Net.ReceiveAsync(guest, tag + "sig", ct)).Exactly("masked forward", "ct.s").Ciphertexts("s", key, expected, "masked forward");
                    var t1 = Now;
                    var x = new BigInteger[s.Length];
                    Parallel.For(0, s.Length, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i => x[i] = sk.Decrypt(s[i]));
                    double[] values;
                    if (series != null)
                    {
                        values = new double[m * series.Width];
                        for (var i = 0; i < m; i++) Residuals.SoftmaxTrigValues(series, x, m, i, values.AsSpan(i * series.Width, series.Width));
                    }
                    else
                    {
                        values = new double[s.Length * Residuals.Width];
                        for (var i = 0; i < x.Length; i++) Residuals.TrigValues(x[i], values.AsSpan(i * Residuals.Width, Residuals.Width));
                    }
                    lock (Seconds) Time("decrypt", t1);
                    var t2 = Now;
                    var encrypted = encTrig.EncryptBatch(values);
                    lock (Seconds) Time("encrypt", t2);
                    await Net.SendAsync(guest, tag + "trig", new Message().Ciphertexts("t", key, encrypted), ct);
                }
                await Task.WhenAll(hosts.Prepend(guest).Select(async (p, pi) =>
                {
                    var cts = (await Net.ReceiveAsync(p, tag + "grad", ct)).Exactly($"gradient of {p}", "ct.g")
                        .Ciphertexts("g", key, plan.GradientCount(pi), $"gradient of {p}");
                    var t1 = Now;
                    var plainMasked = new BigInteger[cts.Length];
                    Parallel.For(0, cts.Length, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i => plainMasked[i] = sk.Decrypt(cts[i]));
                    lock (Seconds) Time("decrypt", t1);
                    await Net.SendAsync(p, tag + "gradback", new Message().Masked("g", plainMasked, bytes), ct);
                }));
                var lm = (await Net.ReceiveAsync(guest, tag + "loss", ct)).Exactly("loss", "ct.loss");
                loss += codec2.Decode(sk.Decrypt(lm.Ciphertexts("loss", key, 1, "loss")[0]), 2 * F);
            }
            if (!double.IsFinite(loss)) throw new FedFailureException($"the loss diverged at epoch {epoch + 1}; lower --learning-rate");
            losses.Add(loss);
            stop = Convergence.Decide(options, losses);
            var restart = Convergence.Restart(losses);
            Log($"{Net.Self}: epoch {epoch + 1} loss {loss:G6}{(restart ? " (momentum restart)" : "")}{(stop is null ? "" : $" -> stop ({stop})")}");
            await Net.SendAsync(guest, $"e{epoch}.decision", new Message().Control(new Decision(epoch, stop != null, stop, loss, restart)), ct);
            foreach (var h in hosts) await Net.SendAsync(h, $"e{epoch}.decision", new Message().Control(new Decision(epoch, stop != null, stop, null, restart)), ct);
            if (stop != null) break;
        }
        Seconds["total"] = Now;
        return new PartyOutcome { Party = Net.Self, Losses = losses, StopReason = stop, Seconds = Seconds, TrainRows = plan.TrainRows };
    }
}
