"""The console every stage prints to (stderr, so stdout stays clean for scripts)."""

from rich.console import Console

console = Console(stderr=True, highlight=False)
