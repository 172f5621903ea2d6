using System.Diagnostics;
using Fed.Core;
using Fed.Core.Model;
using Fed.Core.Scoring;
using Fed.Warehouse;
using StackExchange.Redis;

namespace Fed.SparkPredict;

/// <summary>
/// Loads a predictions partition into Redis in the shared format (<see cref="PredictionKeys"/>, <see cref="PredictionRecord"/>)
/// and looks predictions up. One multiplexed connection; SETs are sent fire-and-forget in batches, then one awaited
/// round trip proves they all landed; the active-version pointer is set last.
/// </summary>
public static class RedisPredictions
{
    public sealed record LoadResult(long Written, int Version, bool PointerSet, double Seconds);

    public static ConnectionMultiplexer Connect(string endpoint)
    {
        try
        {
            var options = ConfigurationOptions.Parse(endpoint);
            options.AbortOnConnectFail = true;
            options.ConnectTimeout = 5000;
            options.SyncTimeout = 30000;
            return ConnectionMultiplexer.Connect(options);
        }
        catch (RedisConnectionException e) { throw new FedFailureException($"cannot connect to Redis at {endpoint}: {e.Message}", e); }
        catch (ArgumentException e) { throw new BadInputException($"--redis '{endpoint}': {e.Message}; use HOST:PORT", e); }
    }

    public static LoadResult Load(IWarehouse w, string endpoint, string modelId, int? version, Partition p, TimeSpan? ttl, Action<string>? progress = null)
    {
        var sig = CombineCore.Signature(w, modelId, version);
        var active = new ModelRegistry(w).List(modelId).Any(e => e.Version == sig.Version && e.IsActive);
        var t = Schema.Predictions(p.Hourly).Name;
        if (!w.TableExists(t)) throw new BadInputException($"no table {t} in {w.Description}: run 'fed predict combine' first");
        var d = w.Dialect;
        using var r = p.Hourly
            ? w.Query($"SELECT sample_id, predict_value, predicted_class, probabilities FROM {d.Id(t)} WHERE model_id = ? AND version = ? AND dt = ? AND hour = ?", sig.ModelId, sig.Version, p.Dt, p.HourText)
            : w.Query($"SELECT sample_id, predict_value, predicted_class, probabilities FROM {d.Id(t)} WHERE model_id = ? AND version = ? AND dt = ?", sig.ModelId, sig.Version, p.Dt);
        var sw = Stopwatch.StartNew();
        using var redis = Connect(endpoint);
        var db = redis.GetDatabase();
        var now = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ");
        long n = 0;
        Task? last = null;
        while (r.Read())
        {
            var id = r.GetString(0);
            Dictionary<string, double>? probs = null;
            if (PartialModel.HasClasses(sig.Kind) && !r.IsNull(3))
            {
                var arr = System.Text.Json.JsonSerializer.Deserialize<double[]>(r.GetString(3))!;
                probs = new Dictionary<string, double>();
                for (var c = 0; c < arr.Length; c++) probs[sig.Classes[c]] = arr[c];
            }
            var rec = new PredictionRecord
            {
                ModelId = sig.ModelId, Version = sig.Version, SampleId = id, PredictValue = r.GetDouble(1),
                PredictedClass = r.IsNull(2) ? null : r.GetString(2), Probabilities = probs, Dt = p.Dt, Hour = p.HourText, WrittenAt = now,
            };
            var key = PredictionKeys.Record(sig.ModelId, sig.Version, id);
            // Every 10,000th write is awaited-able; the rest are fire-and-forget on the same ordered connection.
            if (++n % 10_000 == 0)
            {
                last = db.StringSetAsync(key, rec.ToJson(), ttl, When.Always);
                last.Wait();
                progress?.Invoke($"  {n:N0} predictions written to Redis");
            }
            else db.StringSet(key, rec.ToJson(), ttl, When.Always, CommandFlags.FireAndForget);
        }
        // Commands on one connection are processed in order: once this reply arrives, every SET before it is applied.
        db.Ping();
        if (n == 0) throw new BadInputException($"empty partition: {t} has no predictions for model '{sig.ModelId}' v{sig.Version} {p}");
        if (active) db.StringSet(PredictionKeys.ActiveVersion(sig.ModelId), sig.Version.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return new LoadResult(n, sig.Version, active, sw.Elapsed.TotalSeconds);
    }

    /// <summary>Looks a prediction up: the given version, or the version the active pointer names.</summary>
    public static PredictionRecord? Lookup(string endpoint, string modelId, string sampleId, int? version)
    {
        using var redis = Connect(endpoint);
        var db = redis.GetDatabase();
        if (version is null)
        {
            var pointer = db.StringGet(PredictionKeys.ActiveVersion(modelId));
            if (pointer.IsNull) throw new UnknownModelException($"Redis has no active version of model '{modelId}' (key {PredictionKeys.ActiveVersion(modelId)}): load it with 'fed predict load-redis' or give --version");
            version = int.Parse(pointer.ToString(), System.Globalization.CultureInfo.InvariantCulture);
        }
        var key = PredictionKeys.Record(modelId, version.Value, sampleId);
        var value = db.StringGet(key);
        return value.IsNull ? null : PredictionRecord.Parse(value.ToString(), key);
    }
}
