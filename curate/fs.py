"""File-system operations through Hadoop's FileSystem API, so a stage works the same on local disk, HDFS and S3."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from pyspark.sql import SparkSession

from curate.errors import CurateError

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
