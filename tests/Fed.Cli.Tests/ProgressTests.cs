using System.Diagnostics;
using Fed.TestSupport;

namespace Fed.Cli.Tests;

/// <summary>Issue 15 finding 9: --version, did-you-mean, and a progress bar on a terminal only.</summary>
public class ProgressTests
{
    static string[] Train(Harness h, string outDir) =>
        ["train", "local", "--kind", "logistic", "--party", "guest=" + Path.Combine(Harness.Samples, "guest.csv"),
         "--party", "host=" + Path.Combine(Harness.Samples, "host.csv"), "--out", h.Path(outDir), "--key-bits", "1024", "--insecure-test-key-bits", "--max-iter", "2"];

    /// <summary>Runs fed under a pseudo-terminal (util-linux `script`), as a person at a terminal would.</summary>
    static string OnTerminal(Harness h, string[] args)
    {
        var psi = new ProcessStartInfo("script") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = h.Dir };
        psi.ArgumentList.Add("-qec");
        psi.ArgumentList.Add(string.Join(' ', new[] { "dotnet", FedProcess.FedDll }.Concat(args).Select(a => "'" + a + "'")));
        psi.ArgumentList.Add("/dev/null");
        psi.Environment["TERM"] = "xterm";
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, output);
        return output;
    }

    [Fact]
    public void Training_shows_epochs_and_loss_on_a_terminal_and_nothing_of_it_elsewhere()
    {
        var h = new Harness();
        var tty = OnTerminal(h, Train(h, "a"));
        Assert.Contains("training loss", tty);
        Assert.Contains("epochs/s", tty);
        Assert.Contains("100%", tty);

        var piped = h.Fed(Train(h, "b"));
        Assert.Equal(0, piped.Code);
        Assert.DoesNotContain("\u001b[", piped.Err + piped.Out);
        Assert.Contains("guest: epoch 2/2 loss", piped.Err); // plain lines off a terminal

        var json = OnTerminal(h, [.. Train(h, "c"), "--json"]);
        Assert.DoesNotContain("epochs/s", json);
    }

    [Fact]
    public void Version_and_did_you_mean_without_echoing_the_typo_into_a_usage_line()
    {
        var v = Harness.InProcess("--version");
        Assert.Equal(0, v.Code);
        Assert.Matches(@"^fed \d+\.\d+", v.Out);

        var typo = Harness.InProcess("predcit", "batch");
        Assert.Equal(2, typo.Code);
        Assert.Contains("did you mean 'predict'?", typo.Err);
        Assert.DoesNotContain("usage: fed predcit", typo.Err + typo.Out);
        var option = Harness.InProcess("convert", "--modle", "x.json");
        Assert.Equal(2, option.Code);
        Assert.Contains("did you mean '--model'?", option.Err);
        var sub = Harness.InProcess("model", "lst");
        Assert.Contains("did you mean 'list'?", sub.Err);
    }
}
