"""Pipeline files: typed, strict, and every mistake is one line naming the key and the file."""

from __future__ import annotations

import pytest

from curate.config import load_pipeline
from curate.errors import CurateError
from curate.pipeline import PIPELINES_DIR


def test_every_shipped_pipeline_validates():
    for path in sorted(PIPELINES_DIR.glob("*.toml")):
        assert load_pipeline(path).stages


def test_unknown_key_names_key_and_file(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text('[ingest]\ninputs = ["x"]\nmax_doc_chrs = 5\n')
    with pytest.raises(CurateError) as exc:
        load_pipeline(p)
    assert str(exc.value) == f"{p}: ingest.max_doc_chrs: unknown key"


def test_wrong_type_names_key(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text('[ingest]\nmax_doc_chars = "lots"\n')
    with pytest.raises(CurateError, match=r"ingest\.max_doc_chars: .*lots"):
        load_pipeline(p)


def test_toml_syntax_error_is_one_line(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text("[ingest\n")
    with pytest.raises(CurateError, match="TOML syntax error"):
        load_pipeline(p)


def test_set_overrides_are_type_checked(tmp_path):
    p = tmp_path / "p.toml"
    p.write_text("[ingest]\n")
    assert load_pipeline(p, ["ingest.max_doc_chars=10"]).ingest.max_doc_chars == 10
    with pytest.raises(CurateError, match="ingest.max_doc_chars"):
        load_pipeline(p, ["ingest.max_doc_chars=abc"])
    with pytest.raises(CurateError, match="unknown key"):
        load_pipeline(p, ["ingest.nope=1"])


def test_every_shipped_pipeline_names_a_real_mixer_with_real_parameters():
    from curate.mix_stage import build_mixer

    for path in sorted(PIPELINES_DIR.glob("*.toml")):
        cfg = load_pipeline(path)
        if "mix" in cfg.stages:
            assert build_mixer(cfg.mix.method, cfg.mix.params) is not None


def _rules_pipeline(tmp_path, pattern: str):
    p = tmp_path / "p.toml"
    p.write_text(f"[ingest]\ndomain_rules = [{{ pattern = '{pattern}', domain = 'code' }}]\n")
    return p


def test_malformed_domain_rule_pattern_is_a_config_error(tmp_path):
    # fnmatch reads an unclosed `[` as a literal and has no `{a,b}`: such rules would silently match nothing.
    for pattern, why in [("code/[ab.jsonl", "unclosed '\\['"), ("code/[!]x", "unclosed '\\['"),
                         ("{code,src}/*", "alternation"), ("", "empty pattern")]:
        with pytest.raises(CurateError, match=rf"ingest\.domain_rules\.0\.pattern: .*{why}"):
            load_pipeline(_rules_pipeline(tmp_path, pattern))


def test_well_formed_domain_rule_patterns_match_as_fnmatch_does(tmp_path):
    import fnmatch

    cases = {"code/*": "code/a/b.jsonl", "[[]x]*": "[x]1.jsonl", "[]]*": "]a.jsonl", "[!a]*": "b.jsonl",
             "set{a}.jsonl": "set{a}.jsonl", "[{]a,b}.jsonl": "{a,b}.jsonl"}
    for pattern, rel in cases.items():
        rule = load_pipeline(_rules_pipeline(tmp_path, pattern)).ingest.domain_rules[0]
        assert rule.matches(rel) and fnmatch.fnmatch(rel, pattern)


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_a_flag_left_unset_keeps_the_models_default_and_its_help_shows_that_default():
    from curate.cli import build_parser
    from curate.commands.flags import config_from_args, with_run_seed
    from curate.config_model import DEFAULT_SEED
    from curate.tokenize.config import LeakageConfig, TokenizeConfig

    parser = build_parser()
    base = ["tokenize", "in", "--tokenizer", "t.json", "--out", "o"]
    cfg = with_run_seed(config_from_args(parser.parse_args(base), TokenizeConfig))
    assert cfg == TokenizeConfig(tokenizer="t.json", seed=DEFAULT_SEED)
    cfg = config_from_args(parser.parse_args([*base, "--leakage-threshold", "0.3", "--no-leakage-check",
                                              "--seed", "7"]), TokenizeConfig)
    assert cfg.seed == 7 and cfg.leakage == LeakageConfig(threshold=0.3, check=False)
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    text = _flat(sub.choices["tokenize"].format_help())
    assert f"split and order seed (default: the run's, {DEFAULT_SEED})" in text
    assert "documents per domain held out for test (default: 0.01)" in text
    assert "tokens per part file at most (default: 500_000_000)" in text


def test_demo_and_run_lay_master_and_conf_over_the_pipelines_spark_table(monkeypatch, tmp_path):
    import curate.demo
    import curate.pipeline
    import curate.report
    import curate.spark
    from curate.cli import main

    seen = []
    monkeypatch.setattr(curate.spark, "get_spark", lambda master, conf, progress: seen.append((master, conf)))
    monkeypatch.setattr(curate.demo, "build_demo_corpus", lambda out: {"docs_by_domain": {"web": 1}})
    monkeypatch.setattr(curate.pipeline, "run_pipeline", lambda *a, **k: {})
    monkeypatch.setattr(curate.report, "build_report", lambda run_dir: "report.html")
    assert main(["demo", "--out", str(tmp_path / "demo"), "--master", "local[2]", "--conf", "a=1"]) == 0
    p = tmp_path / "p.toml"
    p.write_text('[spark.conf]\n"spark.sql.shuffle.partitions" = "4"\nb = "2"\n')
    flags = ["--master", "local[2]", "--conf", "spark.sql.shuffle.partitions=8", "--conf", "a=1"]
    assert main(["run", str(p), "--out", str(tmp_path / "run"), *flags]) == 0
    # pipelines/demo.toml sets 4 shuffle partitions: a --conf adds to that table, as in `curate run`.
    assert seen[0] == ("local[2]", {"spark.sql.shuffle.partitions": "4", "a": "1"})
    assert seen[1] == ("local[2]", {"spark.sql.shuffle.partitions": "8", "b": "2", "a": "1"})


def test_local_driver_memory_is_a_quarter_of_the_machine_between_2_and_16_gib(monkeypatch):
    import curate.spark

    page = 4096
    for gib, want in ((4, "2g"), (24, "6g"), (64, "16g"), (512, "16g")):
        monkeypatch.setattr(curate.spark.os, "sysconf",
                            lambda name, gib=gib: page if name == "SC_PAGE_SIZE" else gib * 2**30 // page)
        assert curate.spark.local_driver_memory() == want


def test_jvm_class_cache_records_once_then_maps_and_the_jvm_ignores_a_bad_archive(monkeypatch, tmp_path):
    import atexit
    import os
    import subprocess

    from pyspark import SparkContext

    import curate.spark as cs

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(SparkContext, "_gateway", None)  # as before this process's JVM starts
    monkeypatch.setattr(cs, "_PENDING_ARCHIVE", None)
    monkeypatch.setattr(atexit, "register", lambda *a: None)
    path = cs.class_cache_path("2g")
    assert path.startswith(str(tmp_path)) and path != cs.class_cache_path("6g")
    record = cs.class_cache_options("2g")
    tmp = f"{path}.{os.getpid()}.tmp"
    assert record[0] == f"-XX:ArchiveClassesAtExit={tmp}"
    assert cs.class_cache_options("2g") == []  # one recording per process

    # The real JVM writes an archive at exit with these options, and maps it on the next start.
    java = cs._java_binary()
    subprocess.run([java, *record, "-version"], check=True, capture_output=True)
    assert os.path.getsize(tmp) > 0
    os.replace(tmp, path)
    monkeypatch.setattr(cs, "_PENDING_ARCHIVE", None)
    mapped = cs.class_cache_options("2g")
    assert mapped[0] == f"-XX:SharedArchiveFile={path}"
    done = subprocess.run([java, *mapped, "-Xshare:on", "-version"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr  # -Xshare:on fails when the archive cannot be mapped
    # A damaged archive costs only the speed: the JVM starts without it and says nothing.
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(64)
        f.write(b"\xff" * 64)
    done = subprocess.run([java, *mapped, "-version"], capture_output=True, text=True)
    assert done.returncode == 0 and "cds" not in (done.stdout + done.stderr).lower()
    assert subprocess.run([java, *mapped, "-Xshare:on", "-version"], capture_output=True).returncode != 0

    monkeypatch.setenv("CURATE_JVM_CLASS_CACHE", "0")
    assert cs.class_cache_options("2g") == []


def test_the_local_jvm_runs_the_client_compiler_only_unless_told_full(monkeypatch, spark):
    import curate.spark as cs
    from curate.errors import CurateError

    args = list(spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    assert "-XX:TieredStopAtLevel=1" in args  # the session the tests share was built by get_spark in local mode
    monkeypatch.setenv("CURATE_JVM_JIT", "full")
    assert cs.jit_options() == []
    monkeypatch.setenv("CURATE_JVM_JIT", "c2")
    with pytest.raises(CurateError, match="CURATE_JVM_JIT='c2'"):
        cs.jit_options()


def test_py4j_records_on_the_root_logger_are_dropped_and_others_kept():
    import logging
    import os

    from curate.spark import _Py4JRootNoise

    def record(path: str) -> logging.LogRecord:
        return logging.LogRecord("root", logging.ERROR, path, 1, "Exception while sending command.", None, None)

    noise = _Py4JRootNoise()
    assert not noise.filter(record(os.path.join("site-packages", "py4j", "java_gateway.py")))
    assert noise.filter(record(os.path.join("curate", "sources.py")))


def test_a_stage_summary_names_the_documents_it_kept_edited():
    from curate.commands.summaries import documents

    line = documents({"stage": "decontaminate", "input_docs": 304, "kept_docs": 300, "edited_docs": 12,
                      "removed_docs": 4, "removed_by_reason": {"contaminated": 4}, "wall_seconds": 1.0}, "out")
    assert line.startswith("decontaminate: 304 in | 300 kept (12 edited) | 4 removed (contaminated 4)")
    assert "edited" not in documents({"stage": "dedup", "input_docs": 1, "kept_docs": 1, "wall_seconds": 1.0}, "o")
