using System.Diagnostics;
using Fed.Core;
using Fed.Core.Model;
using Fed.Core.Redis;
using Fed.Core.Scoring;
using Fed.Warehouse;
using StackExchange.Redis;

namespace Fed.SparkPredict;

/// <summary>
/// Loads a predictions partition into Redis in the shared format (<see cref="PredictionKeys"/>, <see cref="PredictionRecord"/>)
/// and looks predictions up. One multiplexed connection (single node or cluster); SETs are pipelined in chunks and every
/// reply of a chunk is awaited, so each write is known to have landed; a chunk that failed is written again (the same
/// bytes: idempotent). The active-version pointer is set last.
/// </summary>
public static class RedisPredictions
{
    public sealed record LoadResult(long Written, int Version, bool PointerSet, double Seconds);

    public static ConnectionMultiplexer Connect(string endpoint)
    {
        try { return RedisStore.Connect(endpoint, abortOnConnectFail: true, syncTimeoutMs: 30000); }
        catch (RedisConnectionException e) { throw new FedFailureException($"cannot connect to Redis at {endpoint}: {e.Message}", e); }
        catch (ArgumentException e) { throw new BadInputException($"--redis '{endpoint}': {e.Message}; use HOST:PORT (a cluster: HOST:PORT,HOST:PORT,...)", e); }
    }

    /// <summary>Writes sent before one awaited check; a failed chunk (e.g. a cluster master failing over) is sent again.</summary>
    const int Chunk = 10_000, Attempts = 8;

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
        var chunk = new List<KeyValuePair<RedisKey, RedisValue>>(Chunk);
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
            chunk.Add(new(PredictionKeys.Record(sig.ModelId, sig.Version, id), rec.ToJson()));
            n++;
            if (chunk.Count == Chunk)
            {
                WriteChunk(db, chunk, ttl, progress);
                chunk.Clear();
                progress?.Invoke($"  {n:N0} predictions written to Redis");
            }
        }
        WriteChunk(db, chunk, ttl, progress);
        if (n == 0) throw new BadInputException($"empty partition: {t} has no predictions for model '{sig.ModelId}' v{sig.Version} {p}");
        if (active) db.StringSet(PredictionKeys.ActiveVersion(sig.ModelId), sig.Version.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return new LoadResult(n, sig.Version, active, sw.Elapsed.TotalSeconds);
    }

    /// <summary>Sends the chunk's SETs at once, awaits every reply; sends the failed ones again with backoff.</summary>
    static void WriteChunk(IDatabase db, List<KeyValuePair<RedisKey, RedisValue>> chunk, TimeSpan? ttl, Action<string>? progress)
    {
        var pending = chunk;
        for (var attempt = 1; pending.Count > 0; attempt++)
        {
            var writes = pending.Select(kv => (kv, db.StringSetAsync(kv.Key, kv.Value, ttl, When.Always))).ToList();
            try { Task.WaitAll(writes.Select(w => (Task)w.Item2)); } catch (AggregateException) { }
            var failed = writes.Where(w => !w.Item2.IsCompletedSuccessfully).ToList();
            if (failed.Count == 0) return;
            var error = failed[0].Item2.Exception?.InnerException?.Message ?? "not acknowledged";
            if (attempt == Attempts) throw new FedFailureException($"Redis refused {failed.Count} writes after {Attempts} attempts: {error}");
            progress?.Invoke($"  {failed.Count} Redis writes failed ({error}); writing them again");
            Thread.Sleep(100 * (1 << Math.Min(attempt, 5)));
            pending = failed.Select(w => w.kv).ToList();
        }
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
