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
