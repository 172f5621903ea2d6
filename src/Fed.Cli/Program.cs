using Fed.Cli;
using Fed.Cli.Commands;

return CliApp.Run(args, FedCommands.All);

namespace Fed.Cli
{
    /// <summary>Every component contributes its commands from Commands/&lt;Component&gt;Commands.cs.</summary>
    public static class FedCommands
    {
        public static IReadOnlyList<CliCommand> All =>
        [
            .. ModelCommands.All,
            .. ConvertCommands.All,
            .. ServeCommands.All,
            .. StreamCommands.All,
            .. PredictCommands.All,
            .. TrainCommands.All,
            .. HorizontalCommands.All,
        ];
    }
}
