"""The one SparkSession builder of the project: local[*] by default, any cluster by master URL, spark-submit aware."""

from __future__ import annotations

import logging
import os
import re
import sys

from pyspark.sql import SparkSession

# Settings seen to work on small machines; a cluster's spark-defaults or the pipeline's [spark.conf] override them.
_LOCAL_DEFAULTS = {
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    # One machine gains nothing from re-planning at every shuffle (no skew across nodes, partitions set to the
    # cores), and AQE runs each shuffle stage as its own job, which costs time. Clusters keep AQE (_COMMON_DEFAULTS).
    "spark.sql.adaptive.enabled": "false",
}
_COMMON_DEFAULTS = {
    "spark.ui.enabled": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
    # Parquet outputs are compared byte for byte: keep the writer settings fixed.
    "spark.sql.parquet.compression.codec": "zstd",
    "spark.sql.sources.partitionOverwriteMode": "static",
    "spark.python.worker.reuse": "true",
    # No .crc side files on local disk: they carry random names and break byte-identical output directories.
    "spark.hadoop.fs.file.impl": "org.apache.hadoop.fs.RawLocalFileSystem",
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
}


def local_driver_memory() -> str:
    """The JVM heap for local mode, where the one JVM is driver and executor: a quarter of the machine's memory,
    between 2 and 16 GiB. A fixed 2 GiB ran out of heap in dedup on a 1 GB corpus (its cached features and two
    tasks' Parquet and Arrow batches of long documents); a quarter leaves the rest to the Python workers."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return "2g"
    return f"{min(16, max(2, total // 4 // 2**30))}g"


def under_spark_submit() -> bool:
    """True when this Python driver was launched by spark-submit (the JVM already exists)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def default_shuffle_partitions() -> int:
    return max(4, 2 * (os.cpu_count() or 2))


class _Py4JRootNoise(logging.Filter):
    """Drops what py4j logs through the root logger: on Ctrl-C during a job, PySpark's handler cancels the jobs
    through a gateway connection the interrupted call still holds, and py4j logs each failed send with a traceback
    (~100 lines before "curate: interrupted"). A real failure still reaches the CLI as an exception."""

    def filter(self, record: logging.LogRecord) -> bool:
        return f"{os.sep}py4j{os.sep}" not in record.pathname


def get_spark(
    master: str | None = None,
    conf: dict[str, str] | None = None,
    progress: bool = False,
    app_name: str = "curate",
) -> SparkSession:
    """Return the active session if there is one, else build one: `local[*]` unless a master URL is given."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return _own_reads(active)
    builder = SparkSession.builder.appName(app_name)
    settings = dict(_COMMON_DEFAULTS)
    if not under_spark_submit():
        master = master or "local[*]"
        builder = builder.master(master)
        if master.startswith("local"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            settings.update(_LOCAL_DEFAULTS)
            settings["spark.driver.memory"] = local_driver_memory()
        settings["spark.sql.shuffle.partitions"] = str(default_shuffle_partitions())
        settings["spark.default.parallelism"] = str(default_shuffle_partitions())
        log4j = os.path.join(os.path.dirname(__file__), "log4j2.properties")
        java_options = [f"-Dlog4j2.configurationFile=file:{log4j}",
                        *class_cache_options((conf or {}).get("spark.driver.memory", settings.get("spark.driver.memory")))]
        if master.startswith("local"):
            java_options += jit_options()
        settings["spark.driver.extraJavaOptions"] = " ".join(java_options)
        # Workers run the driver's interpreter unless the cluster says otherwise.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        settings["spark.pyspark.python"] = os.environ["PYSPARK_PYTHON"]
    settings["spark.ui.showConsoleProgress"] = "true" if progress else "false"
    settings.update(conf or {})
    for key, value in settings.items():
        builder = builder.config(key, value)
    logging.getLogger("py4j").setLevel(logging.ERROR)
    if not any(isinstance(f, _Py4JRootNoise) for f in logging.getLogger().filters):
        logging.getLogger().addFilter(_Py4JRootNoise())
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    if not under_spark_submit() and not master.startswith("local"):
        spark.sparkContext.addPyFile(package_zip())
    return _own_reads(spark)


def _own_reads(spark: SparkSession) -> SparkSession:
    """Settings every read of a stage output depends on, set on any session curate uses (a spark-submit one too).
    Partition values stay strings: with type inference, domains `007` and `7` both read back as the integer 7 and
    merge, `1e5` becomes a decimal, and `__HIVE_DEFAULT_PARTITION__` a null."""
    spark.conf.set("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
    return spark


def jit_options() -> list[str]:
    """JIT settings for the local JVM (driver and executor in one): the client compiler only (C1). Spark's JVM
    spends about half its CPU time compiling with C2 in a run of minutes, on threads that take cores from the Python
    workers doing the stage's real work; C1's code is ready sooner and, for what the JVM does here (shuffles,
    Parquet, Arrow batches), was not slower at any measured size (benchmarks/RESULTS.md). `CURATE_JVM_JIT=full`
    restores the JVM's default tiered C1 + C2."""
    mode = os.environ.get("CURATE_JVM_JIT", "c1").strip().lower()
    if mode == "full":
        return []
    if mode != "c1":
        from curate.errors import CurateError

        raise CurateError(f"CURATE_JVM_JIT={mode!r}: expected 'c1' (the default) or 'full'")
    return ["-XX:TieredStopAtLevel=1"]


_PYFILES_PREFIX = "curate-pyfiles-"


def _java_binary() -> str | None:
    """The java that spark-submit will run (JAVA_HOME's, else the PATH's), resolved."""
    import shutil

    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    return os.path.realpath(java) if java and os.path.isfile(java) else None


def class_cache_path(driver_memory: str | None) -> str | None:
    """Where this machine's archive of the driver JVM's loaded classes lives (None: switched off with
    CURATE_JVM_CLASS_CACHE=0, or no java or cache folder). Keyed by the java binary, Spark's version and the heap size,
    so another JVM or Spark never reads an archive it did not write (the JVM would ignore it, but slower)."""
    import hashlib

    import pyspark

    if os.environ.get("CURATE_JVM_CLASS_CACHE", "1") == "0":
        return None
    java = _java_binary()
    if java is None:
        return None
    st = os.stat(java)
    key = f"{java}|{st.st_mtime_ns}|{st.st_size}|{pyspark.__version__}|{driver_memory}"
    root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "curate", "jvm")
    path = os.path.join(root, f"spark-{hashlib.sha256(key.encode()).hexdigest()[:16]}.jsa")
    return None if any(c.isspace() for c in path) else path


def class_cache_options(driver_memory: str | None) -> list[str]:
    """JVM options for class data sharing: starting Spark's driver reads ~10,000 classes from jars, and an archive of
    them (the JVM's own CDS) halves the session start (figures in benchmarks/RESULTS.md). The first run of a key
    records the archive as its JVM exits (once, some seconds; `_finish_class_cache`), later runs map it. A stale or
    unreadable archive is ignored by the JVM (-Xshare:auto), quietly (-Xlog off for CDS)."""
    global _PENDING_ARCHIVE
    from pyspark import SparkContext

    path = class_cache_path(driver_memory)
    if path is None or SparkContext._gateway is not None or _PENDING_ARCHIVE is not None:
        return []  # off, or this process's JVM is already running
    quiet = ["-Xshare:auto", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]
    if os.path.isfile(path):
        return [f"-XX:SharedArchiveFile={path}", *quiet]
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    except OSError:
        return []
    tmp = f"{path}.{os.getpid()}.tmp"
    _PENDING_ARCHIVE = (tmp, path)
    import atexit

    atexit.register(_finish_class_cache)
    return [f"-XX:ArchiveClassesAtExit={tmp}", *quiet]


_PENDING_ARCHIVE: tuple[str, str] | None = None


def _finish_class_cache() -> None:
    """At exit of the process that records the archive: stop Spark, let its JVM exit (it writes the archive then)
    and move the archive into place only when the JVM ended cleanly, so no run ever maps a half-written one."""
    from pyspark import SparkContext

    tmp, path = _PENDING_ARCHIVE or ("", "")
    try:
        gateway = SparkContext._gateway
        proc = getattr(gateway, "proc", None)
        if SparkContext._active_spark_context is not None:
            SparkContext._active_spark_context.stop()
        if proc is not None:
            gateway.shutdown()
            proc.stdin.close()
            if proc.wait(timeout=300) == 0 and os.path.getsize(tmp) > 0:
                os.replace(tmp, path)
    except Exception:  # noqa: BLE001 - a cache that could not be written is only a slower next start
        pass
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def package_zip() -> str:
    """curate, mixers and proxy_training as one zip for a cluster's executors (their other dependencies must be
    installed on the nodes, as for any PySpark job). The driver serves the file to executors for the whole
    application (a replacement executor fetches it too), so it is removed when this process exits, and folders
    that killed drivers left are removed here."""
    import atexit
    import shutil
    import tempfile
    import zipfile
    from pathlib import Path

    _remove_dead_drivers_pyfiles(Path(tempfile.gettempdir()))
    folder = Path(tempfile.mkdtemp(prefix=f"{_PYFILES_PREFIX}{os.getpid()}-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    root = Path(__file__).resolve().parent.parent
    target = folder / "curate_packages.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for pkg in ("curate", "mixers", "proxy_training"):
            for path in sorted((root / pkg).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    zf.write(path, str(path.relative_to(root)))
    return str(target)


def _remove_dead_drivers_pyfiles(tmp: "os.PathLike[str]") -> None:
    import shutil

    for folder in os.scandir(tmp):
        m = re.fullmatch(rf"{_PYFILES_PREFIX}(\d+)-.*", folder.name)
        if not m or not folder.is_dir(follow_symlinks=False):
            continue
        try:
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:
            shutil.rmtree(folder.path, ignore_errors=True)
        except (PermissionError, OverflowError):
            pass


_JAVA_EXC = re.compile(r"(?:[a-z0-9_]+\.)+([A-Z][A-Za-z]*(?:Exception|Error)):\s*(.*)")


def describe_spark_error(exc: BaseException) -> str:
    """One line for an exception that crossed Py4J or a Python worker: the innermost readable message."""
    text = str(exc)
    # A Python worker's error: the last 'SomethingError: message' line of its traceback is the cause.
    py_lines = [ln.strip() for ln in text.splitlines() if re.match(r"^\s*[A-Za-z_.]*(Error|Exception): ", ln)]
    if py_lines:
        return py_lines[-1][:500]
    match = _JAVA_EXC.search(text)
    if match:
        return f"{match.group(1)}: {match.group(2)}"[:500]
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"{type(exc).__name__}: {first}"[:500]
