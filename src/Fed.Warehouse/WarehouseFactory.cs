using Fed.Core;
using Fed.Warehouse.Sqlite;

namespace Fed.Warehouse;

/// <summary>
/// Opens a warehouse from one string, the --warehouse option or FED_WAREHOUSE:
/// <c>sqlite:PATH</c> (or a bare path; the default is .fed/warehouse.db) or
/// <c>odbc:dialect=postgres|sqlite|hive;Driver=...;...</c> for any ODBC data source.
/// </summary>
public static class WarehouseFactory
{
    public const string DefaultPath = ".fed/warehouse.db";
    public const string EnvironmentVariable = "FED_WAREHOUSE";

    public static string Resolve(string? spec) =>
        string.IsNullOrWhiteSpace(spec) ? Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } env ? env : "sqlite:" + DefaultPath : spec;

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
        var path = s.StartsWith("sqlite:", StringComparison.OrdinalIgnoreCase) ? s[7..] : s;
        if (path.Length == 0) throw new BadInputException("sqlite: needs a file path, e.g. sqlite:.fed/warehouse.db");
        return new SqliteWarehouse(path);
    }
}
