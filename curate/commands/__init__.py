"""The `curate` subcommands: one module each, each with `register(subparsers)` that sets `func=run`."""

# Module names under curate.commands, in the order `curate --help` lists them.
COMMANDS = [
    "demo",
    "run",
    "ingest",
    "dedup",
    "filter",
    "decontaminate",
    "quality_train",
    "tokenizer_train",
    "tokenize",
    "mix",
    "mix_eval",
    "ladder",
    "shards",
    "report",
]
