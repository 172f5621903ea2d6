using Fed.Cli;
using Fed.Cli.Commands;

// Every component contributes its commands from Commands/<Component>Commands.cs.
IReadOnlyList<CliCommand> commands =
[
    .. ModelCommands.All,
    .. ConvertCommands.All,
    .. ServeCommands.All,
    .. StreamCommands.All,
    .. PredictCommands.All,
    .. TrainCommands.All,
    .. HorizontalCommands.All,
];
return CliApp.Run(args, commands);
