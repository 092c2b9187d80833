"""The encoder behind the tokenize stage: tiktoken's BPE where it reproduces the tokenizer.json, else `tokenizers`.

tiktoken encodes byte-level BPE several times faster per core than `tokenizers` (figures in benchmarks/RESULTS.md),
and tokenizing is most of the stage's time. The two libraries run BPE differently (tiktoken merges the adjacent pair
whose concatenation has the lowest id and takes a pre-token whole when it is in the vocabulary; `tokenizers` applies
the listed merges in list order), so tiktoken is used only for a tokenizer where both give the same ids:
- no normalizer; a ByteLevel pre-tokenizer with its GPT-2 regex and no prefix space, or a regex Split (isolated)
  followed by a ByteLevel without regex (the GPT-4 / Llama-3 layout);
- a BPE model without dropout, unknown token, subword prefix/suffix or byte fallback, with all 256 bytes in the
  vocabulary, each merge producing a token with a higher id than the merges before it, and every token produced from
  its own bytes by the merges (so taking a pre-token whole and merging it give the same token);
- added tokens matched as-is (no strip or single-word rules, none a prefix of another) and a post-processor that only
  puts fixed tokens around a document (none, ByteLevel, TemplateProcessing).
Anything else is encoded by `tokenizers`. Structure is not proof, so while it runs the stage also encodes one
document in VERIFY_ONE_IN (chosen by a hash of its id: the same ones however the corpus is partitioned) with both and
stops with a clear error on any difference: the output is never silently different from what `tokenizers` gives.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import chain
from typing import Any, Literal

import numpy as np

from curate.errors import CurateError

Engine = Literal["auto", "tiktoken", "tokenizers"]
VERIFY_ONE_IN = 64
# The regex of tokenizers' ByteLevel pre-tokenizer with use_regex (GPT-2's).
BYTE_LEVEL_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


@dataclass(frozen=True)
class EngineSpec:
    """Which library encodes, why, and what tiktoken needs beyond the vocabulary (picklable: sent to the workers)."""

    name: Literal["tiktoken", "tokenizers"]
    reason: str
    pattern: str = ""
    prefix: tuple[int, ...] = ()  # the post-processor's tokens before / after every document
    suffix: tuple[int, ...] = ()
    specials: tuple[tuple[str, int], ...] = ()  # the added tokens, matched in the text as tokenizers does

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "reason": self.reason,
                **({"verified_one_in": VERIFY_ONE_IN} if self.name == "tiktoken" else {})}


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table, which byte-level vocabularies are written in."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = list(bs)
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


_UNICODE_TO_BYTE = {c: b for b, c in _bytes_to_unicode().items()}


def _pattern(pre: dict[str, Any] | None) -> str | None:
    """The pre-tokenizer's split regex when tiktoken can reproduce it, else None."""
    if pre is None:
        return None
    if pre.get("type") == "ByteLevel":
        return BYTE_LEVEL_PATTERN if pre.get("use_regex", True) and not pre.get("add_prefix_space") else None
    if pre.get("type") == "Sequence" and len(pre.get("pretokenizers", [])) == 2:
        split, byte_level = pre["pretokenizers"]
        if (split.get("type") == "Split" and "Regex" in split.get("pattern", {})
                and split.get("behavior") == "Isolated" and not split.get("invert")
                and byte_level.get("type") == "ByteLevel" and not byte_level.get("use_regex", True)
                and not byte_level.get("add_prefix_space")):
            return split["pattern"]["Regex"]
    return None


def _ranks(model: dict[str, Any], specials: set[str]) -> dict[bytes, int] | str:
    """tiktoken's mergeable ranks (token bytes -> id), or why the vocabulary does not qualify."""
    ranks: dict[bytes, int] = {}
    for text, i in model["vocab"].items():
        if text in specials:
            continue
        try:
            ranks[bytes(_UNICODE_TO_BYTE[c] for c in text)] = i
        except KeyError:
            return "a vocabulary entry is not byte-level text"
    if len(set(ranks.values())) != len(ranks):
        return "two vocabulary entries share an id"
    if any(bytes([b]) not in ranks for b in range(256)):
        return "not every byte is in the vocabulary"
    last = -1
    for m in model.get("merges", []):
        left, right = m.split(" ", 1) if isinstance(m, str) else m
        made = model["vocab"].get(left + right)
        if made is None or made <= last:
            return "the merges do not produce their tokens in id order"
        last = made
    return ranks


def plan_engine(tok_path: str, requested: Engine) -> EngineSpec:
    """The engine for the tokenizer at `tok_path`: tiktoken when `requested` allows it and the tokenizer qualifies
    (a CurateError when tiktoken was asked for and it does not), else tokenizers."""
    if requested == "tokenizers":
        return EngineSpec("tokenizers", "asked for (engine = tokenizers)")
    why, spec = _qualify(tok_path)
    if spec is None:
        if requested == "tiktoken":
            raise CurateError(f"tokenize: engine = tiktoken cannot reproduce {tok_path}: {why} "
                              f"(use engine = auto or tokenizers)")
        return EngineSpec("tokenizers", f"tiktoken cannot reproduce this tokenizer: {why}")
    return spec


def _qualify(tok_path: str) -> tuple[str, EngineSpec | None]:
    try:
        import tiktoken  # noqa: F401
    except ImportError:
        return "tiktoken is not installed", None
    from curate.tokenize.tokenizer import load_tokenizer

    tok = load_tokenizer(tok_path)
    j = json.loads(tok.to_str())
    model = j.get("model", {})
    if j.get("normalizer") is not None:
        return "it has a normalizer", None
    pattern = _pattern(j.get("pre_tokenizer"))
    if pattern is None:
        return "its pre-tokenizer is not a plain byte-level regex split", None
    if (model.get("type") != "BPE" or model.get("dropout") or model.get("unk_token") is not None
            or model.get("continuing_subword_prefix") or model.get("end_of_word_suffix") or model.get("byte_fallback")):
        return "its model is not a plain byte-level BPE", None
    added = j.get("added_tokens", [])
    if any(a.get("lstrip") or a.get("rstrip") or a.get("single_word") for a in added):
        return "an added token has strip or single-word rules", None
    contents = sorted(a["content"] for a in added)
    if any(b.startswith(a) for a, b in zip(contents, contents[1:])):
        return "an added token is a prefix of another", None
    ranks = _ranks(model, set(contents))
    if isinstance(ranks, str):
        return ranks, None
    # Unless tokenizers also takes a pre-token whole when it is in the vocabulary (ignore_merges), every token must
    # come out of its own bytes whole, else tiktoken's shortcut gives what the merges do not.
    if not model.get("ignore_merges"):
        if any(len(t := tok.model.tokenize(text)) != 1 or t[0].id != i
               for text, i in model["vocab"].items() if text not in contents):
            return "a token is not reachable from its bytes by the merges", None
    post = (j.get("post_processor") or {}).get("type")
    if post not in (None, "ByteLevel", "TemplateProcessing"):
        return f"its post-processor ({post}) is not fixed tokens around a document", None
    probe, plain = tok.encode("a b", add_special_tokens=True).ids, tok.encode("a b", add_special_tokens=False).ids
    at = next((i for i in range(len(probe) - len(plain) + 1) if probe[i:i + len(plain)] == plain), None)
    if at is None:
        return "its post-processor changes the document's own tokens", None
    spec = EngineSpec("tiktoken", "plain byte-level BPE", pattern=pattern, prefix=tuple(probe[:at]),
                      suffix=tuple(probe[at + len(plain):]), specials=tuple((a["content"], a["id"]) for a in added))
    return "", spec


class Encoder:
    """Encodes lists of texts in a worker: token ids back to back and each document's length, the post-processor's
    tokens kept and EOS appended where it adds none; with tiktoken, checks sampled documents against tokenizers."""

    def __init__(self, spec: EngineSpec, tok_json: str, eos_id: int, append_eos: bool):
        from tokenizers import Tokenizer

        self.spec, self.eos_id, self.append_eos = spec, eos_id, append_eos
        self.hf = Tokenizer.from_str(tok_json)
        self.tt = None
        if spec.name == "tiktoken":
            import tiktoken

            j = json.loads(tok_json)
            specials = dict(spec.specials)
            ranks = _ranks(j["model"], set(specials))
            if isinstance(ranks, str):
                raise CurateError(f"tokenize: tiktoken cannot load the tokenizer in a worker: {ranks}")
            self.tt = tiktoken.Encoding("curate", pat_str=spec.pattern, mergeable_ranks=ranks,
                                        special_tokens=specials)

    def encode(self, texts: list[str], verify: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(flat int64 ids, lengths) of `texts`; `verify` marks the documents to check (tiktoken only)."""
        if self.tt is None:
            ids = [e.ids for e in self.hf.encode_batch_fast(texts, add_special_tokens=True)]
        else:
            ids = [self.tt.encode(t, allowed_special="all") for t in texts]
            if self.spec.prefix or self.spec.suffix:
                pre, post = list(self.spec.prefix), list(self.spec.suffix)
                ids = [pre + x + post for x in ids]
            if verify is not None and verify.any():
                self._check([texts[i] for i in np.flatnonzero(verify)], [ids[i] for i in np.flatnonzero(verify)])
        if self.append_eos:
            for x in ids:
                x.append(self.eos_id)
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum()))
        return flat, lengths

    def _check(self, texts: list[str], got: list[list[int]]) -> None:
        want = self.hf.encode_batch_fast(texts, add_special_tokens=True)
        for text, g, w in zip(texts, got, want):
            if g != w.ids:
                raise CurateError(f"tokenize: tiktoken and tokenizers encode a document differently "
                                  f"({text[:60]!r}...); set tokenize.engine = \"tokenizers\"")
