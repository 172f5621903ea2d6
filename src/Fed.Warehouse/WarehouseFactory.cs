using Fed.Core;
using Fed.Warehouse.Sqlite;

namespace Fed.Warehouse;

/// <summary>
/// Opens a warehouse from one string, the --warehouse option or FED_WAREHOUSE:
/// <c>sqlite:PATH</c> (the default is sqlite:.fed/warehouse.db) or
/// <c>odbc:dialect=postgres|sqlite|hive;Driver=...;...</c> for any ODBC data source. Anything else is refused
/// (a misspelled spec must not become a SQLite file of that name).
/// </summary>
public static class WarehouseFactory
{
    public const string DefaultPath = ".fed/warehouse.db";
    public const string EnvironmentVariable = "FED_WAREHOUSE";

    public const string AcceptedForms = "sqlite:PATH (e.g. sqlite:.fed/warehouse.db) or odbc:dialect=postgres|sqlite|hive;Driver=...;... (an ODBC data source)";

    /// <summary>THE rule every command and worker uses: the given spec (--warehouse, a config's "warehouse"), else
    /// FED_WAREHOUSE, else the default. Refuses a spec of any other form.</summary>
    public static string Resolve(string? spec)
    {
        var (s, from) = !string.IsNullOrWhiteSpace(spec) ? (spec, "--warehouse")
            : Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } env ? (env, EnvironmentVariable)
            : ("sqlite:" + DefaultPath, "default");
        if (!s.StartsWith("sqlite:", StringComparison.OrdinalIgnoreCase) && !s.StartsWith("odbc:", StringComparison.OrdinalIgnoreCase))
            throw new BadInputException($"warehouse '{ErrorText.Cut(s)}' (from {from}) is not a warehouse spec: expected {AcceptedForms}");
        return s;
    }

    public static IWarehouse Open(string? spec)
    {
        var s = Resolve(spec);
        if (s.StartsWith("odbc:", StringComparison.OrdinalIgnoreCase))
        {
            var rest = s[5..];
            var parts = rest.Split(';', StringSplitOptions.RemoveEmptyEntries);
            var dialectPart = parts.FirstOrDefault(p => p.Trim().StartsWith("dialect=", StringComparison.OrdinalIgnoreCase))
                ?? throw new BadInputException("an odbc: warehouse needs dialect=postgres|sqlite|hive, e.g. odbc:dialect=postgres;Driver={PostgreSQL Unicode};Server=...");
            var dialect = SqlDialect.Parse(dialectPart.Split('=', 2)[1].Trim());
            var connectionString = string.Join(';', parts.Where(p => p != dialectPart)) + ";";
            return new Odbc.OdbcWarehouse(connectionString, dialect);
        }
        var path = s[7..];
        if (path.Length == 0) throw new BadInputException("sqlite: needs a file path, e.g. sqlite:.fed/warehouse.db");
        return new SqliteWarehouse(path);
    }
}
