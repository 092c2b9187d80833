"""The tokenize stage's encoder: tiktoken only where it gives the ids `tokenizers` gives, checked while it runs."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from tokenize_data import WORDS, train_small_bpe

from curate.errors import CurateError
from curate.tokenize.engine import Encoder, EngineSpec, plan_engine
from curate.tokenize.tokenizer import describe_tokenizer

TRICKY = [
    "", " ", "x", "  leading and trailing  ", "\n\n\tmixed \r\n whitespace \t\n", "don't I'll we've they're it's",
    "numbers 1234567 3.14159 -42 1e9", "東京 日本語のテキスト、句読点。", "emoji 🙂👍🏽 👨‍👩‍👧 flags 🇫🇷", "e\u0301 combining",
    "a <|endoftext|> in the middle<|endoftext|>", "def f(x):\n    return x ** 2  # comment\n", "ÀÉÎÕÜ ß ﬁ ＦＵＬＬ",
]


def _texts(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 80))) for _ in range(n)]


@pytest.fixture(scope="module", params=[300, 2000])
def bpe(request, tmp_path_factory) -> Path:
    texts = _texts(0, 400) + TRICKY * 3
    return train_small_bpe(tmp_path_factory.mktemp("engine") / "tok.json", texts, vocab_size=request.param)


def _encoders(path: Path) -> tuple[Encoder, Encoder, EngineSpec]:
    info = describe_tokenizer(path)
    spec = plan_engine(str(path), "auto")
    text = path.read_text(encoding="utf-8")
    slow = Encoder(EngineSpec("tokenizers", "test"), text, info.eos_id, not info.adds_eos)
    return Encoder(spec, text, info.eos_id, not info.adds_eos), slow, spec


def test_tiktoken_gives_the_ids_tokenizers_gives(bpe):
    fast, slow, spec = _encoders(bpe)
    assert spec.name == "tiktoken", spec.reason
    # Long pieces with no split in them (a run of one letter, base64-like text, whitespace): same ids, no blow-up.
    rng = random.Random(3)
    long = ["a" * 30_000, "".join(rng.choice("abcdefghijkXYZ0123456789+/") for _ in range(30_000)), " \n" * 10_000]
    texts = TRICKY + _texts(1, 300) + long
    f_ids, f_len = fast.encode(texts, np.ones(len(texts), dtype=bool))  # every document checked too
    s_ids, s_len = slow.encode(texts)
    assert np.array_equal(f_len, s_len) and np.array_equal(f_ids, s_ids)
    assert f_len.min() >= 1  # EOS appended to the empty document as well


def test_tokenizers_is_used_where_tiktoken_cannot_reproduce(bpe, tmp_path):
    from tokenizers import Tokenizer, normalizers

    tok = Tokenizer.from_file(str(bpe))
    tok.normalizer = normalizers.NFKC()
    path = tmp_path / "nfkc.json"
    tok.save(str(path))
    spec = plan_engine(str(path), "auto")
    assert spec.name == "tokenizers" and "normalizer" in spec.reason
    with pytest.raises(CurateError, match="cannot reproduce"):
        plan_engine(str(path), "tiktoken")
    assert plan_engine(str(bpe), "tokenizers").name == "tokenizers"

    # A vocabulary whose merges do not make their tokens in id order would merge differently.
    import json

    j = json.loads(Path(bpe).read_text())
    j["model"]["merges"] = list(reversed(j["model"]["merges"]))
    (tmp_path / "reversed.json").write_text(json.dumps(j))
    assert "id order" in plan_engine(str(tmp_path / "reversed.json"), "auto").reason
    # A token no merge makes (its merge dropped) is one tiktoken would still take whole.
    j = json.loads(Path(bpe).read_text())
    j["model"]["merges"] = j["model"]["merges"][:-1]
    (tmp_path / "unreachable.json").write_text(json.dumps(j))
    assert "not reachable" in plan_engine(str(tmp_path / "unreachable.json"), "auto").reason


def test_a_bos_from_the_post_processor_is_reproduced(bpe, tmp_path):
    from tokenizers import Tokenizer, processors

    tok = Tokenizer.from_file(str(bpe))
    tok.add_special_tokens(["<s>"])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    path = tmp_path / "bos.json"
    tok.save(str(path))
    fast, slow, spec = _encoders(path)
    assert spec.name == "tiktoken" and spec.prefix == (tok.token_to_id("<s>"),)
    texts = TRICKY + ["text with <s> inside"] + _texts(2, 50)
    assert all(np.array_equal(a, b) for a, b in zip(fast.encode(texts), slow.encode(texts)))


def test_a_difference_on_a_checked_document_stops_the_stage(bpe):
    info = describe_tokenizer(bpe)
    spec = plan_engine(str(bpe), "auto")
    # Splitting into single characters (not GPT-2's regex) leaves no merge to apply: the check must see it.
    wrong = EngineSpec("tiktoken", "test", pattern=r".", specials=spec.specials)
    enc = Encoder(wrong, Path(bpe).read_text(encoding="utf-8"), info.eos_id, True)
    texts = ["the river and the mountain of the river"] * 4
    enc.encode(texts, np.zeros(4, dtype=bool))  # unchecked: no error
    with pytest.raises(CurateError, match="encode a document differently"):
        enc.encode(texts, np.array([False, False, True, False]))
