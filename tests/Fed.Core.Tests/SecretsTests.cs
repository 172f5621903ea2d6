using Fed.Core.Security;

namespace Fed.Core.Tests;

/// <summary>The one redactor (<see cref="Secrets.Redact"/>) for every kind of setting string Fed shows.</summary>
public class SecretsTests
{
    [Theory]
    // ODBC: an unbraced value runs to the next ';' (spaces included), or to the end as the last attribute.
    [InlineData("Driver={PostgreSQL Unicode};Server=db;UID=fed;PWD=my s3cret;Port=5432", "Driver={PostgreSQL Unicode};Server=db;UID=fed;PWD=***;Port=5432")]
    [InlineData("Uid=a; Pwd = my s3cret word ;X=1", "Uid=a; Pwd = ***;X=1")]
    [InlineData("Uid=a;Password=my s3cret", "Uid=a;Password=***")]
    [InlineData("Password=my s3cret", "Password=***")]
    [InlineData("cannot connect to odbc:postgres:Driver=x;PWD=my s3cret;Port=1: refused", "cannot connect to odbc:postgres:Driver=x;PWD=***;Port=1: refused")]
    [InlineData("[unixODBC]bad attribute in 'Uid=a;Pwd=my s3cret;'\nnext line", "[unixODBC]bad attribute in 'Uid=a;Pwd=***;'\nnext line")]
    // ODBC braced: to the closing brace, '}}' escaping a brace, ';' and spaces inside.
    [InlineData("Uid=a;Pwd={hun;ter}}2};X=1", "Uid=a;Pwd=***;X=1")]
    [InlineData("Uid=a;PWD={my s3cret};X=1", "Uid=a;PWD=***;X=1")]
    // Redis configuration strings and URLs.
    [InlineData("127.0.0.1:6379,password=hunter2,ssl=true", "127.0.0.1:6379,password=***,ssl=true")]
    [InlineData("redis://fed:hunter2@h:6379/0", "redis://fed:***@h:6379/0")]
    [InlineData("rediss://:hunter2@h:6380", "rediss://:***@h:6380")]
    // Kafka properties: whitespace-separated, dotted names; the others are left alone.
    [InlineData("sasl.password=a1 ssl.key.password=b2 ssl.keystore.password=c3 bootstrap.servers=k:9092",
        "sasl.password=*** ssl.key.password=*** ssl.keystore.password=*** bootstrap.servers=k:9092")]
    [InlineData("sasl.oauthbearer.client.secret=x group.id=g", "sasl.oauthbearer.client.secret=*** group.id=g")]
    // Nothing secret: unchanged.
    [InlineData("password authentication failed for user \"fed\"", "password authentication failed for user \"fed\"")]
    [InlineData("Driver=x;Server=db;Port=5432", "Driver=x;Server=db;Port=5432")]
    public void Secret_values_are_masked_whole_and_nothing_else(string text, string shown)
    {
        Assert.Equal(shown, Secrets.Redact(text));
        foreach (var secret in new[] { "s3cret", "hunter2", "hun;ter", "ter}}2", "a1", "b2", "c3" })
            if (text.Contains(secret)) Assert.DoesNotContain(secret, Secrets.Redact(text));
    }
}
