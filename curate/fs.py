"""File-system operations through Hadoop's FileSystem API, so a stage works the same on local disk, HDFS and S3."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from curate.errors import CurateError

if TYPE_CHECKING:  # pyspark takes ~0.3 s to import: the commands that never start Spark (shards, mix) skip it
    from pyspark.sql import SparkSession

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def qualify(path: str) -> str:
    """A path as Hadoop sees it: local paths become absolute `file:` URIs, URIs stay as they are."""
    if _SCHEME.match(path):
        return path
    return "file:" + os.path.abspath(os.path.expanduser(path))


def is_local(path: str) -> bool:
    return qualify(path).startswith("file:")


def local_path(path: str) -> str:
    """The OS path of a local `file:` URI (or plain path)."""
    q = qualify(path)
    return re.sub(r"^file:(//)?", "", q) if q.startswith("file:") else q


@dataclass(frozen=True)
class FileInfo:
    path: str  # fully qualified
    size: int
    is_dir: bool
    mtime: int = 0  # milliseconds since the epoch


class HadoopFS:
    """Thin wrapper over org.apache.hadoop.fs.FileSystem for the few operations stages need."""

    def __init__(self, spark: SparkSession):
        self._jvm = spark._jvm
        self._conf = spark._jsc.hadoopConfiguration()

    def _p(self, path: str):
        return self._jvm.org.apache.hadoop.fs.Path(qualify(path))

    def _fs(self, path: str):
        return self._p(path).getFileSystem(self._conf)

    def exists(self, path: str) -> bool:
        return bool(self._fs(path).exists(self._p(path)))

    def is_dir(self, path: str) -> bool:
        fs = self._fs(path)
        p = self._p(path)
        return bool(fs.exists(p) and fs.getFileStatus(p).isDirectory())

    def delete(self, path: str) -> None:
        fs = self._fs(path)
        p = self._p(path)
        if fs.exists(p):
            fs.delete(p, True)

    def mkdirs(self, path: str) -> None:
        self._fs(path).mkdirs(self._p(path))

    def rename(self, src: str, dst: str) -> None:
        if not self._fs(src).rename(self._p(src), self._p(dst)):
            raise CurateError(f"could not rename {src} to {dst}")

    def list_names(self, path: str) -> list[str]:
        """The names of a directory's entries (not recursive), sorted."""
        if is_local(path):  # one system call, not three JVM round trips per entry (a parent can hold thousands)
            return sorted(os.listdir(local_path(path)))
        return sorted(str(s.getPath().getName()) for s in self._fs(path).listStatus(self._p(path)))

    def create_new(self, path: str, text: str) -> bool:
        """Create a file holding `text` unless one exists; False when it does (the test and the creation are one
        step on local disk and HDFS; object stores have no such step, so there it is best effort)."""
        if is_local(path):
            return LocalFS().create_new(path, text)
        try:
            out = self._fs(path).create(self._p(path), False)
        except Exception as exc:  # noqa: BLE001 - Py4J wraps FileAlreadyExistsException
            if "FileAlreadyExists" in str(exc) or self.exists(path):
                return False
            raise
        try:
            out.write(bytearray(text.encode("utf-8")))
        finally:
            out.close()
        return True

    def glob(self, pattern: str) -> list[FileInfo]:
        statuses = self._fs(pattern).globStatus(self._p(pattern))
        if statuses is None:
            return []
        return [self._info(s) for s in statuses]

    def list_files(self, path: str) -> list[FileInfo]:
        """All files under a directory, recursively, sorted by path."""
        it = self._fs(path).listFiles(self._p(path), True)
        out = []
        while it.hasNext():
            out.append(self._info(it.next()))
        return sorted(out, key=lambda f: f.path)

    def info(self, path: str) -> FileInfo:
        return self._info(self._fs(path).getFileStatus(self._p(path)))

    @staticmethod
    def _info(status) -> FileInfo:
        return FileInfo(path=str(status.getPath().toString()), size=int(status.getLen()),
                        is_dir=bool(status.isDirectory()), mtime=int(status.getModificationTime()))

    def write_text(self, path: str, text: str) -> None:
        out = self._fs(path).create(self._p(path), True)
        try:
            data = text.encode("utf-8")
            out.write(bytearray(data))
        finally:
            out.close()

    def read_text(self, path: str) -> str:
        stream = self._fs(path).open(self._p(path))
        try:
            data = bytes(self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
        finally:
            stream.close()
        return data.decode("utf-8")


class LocalFS:
    """HadoopFS's operations for the steps that run without Spark (mix, shards), on local paths."""

    def exists(self, path: str) -> bool:
        return os.path.lexists(local_path(path))

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(local_path(path))

    def list_names(self, path: str) -> list[str]:
        return sorted(os.listdir(local_path(path)))

    def read_text(self, path: str) -> str:
        with open(local_path(path), encoding="utf-8") as f:
            return f.read()

    def write_text(self, path: str, text: str) -> None:
        with open(local_path(path), "w", encoding="utf-8") as f:
            f.write(text)

    def create_new(self, path: str, text: str) -> bool:
        """Create a file holding `text` unless one exists, in one step: the text goes to a unique file first and is
        hard-linked to `path` (link fails when `path` exists), so no reader ever sees the file empty."""
        import uuid

        target = local_path(path)
        tmp = f"{target}.{uuid.uuid4().hex}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            os.link(tmp, target)
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def rename(self, src: str, dst: str) -> None:
        os.rename(local_path(src), local_path(dst))

    def delete(self, path: str) -> None:
        import shutil

        p = local_path(path)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        elif os.path.lexists(p):
            os.unlink(p)

    def mkdirs(self, path: str) -> None:
        os.makedirs(local_path(path), exist_ok=True)
