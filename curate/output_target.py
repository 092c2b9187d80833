"""Where a stage may write, and how it replaces what is there: never a user's files, never two runs at once, never
a moment without the previous result.

A stage's `--out` may be missing, an empty directory, or an earlier curate output of the same stage (`--overwrite`
also allows another stage's). Anything else is a one-line error before any work starts, as is an output inside one
of the stage's inputs or an input inside the output. While the stage runs, a lock file beside the target holds the
pid and host of the run; the stage writes into a temporary directory unique to the run, and `commit()` renames the
previous output aside, renames the new one in, then deletes the old: a crash between the renames leaves the previous
result on disk, and the next run puts it back before deciding anything.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import socket
import uuid
from typing import Callable, Iterable, Protocol

from curate.console import console
from curate.errors import CurateError
from curate.fs import is_local, local_path, qualify

# Top-level names a curate output holds (every stage's together); a directory with any other entry holds a user's
# files and is never replaced.
OUTPUT_NAMES = frozenset({
    "kept", "removed", "quarantine", "stats.json", "_SUCCESS", "_FINGERPRINT",  # Spark stages, the runner's mark
    "datasets.json", "tokenizer.json", "train", "valid", "test",  # tokenize
    ".regmix-cache", ".ladder-cache",  # the proxy-run caches RegMix, the mixing law and the ladder keep in DATA
    "weights.json", "weights.proxy_runs.csv",  # mix (RegMix and the mixing law write the proxy table)
    "ladder.json", "ladder.md", "ladder.png",  # ladder
    "manifest.json", "manifest.json.sha256", "data_path.txt",  # shards
})
_OUTPUT_PATTERN = re.compile(r"shard-\d+\.(bin|idx)")
_GLOB = re.compile(r"[*?\[{]")


class TargetFS(Protocol):
    """The file operations a target needs: `curate.fs.HadoopFS` (any Hadoop path) or `curate.fs.LocalFS`."""

    def exists(self, path: str) -> bool: ...
    def is_dir(self, path: str) -> bool: ...
    def list_names(self, path: str) -> list[str]: ...
    def read_text(self, path: str) -> str: ...
    def write_text(self, path: str, text: str) -> None: ...
    def create_new(self, path: str, text: str) -> bool: ...
    def rename(self, src: str, dst: str) -> None: ...
    def delete(self, path: str) -> None: ...
    def mkdirs(self, path: str) -> None: ...


def resolved(path: str) -> str:
    """A path as Hadoop sees it, with local symlinks resolved: two spellings of one directory compare equal."""
    if is_local(path):
        return "file:" + os.path.realpath(local_path(path))
    return qualify(path).rstrip("/")


def _input_root(path: str) -> str:
    """The directory or file an input names; for a glob, the directory above its first wildcard."""
    match = _GLOB.search(path)
    if match:
        path = path[: match.start()].rsplit("/", 1)[0] or "."
    return resolved(path)


def _inside(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip("/") + "/")


def check_no_overlap(out: str, inputs: Iterable[str]) -> None:
    """An output inside an input (or equal to it), or an input inside the output, is an error: replacing the output
    would delete the input, or the next read of the input would read the output."""
    target = resolved(out)
    for given in inputs:
        if not given:
            continue
        root = _input_root(given)
        if _inside(target, root):
            raise CurateError(f"--out {out} is inside the input {given}: write the output somewhere else")
        if _inside(root, target):
            raise CurateError(f"the input {given} is inside --out {out}: replacing the output would delete it")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_HELD: set[tuple[TargetFS, str]] = set()


@atexit.register
def _release_held() -> None:
    for fs, lock in list(_HELD):
        try:
            fs.delete(lock)
        except Exception:  # noqa: BLE001 - the interpreter is exiting; a stale lock is detected by pid next time
            pass


class OutputTarget:
    """One run's claim on an output directory: `open()` checks and locks it and returns a fresh temporary directory,
    `commit()` swaps the temporary directory in, `release()` gives up (the temporary directory is removed)."""

    def __init__(self, fs: TargetFS, out: str, stage: str, inputs: Iterable[str] = (), overwrite: bool = False):
        if not str(out).strip():
            raise CurateError("--out is empty: name the output directory")
        self.fs, self.stage, self.overwrite = fs, stage, overwrite
        self.given = str(out)
        self.inputs = [str(p) for p in inputs if p]
        self.final = resolved(self.given) if is_local(self.given) else qualify(self.given).rstrip("/")
        self.parent, _, self.name = self.final.rpartition("/")
        if not self.name or self.name in (".", ".."):
            raise CurateError(f"--out {out}: not a directory curate can write (the file system's root)")
        self.run_id = uuid.uuid4().hex[:12]
        self.tmp = f"{self.parent}/.{self.name}.{stage}.{self.run_id}.tmp"
        self.lock = f"{self.parent}/.{self.name}.lock"
        self.held = False

    # -- before the work ------------------------------------------------------------------------------------------

    def open(self) -> str:
        """Check the target, take its lock, clear leftovers of killed runs, create and return the temporary
        directory."""
        check_no_overlap(self.given, self.inputs)
        self.fs.mkdirs(self.parent)
        self._lock()
        try:
            self._restore_aside()
            self._check_replaceable()
            self._clear_leftovers()
            self.fs.mkdirs(self.tmp)
        except BaseException:
            self.release()
            raise
        return self.tmp

    def _lock(self) -> None:
        me = f"{os.getpid()} {socket.gethostname()}\n"
        for _ in range(2):
            if self.fs.create_new(self.lock, me):
                self.held = True
                _HELD.add((self.fs, self.lock))
                return
            try:
                pid_s, host = self.fs.read_text(self.lock).split()
                pid = int(pid_s)
            except (ValueError, OSError):
                pid, host = -1, ""
            same_host = host == socket.gethostname()
            # A lock of this process (a stage that failed earlier in it) or of a dead process on this host is stale.
            if pid >= 0 and not (same_host and (pid == os.getpid() or not _pid_alive(pid))):
                where = f"pid {pid}" if same_host else f"pid {pid} on {host}"
                raise CurateError(f"{self.given} is in use by {where} (another curate run writes it); if no run "
                                  f"is active, delete {local_path(self.lock) if is_local(self.lock) else self.lock}")
            self.fs.delete(self.lock)
        raise CurateError(f"{self.given}: could not take the lock {self.lock}")

    def _siblings(self, kind: str) -> list[str]:
        pattern = re.compile(rf"\.{re.escape(self.name)}\.{kind}")
        return sorted(n for n in self.fs.list_names(self.parent) if pattern.fullmatch(n))

    def _restore_aside(self) -> None:
        asides = self._siblings(r"[0-9a-f]{12}\.old")
        if asides and not self.fs.exists(self.final):
            # A run died between renaming the previous output aside and renaming its own in: put it back.
            self.fs.rename(f"{self.parent}/{asides[-1]}", self.final)
            console.print(f"[yellow]{self.given}: restored the previous output (a run died while replacing it)[/]")

    def _check_replaceable(self) -> None:
        if not self.fs.exists(self.final):
            return
        if not self.fs.is_dir(self.final):
            raise CurateError(f"--out {self.given} is a file, not a directory: choose another --out")
        names = self.fs.list_names(self.final)
        if not names:
            return
        foreign = [n for n in names if n not in OUTPUT_NAMES and not _OUTPUT_PATTERN.fullmatch(n)]
        stage = self._stage_of()
        if foreign or stage is None:
            shown = ", ".join(sorted(foreign)[:3]) or "no stats.json of a finished stage"
            raise CurateError(f"--out {self.given} exists and is not a curate output ({shown}): curate replaces "
                              f"only its own outputs; choose another --out or empty it yourself")
        if stage != self.stage and not self.overwrite:
            raise CurateError(f"--out {self.given} holds a curate {stage} output: pass --overwrite to replace it "
                              f"with this {self.stage} output")

    def _stage_of(self) -> str | None:
        """The stage named by the directory's stats.json, else None (`_SUCCESS` is not required: an output whose
        marker was lost is still ours, and its names were checked)."""
        if not self.fs.exists(f"{self.final}/stats.json"):
            return None
        try:
            stage = json.loads(self.fs.read_text(f"{self.final}/stats.json")).get("stage")
        except (ValueError, AttributeError, UnicodeDecodeError):
            return None
        return stage if isinstance(stage, str) else None

    def _clear_leftovers(self) -> None:
        # We hold the lock, so every other temporary or aside directory of this target is a killed run's.
        for name in self._siblings(r"[a-z_]+\.[0-9a-f]{12}\.tmp") + self._siblings(r"[0-9a-f]{12}\.old"):
            self.fs.delete(f"{self.parent}/{name}")

    # -- after the work -------------------------------------------------------------------------------------------

    def commit(self) -> None:
        """Publish the temporary directory as the output: old aside, new in, old deleted; then unlock."""
        aside = f"{self.parent}/.{self.name}.{self.run_id}.old"
        had_old = self.fs.exists(self.final)
        if had_old:
            self.fs.rename(self.final, aside)
        self.fs.rename(self.tmp, self.final)
        if had_old:
            self.fs.delete(aside)
        self._unlock()

    def release(self) -> None:
        """Give up: remove the temporary directory and the lock (the previous output stays as it was)."""
        self.fs.delete(self.tmp)
        self._unlock()

    def _unlock(self) -> None:
        if self.held:
            self.fs.delete(self.lock)
            _HELD.discard((self.fs, self.lock))
            self.held = False


def check_file_target(path: str, is_ours: Callable[[str], bool], what: str) -> None:
    """A command that writes one file (weights.json, a tokenizer, a model) replaces only a file of the same kind."""
    p = local_path(path)
    if not str(path).strip():
        raise CurateError("--out is empty: name the file to write")
    if os.path.isdir(p):
        raise CurateError(f"--out {path} is a directory: name the {what} to write")
    if os.path.exists(p) and not is_ours(p):
        raise CurateError(f"--out {path} exists and is not a {what}: curate replaces only its own files; "
                          f"choose another --out or remove it yourself")


def json_with_keys(*keys: str) -> Callable[[str], bool]:
    """`is_ours` for a JSON file curate writes: an object holding all of `keys`."""

    def check(path: str) -> bool:
        try:
            with open(path, encoding="utf-8") as f:
                obj = json.load(f)
        except (OSError, ValueError):
            return False
        return isinstance(obj, dict) and all(k in obj for k in keys)

    return check


_FASTTEXT_MAGIC = (793712314).to_bytes(4, "little")  # fastText's FASTTEXT_FILEFORMAT_MAGIC_INT32


def is_fasttext_model(path: str) -> bool:
    """`is_ours` for a fastText model file (it starts with fastText's magic number)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == _FASTTEXT_MAGIC
    except OSError:
        return False


def check_dir_target(path: str, names: Iterable[str], what: str) -> None:
    """A command that writes a few named files into a directory (mix-eval) uses only a missing or empty one, or one
    holding nothing but those files."""
    p = local_path(path)
    if not str(path).strip():
        raise CurateError("--out is empty: name the output directory")
    if os.path.exists(p) and not os.path.isdir(p):
        raise CurateError(f"--out {path} is a file, not a directory: choose another --out")
    foreign = sorted(set(os.listdir(p)) - set(names)) if os.path.isdir(p) else []
    if foreign:
        raise CurateError(f"--out {path} holds files that are not {what} ({', '.join(foreign[:3])}): curate "
                          f"replaces only its own files; choose another --out")
