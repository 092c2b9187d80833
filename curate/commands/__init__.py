"""The `curate` subcommands: one module each, each with `register(subparsers)` that sets `func=run`."""

# Module names under curate.commands, in the order `curate --help` lists them.
COMMANDS = [
    "demo",
    "ingest",
    "filter",
    "quality_train",
]
