using System.Globalization;
using System.Text;
using Fed.Core.Data;

namespace Fed.Core.Tests;

public class Utf8DoubleTests
{
    static bool Reference(string s, out double v) => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out v);

    /// <summary>Whenever the fast path answers, it answers exactly what double.Parse does.</summary>
    static bool CheckAgainstDoubleParse(string s)
    {
        if (!Utf8Double.TryParse(Encoding.UTF8.GetBytes(s), out var fast)) return false;
        Assert.True(Reference(s, out var expected), $"fast path accepted '{s}', double.Parse refuses it");
        Assert.True(BitConverter.DoubleToInt64Bits(expected) == BitConverter.DoubleToInt64Bits(fast),
            $"'{s}': fast {fast:R} (0x{BitConverter.DoubleToInt64Bits(fast):X16}) vs double.Parse {expected:R} (0x{BitConverter.DoubleToInt64Bits(expected):X16})");
        return true;
    }

    [Theory]
    [InlineData("0")] [InlineData("-0")] [InlineData("+0")] [InlineData("0.0")] [InlineData("-0.0")] [InlineData("-0e5")]
    [InlineData("00012")] [InlineData("1")] [InlineData("-1")] [InlineData("+1.5")] [InlineData(".5")] [InlineData("-.5")] [InlineData("5.")]
    [InlineData("1e5")] [InlineData("1E5")] [InlineData("1e+05")] [InlineData("1e-05")] [InlineData("1.23456E-05")] [InlineData("0e999")]
    [InlineData("0.1")] [InlineData("0.2")] [InlineData("0.3")] [InlineData("1e22")] [InlineData("1e-22")] [InlineData("123.456e-19")]
    [InlineData("9007199254740991")] [InlineData("9007199254740992")] [InlineData("0.000123456")] [InlineData("-123456.78")]
    [InlineData("1e0000")]
    public void CommonNumbersTakeTheFastPathAndMatchDoubleParse(string s) => Assert.True(CheckAgainstDoubleParse(s), $"'{s}' should take the fast path");

    [Theory]
    [InlineData("")] [InlineData("-")] [InlineData("+")] [InlineData(".")] [InlineData("-.")] [InlineData("e5")] [InlineData("1e")] [InlineData("1e+")]
    [InlineData(" 1")] [InlineData("1 ")] [InlineData("NaN")] [InlineData("Infinity")] [InlineData("-Infinity")] [InlineData("∞")]
    [InlineData("1,5")] [InlineData("1..2")] [InlineData("1e5.5")] [InlineData("0x10")] [InlineData("1_0")] [InlineData("--1")] [InlineData("+-1")]
    [InlineData("１")] [InlineData("1d")] [InlineData("1f")] [InlineData("1e23")] [InlineData("1e-23")] [InlineData("9007199254740993")]
    [InlineData("12345678901234567890")] [InlineData("1.7976931348623157e308")] [InlineData("4.9e-324")] [InlineData("1e400")] [InlineData("1e00005")]
    [InlineData("3.14159265358979323846")] [InlineData("2.2250738585072014e-308")]
    [InlineData("4503599627370497.5")] [InlineData("8.9884656743115795e-6")] [InlineData("123.456e-20")]
    public void EverythingElseFallsBackToDoubleParse(string s) => Assert.False(CheckAgainstDoubleParse(s), $"'{s}' should fall back");

    [Fact]
    public void RandomNumbersInManyFormatsMatchDoubleParseBitForBit()
    {
        var rng = new Random(42);
        string[] formats = ["R", "G6", "G7", "G8", "G15", "G17", "E3", "E10", "F0", "F2", "F6", "F12"];
        var fast = 0;
        for (var i = 0; i < 200_000; i++)
        {
            var x = (rng.NextDouble() * 2 - 1) * Math.Pow(10, rng.Next(-30, 31));
            if (CheckAgainstDoubleParse(x.ToString(formats[i % formats.Length], CultureInfo.InvariantCulture))) fast++;
        }
        // Random digit strings: 1-20 digits, a decimal point anywhere, an optional exponent, signs, leading zeros.
        var sb = new StringBuilder();
        for (var i = 0; i < 200_000; i++)
        {
            sb.Clear();
            var sign = rng.Next(4);
            if (sign == 1) sb.Append('-'); else if (sign == 2) sb.Append('+');
            var digits = rng.Next(1, 21);
            var dot = rng.Next(-1, digits + 1);
            for (var d = 0; d < digits; d++)
            {
                if (d == dot) sb.Append('.');
                sb.Append((char)('0' + (rng.Next(3) == 0 ? 0 : rng.Next(10))));
            }
            if (dot == digits) sb.Append('.');
            if (rng.Next(3) == 0) sb.Append(rng.Next(2) == 0 ? 'e' : 'E').Append(rng.Next(3) switch { 0 => "-", 1 => "+", _ => "" }).Append(rng.Next(0, 40));
            if (CheckAgainstDoubleParse(sb.ToString())) fast++;
        }
        Assert.True(fast > 250_000, $"only {fast} of 400,000 strings took the fast path");
    }
}

public class CsvFeatureSourceTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("fed-csv-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string Write(string text, bool bom = false)
    {
        var path = Path.Combine(_dir, $"f{Guid.NewGuid():N}.csv");
        File.WriteAllText(path, text, new UTF8Encoding(bom));
        return path;
    }

    static (List<string> Ids, List<double[]> Rows) ReadAll(string path, string[] features, int capacity = 7)
    {
        using var src = new CsvFeatureSource(path, features);
        var batch = new FeatureBatch(features.Length, capacity);
        var ids = new List<string>();
        var rows = new List<double[]>();
        while (src.ReadBatch(batch))
            for (var r = 0; r < batch.Count; r++)
            {
                ids.Add(batch.SampleIds[r]);
                rows.Add(batch.Columns.Select(c => c[r]).ToArray());
            }
        return (ids, rows);
    }

    static void AssertBits(double expected, double actual) =>
        Assert.Equal(BitConverter.DoubleToInt64Bits(expected), BitConverter.DoubleToInt64Bits(actual));

    [Fact]
    public void ReadsQuotesMissingValuesLineEndingsAndABom()
    {
        var path = Write("id,b,a,y\r\n" +
                         "s1,1.5,-0,1\r\n" +
                         "\r\n" +
                         "\"s,2\",,NA,0\n" +
                         "s3, 2.5 ,null,\"multi\nline\"\r" +
                         "s4,\"3\",1e-3,x\n" +
                         "s5,123456789012345678901234567890,+.25,y", bom: true);
        var (ids, rows) = ReadAll(path, ["a", "b"], capacity: 2);
        Assert.Equal(["s1", "s,2", "s3", "s4", "s5"], ids);
        AssertBits(-0.0, rows[0][0]);
        AssertBits(1.5, rows[0][1]);
        Assert.True(double.IsNaN(rows[1][0]) && double.IsNaN(rows[1][1]));
        Assert.True(double.IsNaN(rows[2][0]));
        AssertBits(2.5, rows[2][1]);
        AssertBits(1e-3, rows[3][0]);
        AssertBits(3, rows[3][1]);
        AssertBits(0.25, rows[4][0]);
        AssertBits(double.Parse("123456789012345678901234567890", CultureInfo.InvariantCulture), rows[4][1]);
    }

    [Fact]
    public void ManyRowsAcrossBufferRefillsEqualDoubleParse()
    {
        var rng = new Random(5);
        var sb = new StringBuilder("id,x,y,z\n");
        var expected = new List<double[]>();
        for (var r = 0; r < 60_000; r++)
        {
            var text = Enumerable.Range(0, 3).Select(_ => ((rng.NextDouble() - 0.5) * Math.Pow(10, rng.Next(-8, 9))).ToString(rng.Next(2) == 0 ? "R" : "G7", CultureInfo.InvariantCulture)).ToArray();
            sb.Append("id").Append(r).Append(',').AppendJoin(',', text).Append(r % 3 == 0 ? "\r\n" : "\n");
            expected.Add(text.Select(t => double.Parse(t, CultureInfo.InvariantCulture)).ToArray());
        }
        // One record longer than the reader's buffer: it grows rather than splitting the record.
        var longId = new string('q', 3 << 20);
        sb.Append(longId).Append(",1,2,3\n");
        expected.Add([1, 2, 3]);
        var (ids, rows) = ReadAll(Write(sb.ToString()), ["x", "y", "z"], capacity: 4096);
        Assert.Equal(expected.Count, rows.Count);
        Assert.Equal(longId, ids[^1]);
        for (var r = 0; r < rows.Count; r++)
            for (var f = 0; f < 3; f++) AssertBits(expected[r][f], rows[r][f]);
    }

    [Theory]
    [InlineData("NaN", "line 3, column 'a': 'NaN' is not a finite number")]
    [InlineData("-Infinity", "line 3, column 'a': '-Infinity' is not a finite number")]
    [InlineData("1e400", "line 3, column 'a': '1e400' is not a finite number")]
    [InlineData("abc", "line 3, column 'a': 'abc' is not a finite number")]
    [InlineData("1.5.2", "line 3, column 'a': '1.5.2' is not a finite number")]
    [InlineData("\"NaN\"", "line 3, column 'a': 'NaN' is not a finite number")]
    public void BadCellsAreRefusedNamingLineAndColumn(string cell, string message)
    {
        var path = Write($"id,a\ns1,1\ns2,{cell}\n");
        var e = Assert.Throws<BadInputException>(() => ReadAll(path, ["a"]));
        Assert.Contains(message, e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void BadRecordsAreRefusedNamingTheLine()
    {
        Assert.Contains("line 2: 3 fields, the header has 2", Assert.Throws<BadInputException>(() => ReadAll(Write("id,a\ns1,1,2\n"), ["a"])).Message);
        Assert.Contains("line 3: empty id", Assert.Throws<BadInputException>(() => ReadAll(Write("id,a\ns1,1\n,2\n"), ["a"])).Message);
        Assert.Contains("line 2: unterminated quoted field", Assert.Throws<BadInputException>(() => ReadAll(Write("id,a\n\"s1,1\n"), ["a"])).Message);
        Assert.Contains("'b'", Assert.Throws<MissingFeatureException>(() => ReadAll(Write("id,a\ns1,1\n"), ["a", "b"])).Message);
        Assert.Contains("empty file", Assert.Throws<BadInputException>(() => ReadAll(Write(""), ["a"])).Message);
        var utf16 = Path.Combine(_dir, "utf16.csv");
        File.WriteAllText(utf16, "id,a\ns1,1\n", Encoding.Unicode);
        Assert.Contains("UTF-16", Assert.Throws<BadInputException>(() => ReadAll(utf16, ["a"])).Message);
    }
}
