using System.Collections.Concurrent;
using Fed.Core;
using Fed.Core.Scoring;
using Fed.Warehouse;

namespace Fed.Serving;

/// <summary>
/// Warehouse connections for concurrent requests (a SQLite or ODBC connection serves one statement at a time).
/// Never blocks a request thread waiting for a connection: a request takes an idle one or opens one; at most
/// <c>max</c> idle connections are kept, extra ones are closed when returned.
/// </summary>
public sealed class WarehousePool(string spec, int max) : IDisposable
{
    readonly ConcurrentBag<IWarehouse> _idle = [];
    int _idleCount;

    public string Spec => spec;

    public T Use<T>(Func<IWarehouse, T> work)
    {
        IWarehouse? w = null;
        try
        {
            if (_idle.TryTake(out w)) Interlocked.Decrement(ref _idleCount);
            else w = WarehouseFactory.Open(spec);
            var result = work(w);
            if (Interlocked.Increment(ref _idleCount) <= max) { _idle.Add(w); w = null; }
            else Interlocked.Decrement(ref _idleCount);
            return result;
        }
        finally
        {
            w?.Dispose(); // a connection that failed mid-statement, or one beyond the idle limit, is closed
        }
    }

    public void Dispose()
    {
        while (_idle.TryTake(out var w)) w.Dispose();
    }
}

/// <summary>A party's model of one version, ready to score.</summary>
public sealed class LoadedModel(ScoringModel model, MaskingPolicy? masking = null)
{
    public ScoringModel Model { get; } = model;
    public PartialScorer Scorer { get; } = new(model);
    public ModelSignature Signature { get; } = model.Signature;
    public string[] Columns { get; } = model.Columns;
    /// <summary>This version's masking attribute in this service's registry (fixed per loaded version).</summary>
    public MaskingPolicy Masking { get; } = masking ?? new MaskingPolicy(false, model.Parties[0], []);
    Dictionary<string, byte[]>? _pairSecrets;

    /// <summary>This party's pair secrets for the version (derived once); a masker without a key file is a configuration error.</summary>
    public Dictionary<string, byte[]> MaskPairSecrets(MaskKeys? keys)
    {
        if (_pairSecrets != null) return _pairSecrets;
        if (!Masking.Maskers.Contains(Model.PartyId)) return _pairSecrets = [];
        if (keys is null) throw new FedFailureException($"model '{Model.ModelId}' v{Model.Version} is masked and party '{Model.PartyId}' masks, but its config has no 'mask_keys'");
        return _pairSecrets = keys.PairSecrets(Signature, Masking);
    }
}

/// <summary>
/// Loaded models by (model id, version) (versions are immutable, so they are cached for good) and the active-version
/// pointer per model, re-read from the registry every <c>refresh</c> or at once after an admin activate/rollback.
/// A request resolves its version once and carries it, so a request in flight finishes on the version it started with.
/// </summary>
public sealed class ModelCache(WarehousePool pool, string partyId, TimeSpan refresh)
{
    readonly ConcurrentDictionary<(string, int), LoadedModel> _models = new();
    readonly ConcurrentDictionary<string, Pointer> _active = new(StringComparer.Ordinal);

    sealed class Pointer(int version, long fetchedAt)
    {
        public readonly int Version = version;
        public readonly long FetchedAt = fetchedAt;
        public int Refreshing;
    }

    public string PartyId => partyId;
    public int LoadedCount => _models.Count;

    /// <summary>The active version (from the cached pointer; refreshed in the background of one request when old).</summary>
    public int ActiveVersion(string modelId)
    {
        Identifiers.ModelId(modelId);
        if (_active.TryGetValue(modelId, out var p))
        {
            if (Environment.TickCount64 - p.FetchedAt < refresh.TotalMilliseconds) return p.Version;
            if (Interlocked.Exchange(ref p.Refreshing, 1) == 1) return p.Version; // another request is refreshing it
            try { return ReadPointer(modelId); }
            catch (UnknownModelException) { _active.TryRemove(modelId, out _); throw; }
            catch (FedFailureException) { Interlocked.Exchange(ref p.Refreshing, 0); return p.Version; } // keep serving the last known
        }
        return ReadPointer(modelId);
    }

    int ReadPointer(string modelId)
    {
        var entry = pool.Use(w => new ModelRegistry(w).Resolve(modelId, partyId));
        _active[modelId] = new Pointer(entry.Version, Environment.TickCount64);
        return entry.Version;
    }

    public LoadedModel Get(string modelId, int version)
    {
        if (_models.TryGetValue((modelId, version), out var m)) return m;
        Identifiers.ModelId(modelId);
        if (version < 1) throw new BadInputException($"version must be >= 1, got {version}");
        var loaded = pool.Use(w =>
        {
            var m = new ModelRegistry(w).Load(modelId, partyId, version);
            return new LoadedModel(m, new MaskingRegistry(w).Policy(m.Signature));
        });
        return _models.GetOrAdd((modelId, version), loaded);
    }

    /// <summary>Activates a version in this service's registry and moves the pointer now.</summary>
    public int Activate(string modelId, int version)
    {
        Get(modelId, version); // refuse a version this party cannot load before moving the pointer
        pool.Use(w => { new ModelRegistry(w).Activate(modelId, version); return 0; });
        return ReadPointer(modelId);
    }

    /// <summary>Re-activates the previous version in this service's registry; returns it.</summary>
    public int Rollback(string modelId)
    {
        pool.Use(w => new ModelRegistry(w).Rollback(modelId));
        return ReadPointer(modelId);
    }
}
