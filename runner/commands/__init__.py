"""One module per ``bodywork`` subcommand. Each has ``add_parser(subparsers)`` and ``run(args) -> int``."""
