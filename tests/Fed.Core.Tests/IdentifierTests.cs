namespace Fed.Core.Tests;

public class IdentifierTests
{
    [Theory]
    [InlineData("x; DROP TABLE fed_model_registry")]
    [InlineData("a\"b")]
    [InlineData("a`b")]
    [InlineData("a'b")]
    [InlineData("1abc")]
    [InlineData("select")]
    [InlineData("Upper")]
    [InlineData("")]
    [InlineData("a b")]
    [InlineData("a--")]
    public void UnsafeSqlNamesAreRefused(string name) => Assert.Throws<BadInputException>(() => Identifiers.SqlName(name));

    [Theory]
    [InlineData("m1' OR '1'='1")]
    [InlineData("../etc/passwd")]
    [InlineData("a:b")]
    [InlineData("a b")]
    [InlineData("-rf")]
    public void UnsafeModelIdsAreRefused(string id) => Assert.Throws<BadInputException>(() => Identifiers.ModelId(id));

    [Theory]
    [InlineData("od280/od315_of_diluted_wines", "od280_od315_of_diluted_wines")]
    [InlineData("CheckingAccountStatus.lt.0", "checkingaccountstatus_lt_0")]
    [InlineData("1st", "f_1st")]
    [InlineData("select", "f_select")]
    [InlineData("x'); DROP TABLE t; --", "x____drop_table_t____")]
    public void FeatureColumnsAreSafe(string feature, string column)
    {
        Assert.Equal(column, Identifiers.ColumnFor(feature));
        Identifiers.SqlName(Identifiers.ColumnFor(feature));
    }
}
