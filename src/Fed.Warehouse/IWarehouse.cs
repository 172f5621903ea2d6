namespace Fed.Warehouse;

/// <summary>
/// A SQL warehouse Fed reads models and features from and writes scores to: the embedded SQLite file (default),
/// or any ODBC data source (PostgreSQL, SQLite, a Hive or Spark Thrift Server). SQL text uses '?' placeholders
/// and every value is bound; names come only from <see cref="Fed.Core.Identifiers"/>-checked identifiers.
/// </summary>
public interface IWarehouse : IDisposable
{
    SqlDialect Dialect { get; }
    /// <summary>Where this is (a file path, a DSN without its password), for messages.</summary>
    string Description { get; }
    int Execute(string sql, params object?[] args);
    IRowReader Query(string sql, params object?[] args);
    /// <summary>A forward-only scan over many rows (a feature table): the same rows and values as <see cref="Query"/>,
    /// which a backend may serve with a leaner reader (typed column access, no per-value boxing).</summary>
    IRowReader Scan(string sql, params object?[] args) => Query(sql, args);
    /// <summary>Starts a transaction; disposing it without <see cref="IWarehouseTransaction.Commit"/> rolls back.
    /// Only valid when <see cref="SqlDialect.SupportsTransactions"/>; Hive writers use partition overwrite instead.</summary>
    IWarehouseTransaction BeginTransaction();
    bool TableExists(string table);
}

public interface IWarehouseTransaction : IDisposable
{
    void Commit();
}

/// <summary>Forward-only rows of a query.</summary>
public interface IRowReader : IDisposable
{
    bool Read();
    int FieldCount { get; }
    string GetName(int i);
    bool IsNull(int i);
    double GetDouble(int i);
    long GetInt64(int i);
    string GetString(int i);

    /// <summary>Columns <c>[first, first + values.Length)</c> of the current row as doubles, NULL as NaN.</summary>
    void GetDoubles(int first, Span<double> values)
    {
        for (var i = 0; i < values.Length; i++) values[i] = IsNull(first + i) ? double.NaN : GetDouble(first + i);
    }
}
