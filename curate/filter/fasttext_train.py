"""Train a fastText supervised model in a child process whose heap hands out zeroed memory.

Why a child process: the `fasttext-numpy2-wheel` build (the fastText that datatrove depends on, and the one that works
with numpy 2) reads memory it never initialized. fastText 0.9.2 fills only `thread`/10 of the input matrix with random
values and relies on the rest being zero; in that build the rest comes from the heap as it is, so training a small
model gave a different model on most runs and aborted with "Encountered NaN" on a third to a half of them, at any
learning rate (measured: 20 runs, thread=1, same seed). glibc's MALLOC_PERTURB_=255 makes malloc return zeroed
memory, which is the upstream behaviour: the same runs then gave one model, byte-identical to the one the original
`fasttext-wheel` build trains. glibc reads the variable at process start, hence the child. Elsewhere than glibc the
variable does nothing and training behaves as the wheel does.

Run as `python fasttext_train.py PARAMS_JSON`; PARAMS_JSON holds `input`, `output` and the keyword
arguments of `fasttext.train_supervised`. Exit status 3 with "NaN" on stderr means training diverged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

DIVERGED = 3


class Diverged(RuntimeError):
    """fastText's loss went to NaN (a learning rate too high for the data)."""


def train_supervised(input_file: str, output: str, **params) -> None:
    """Train in a child process and save the model to `output`; raise Diverged on NaN, RuntimeError otherwise."""
    env = dict(os.environ, MALLOC_PERTURB_="255")
    spec = json.dumps({"input": input_file, "output": output, "params": params})
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), spec], env=env, capture_output=True, text=True)
    if proc.returncode == DIVERGED:
        raise Diverged(proc.stderr.strip())
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise RuntimeError(lines[-1] if lines else f"exit status {proc.returncode}")


def _main(spec: str) -> int:
    import fasttext

    args = json.loads(spec)
    try:
        model = fasttext.train_supervised(input=args["input"], **args["params"])
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return DIVERGED if "NaN" in str(exc) else 1
    model.save_model(args["output"])
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1]))
