using System.Text;
using Fed.Core;

namespace Fed.Warehouse;

public enum ColumnType { String, Int, BigInt, Double }

public sealed record ColumnDef(string Name, ColumnType Type, bool Nullable = false, string? Comment = null);

/// <summary>A table as Fed defines it once; each dialect renders it. Partition columns become ordinary
/// columns in engines without partitions (SQLite, PostgreSQL) and PARTITIONED BY columns in Hive.</summary>
public sealed record TableDef(string Name, IReadOnlyList<ColumnDef> Columns, IReadOnlyList<ColumnDef> PartitionBy, string Comment,
    IReadOnlyList<string>? Key = null)
{
    public IEnumerable<ColumnDef> AllColumns => Columns.Concat(PartitionBy);
}

/// <summary>
/// What differs between engines: quoting, types, DDL, transactions. Everything else Fed writes is plain SQL that
/// SQLite, PostgreSQL, HiveQL and Spark SQL all accept.
/// </summary>
public abstract class SqlDialect
{
    public static readonly SqlDialect Sqlite = new SqliteDialect();
    public static readonly SqlDialect Postgres = new PostgresDialect();
    public static readonly SqlDialect Hive = new HiveDialect();
    /// <summary>SQLite reached through the SQLite3 ODBC driver, which converts doubles through 15-digit text.</summary>
    public static readonly SqlDialect SqliteOverOdbc = new SqliteOdbcDialect();

    public abstract string Name { get; }
    public abstract bool SupportsTransactions { get; }
    public abstract string TypeName(ColumnType type);
    protected abstract char Quote { get; }

    public static SqlDialect Parse(string name) => name.ToLowerInvariant() switch
    {
        "sqlite" => Sqlite,
        "postgres" or "postgresql" => Postgres,
        "hive" or "spark" or "sparksql" => Hive,
        _ => throw new BadInputException($"unknown SQL dialect '{name}'; expected sqlite, postgres or hive"),
    };

    /// <summary>Quotes a name after checking it: the only way a name enters SQL text.</summary>
    public string Id(string name) => $"{Quote}{Identifiers.SqlName(name)}{Quote}";

    /// <summary>A static Hive partition spec, <c>PARTITION (model_id='m', version='1', ...)</c>: names through
    /// <see cref="Id"/>, values as string literals (partition columns are STRING), each refused unless it matches a
    /// strict pattern, since a spec cannot take bound parameters.</summary>
    public string PartitionSpec(params (string Column, string Value)[] values) =>
        "PARTITION (" + string.Join(", ", values.Select(v => $"{Id(v.Column)}={PartitionLiteral(v.Value)}")) + ")";

    /// <summary>A partition value as a HiveQL string literal, refused unless it is [A-Za-z0-9_.-]+ (ids, dates, hours, versions).</summary>
    public static string PartitionLiteral(string value) =>
        value.Length > 0 && value.All(ch => char.IsAsciiLetterOrDigit(ch) || ch is '_' or '.' or '-')
            ? $"'{value}'"
            : throw new BadInputException($"'{value}' cannot be a partition value: use letters, digits, '_', '.' or '-'");

    /// <summary>The column names of a table, lower case, in table order (partition columns included), without
    /// <c>SELECT *</c>: the catalog (SQLite pragma_table_info, PostgreSQL information_schema) or Hive's DESCRIBE,
    /// whose column names come back bare (a <c>SELECT *</c> through HiveServer2 names them <c>table.column</c>).</summary>
    public virtual List<string> ColumnsOf(IWarehouse w, string table)
    {
        var (sql, args) = ColumnsQuery(Identifiers.SqlName(table, "table name"));
        var list = new List<string>();
        using var r = w.Query(sql, args);
        while (r.Read())
        {
            var name = r.IsNull(0) ? "" : r.GetString(0).Trim();
            if (name.Length == 0 || name.StartsWith('#')) { if (Name == "hive") break; continue; } // DESCRIBE: partition section follows
            name = name.ToLowerInvariant();
            var dot = name.LastIndexOf('.');
            if (dot >= 0) name = name[(dot + 1)..];
            if (!list.Contains(name)) list.Add(name);
        }
        return list;
    }

    protected abstract (string Sql, object?[] Args) ColumnsQuery(string table);

    /// <summary>A DOUBLE column as it must be selected to read back every bit (see <see cref="SqliteOverOdbc"/>).</summary>
    public virtual string ReadDouble(string expression) => expression;

    public virtual string CreateTable(TableDef t)
    {
        var sb = new StringBuilder();
        sb.Append("CREATE TABLE IF NOT EXISTS ").Append(Id(t.Name)).Append(" (\n");
        sb.Append(string.Join(",\n", t.AllColumns.Select(c => $"  {Id(c.Name)} {TypeName(c.Type)}{(c.Nullable ? "" : " NOT NULL")}")));
        if (t.Key is { Count: > 0 }) sb.Append($",\n  PRIMARY KEY ({string.Join(", ", t.Key.Select(Id))})");
        sb.Append("\n)");
        return sb.ToString();
    }

    class SqliteDialect : SqlDialect
    {
        public override string Name => "sqlite";
        public override bool SupportsTransactions => true;
        protected override char Quote => '"';
        protected override (string, object?[]) ColumnsQuery(string table) => ("SELECT name FROM pragma_table_info(?) ORDER BY cid", [table]);
        public override string TypeName(ColumnType type) => type switch
        {
            ColumnType.String => "TEXT",
            ColumnType.Double => "REAL",
            _ => "INTEGER",
        };
    }

    /// <summary>quote() prints a REAL with 17 significant digits, which the driver then parses exactly.</summary>
    sealed class SqliteOdbcDialect : SqliteDialect
    {
        public override string ReadDouble(string expression) => $"CASE WHEN {expression} IS NULL THEN NULL ELSE quote({expression}) END";
    }

    sealed class PostgresDialect : SqlDialect
    {
        public override string Name => "postgres";
        public override bool SupportsTransactions => true;
        protected override char Quote => '"';
        // Unquoted names fold to lower case in PostgreSQL; Fed's names are checked lower-case-safe identifiers.
        protected override (string, object?[]) ColumnsQuery(string table) =>
            ("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position", [table]);
        public override string TypeName(ColumnType type) => type switch
        {
            ColumnType.String => "TEXT",
            ColumnType.Double => "DOUBLE PRECISION",
            ColumnType.Int => "INTEGER",
            _ => "BIGINT",
        };
    }

    /// <summary>HiveQL, which Spark SQL also accepts for these statements: ORC tables, partitions, no transactions.</summary>
    sealed class HiveDialect : SqlDialect
    {
        public override string Name => "hive";
        public override bool SupportsTransactions => false;
        protected override char Quote => '`';
        // DESCRIBE lists the data columns, then the partition columns again after a '# Partition Information' line.
        protected override (string, object?[]) ColumnsQuery(string table) => ($"DESCRIBE {Id(table)}", []);
        public override string TypeName(ColumnType type) => type switch
        {
            ColumnType.String => "STRING",
            ColumnType.Double => "DOUBLE",
            ColumnType.Int => "INT",
            _ => "BIGINT",
        };

        public override string CreateTable(TableDef t)
        {
            string Col(ColumnDef c, ColumnType type) => $"  {Id(c.Name)} {TypeName(type)}{(c.Comment is null ? "" : $" COMMENT '{Escape(c.Comment)}'")}";
            var sb = new StringBuilder();
            sb.Append("CREATE TABLE IF NOT EXISTS ").Append(Id(t.Name)).Append(" (\n");
            sb.Append(string.Join(",\n", t.Columns.Select(c => Col(c, c.Type)))).Append("\n)");
            sb.Append($"\nCOMMENT '{Escape(t.Comment)}'");
            // Partition columns are STRING: a Hive-layout folder name (version=3) is text, and Fed's Parquet output
            // and the partition specs it writes (version='3') agree with that.
            if (t.PartitionBy.Count > 0) sb.Append("\nPARTITIONED BY (\n").Append(string.Join(",\n", t.PartitionBy.Select(c => Col(c, ColumnType.String)))).Append("\n)");
            sb.Append("\nSTORED AS ORC");
            return sb.ToString();
        }

        // Comments are Fed's own constant text; escaping keeps a quote in one from ending the literal.
        static string Escape(string s) => s.Replace("\\", "\\\\").Replace("'", "\\'");
    }
}
