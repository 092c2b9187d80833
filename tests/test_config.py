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
