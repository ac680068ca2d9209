"""A readable, word-level diff of two texts (docs/versions.md, "Compare").

The texts are cut into tokens: words, runs of whitespace, and single other characters (punctuation,
symbols, emoji), each with the combining marks, variation selectors and zero-width joins that
belong to it, so an accented letter or an emoji sequence is never split. The diff is made in two
passes with `difflib.SequenceMatcher`: over lines first (cheap, and what moves in prose is whole
paragraphs), then over the tokens of each changed run of lines. The answer is a list of
`{"op": "equal" | "delete" | "insert", "text"}` whose equal and delete texts joined give the first
text and whose equal and insert texts joined give the second; adjacent operations of one kind are
merged, and in a replacement a lone run of spaces between two changed words is folded into the
change ("<del>old words</del><ins>new words</ins>" rather than word by word).

Cost is bounded: a text of more than MYTHLINE_DOC_DIFF_MAX_TOKENS tokens is refused (413
`payload_too_large`), and a changed run of lines of more than DIFF_BLOCK_TOKENS tokens on either
side is shown as deleted and inserted as a whole instead of being compared word by word.
"""
import os
import re
from collections import Counter
from difflib import SequenceMatcher

from django.conf import settings

from mythline_site.errors import PayloadTooLarge

# Marks that belong to the character before them: combining marks, variation selectors, emoji
# skin tones and tags (astral characters are one code point each in Python).
_JOIN = "\u0300-\u036f\u0483-\u0489\u0591-\u05bd\u0610-\u061a\u064b-\u065f\u0e31\u0e34-\u0e3a\u0e47-\u0e4e" \
        "\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe00-\ufe0f\ufe20-\ufe2f\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f" \
        "\U000e0100-\U000e01ef"
TOKEN_RE = re.compile(
    rf"(?:\w[{_JOIN}]*)+"  # a word (with its accents)
    r"|\s+"  # a run of whitespace
    rf"|[^\w\s][{_JOIN}]*(?:\u200d[^\w\s][{_JOIN}]*)*"  # one other character; an emoji ZWJ sequence whole
)
WORD_RE = re.compile(r"\w+")
DEFAULT_MAX_TOKENS = 200_000
DIFF_BLOCK_TOKENS = 4_000  # a changed run larger than this (either side) is never compared word by word
EXACT_PAIRS = 250_000  # a run of at most this many token pairs is compared exactly
WORK_BUDGET = 3_000_000  # what one comparison may spend (see _Budget): about a second at worst
MAX_LINES, RARE = 50_000, 8  # more lines than a run allows are still compared when each is rare (_rare)
SPACE_FOLD_CHARS = 3  # at most this many spaces between two changed words are folded into the change


def max_tokens() -> int:
    return int(getattr(settings, "MYTHLINE_DOC_DIFF_MAX_TOKENS",
                       os.environ.get("MYTHLINE_DOC_DIFF_MAX_TOKENS", DEFAULT_MAX_TOKENS)))


def tokens(text: str) -> list[str]:
    """Every character is in one token (a lone mark at the start is `[^\\w\\s]`): they join back to `text`."""
    return TOKEN_RE.findall(text)


def _check_size(name: str, toks: list[str]) -> None:
    limit = max_tokens()
    if len(toks) > limit:
        raise PayloadTooLarge(f"The {name} text has {len(toks)} words, spaces and signs; a comparison takes at most "
                              f"{limit} on each side.", details={name: len(toks), "max_tokens": limit})


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True) if text else []


class _Budget:
    """What difflib may still spend on one comparison, in token pairs compared exactly (about a
    third of a microsecond each); a heuristic pass (`autojunk`) costs a tenth of that per pair.
    A run it cannot pay for is shown as deleted and inserted as a whole."""

    def __init__(self, units: int = WORK_BUDGET):
        self.left = units

    def matcher(self, a: list, b: list) -> SequenceMatcher | None:
        pairs = len(a) * len(b)
        if pairs <= min(EXACT_PAIRS, self.left):
            self.left -= pairs
            return SequenceMatcher(None, a, b, autojunk=False)  # exact: no token skipped as "popular"
        if max(len(a), len(b)) <= DIFF_BLOCK_TOKENS and pairs // 10 <= self.left:
            self.left -= pairs // 10
            return SequenceMatcher(None, a, b, autojunk=True)
        if max(len(a), len(b)) <= MAX_LINES and _rare(b):
            return SequenceMatcher(None, a, b, autojunk=True)
        return None


def _rare(items: list) -> bool:
    """No item that difflib does not skip as popular occurs more than a few times: each search
    for a match then costs about one look per item (lines of prose: most are unique)."""
    popular = len(items) // 100 + 1 if len(items) >= 200 else len(items) + 1
    return all(n <= RARE or n > popular for n in Counter(items).values())


def _word_diff(a: str, b: str, out: list, budget: _Budget) -> None:
    ta, tb = tokens(a), tokens(b)
    head = 0  # the tokens both start with and end with are equal as they are
    while head < len(ta) and head < len(tb) and ta[head] == tb[head]:
        head += 1
    tail = 0
    while tail < len(ta) - head and tail < len(tb) - head and ta[-1 - tail] == tb[-1 - tail]:
        tail += 1
    if head:
        out.append(("equal", "".join(ta[:head])))
    ta, tb, end = ta[head:len(ta) - tail], tb[head:len(tb) - tail], "".join(ta[len(ta) - tail:])
    sm = budget.matcher(ta, tb) if ta and tb else None
    if sm is None:
        out += [("delete", "".join(ta)), ("insert", "".join(tb))]
    else:
        for tag, i1, i2, j1, j2 in sm.get_opcodes():
            if tag == "equal":
                out.append(("equal", "".join(ta[i1:i2])))
                continue
            if i2 > i1:
                out.append(("delete", "".join(ta[i1:i2])))
            if j2 > j1:
                out.append(("insert", "".join(tb[j1:j2])))
    out.append(("equal", end))


def common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    lo, hi = 0, n
    while lo < hi:  # binary search on slices: C-speed comparisons
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def common_suffix(a: str, b: str, limit: int) -> int:
    lo, hi = 0, min(len(a), len(b), limit)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid:] == b[len(b) - mid:]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _line_start(text: str, n: int) -> int:
    return text.rfind("\n", 0, n) + 1


def diff(a: str, b: str) -> list[dict]:
    """The operations that turn `a` into `b` (see the module docstring)."""
    check_sizes(a, b)
    if a == b:
        return [{"op": "equal", "text": a}] if a else []
    # The common start and end, cut at line starts and ends, are equal as they are.
    p = _line_start(a, common_prefix(a, b))
    s = common_suffix(a, b, min(len(a), len(b)) - p)
    cut = a.find("\n", len(a) - s) if s else -1  # the suffix from its first line start on
    s = len(a) - (cut + 1) if cut != -1 else 0
    ops: list = []
    if p:
        ops.append(("equal", a[:p]))
    mid_a, mid_b = a[p:len(a) - s], b[p:len(b) - s]
    budget = _Budget()
    la, lb = _lines(mid_a), _lines(mid_b)
    sm = budget.matcher(la, lb) if len(la) > 1 or len(lb) > 1 else None
    if sm is None:  # one line (or too many to compare): word by word at once
        _word_diff(mid_a, mid_b, ops, budget)
    else:
        for tag, i1, i2, j1, j2 in sm.get_opcodes():
            if tag == "equal":
                ops.append(("equal", "".join(la[i1:i2])))
            else:
                _word_diff("".join(la[i1:i2]), "".join(lb[j1:j2]), ops, budget)
    if s:
        ops.append(("equal", a[len(a) - s:]))
    return _tidy(ops)


def _tidy(ops: list) -> list[dict]:
    """Empty operations dropped, runs of one kind merged (deletions before insertions), and short
    runs of spaces between two replaced words folded into the replacement."""
    ops = [(op, text) for op, text in ops if text]
    out: list[list] = []  # [op, text]
    pending_del, pending_ins = [], []

    def flush():
        if pending_del:
            out.append(["delete", "".join(pending_del)])
        if pending_ins:
            out.append(["insert", "".join(pending_ins)])
        pending_del.clear()
        pending_ins.clear()

    for i, (op, text) in enumerate(ops):
        if op == "delete":
            pending_del.append(text)
        elif op == "insert":
            pending_ins.append(text)
        else:
            following = ops[i + 1][0] if i + 1 < len(ops) else None
            if (pending_del and pending_ins and following in ("delete", "insert") and len(text) <= SPACE_FOLD_CHARS
                    and text.strip() == "" and "\n" not in text):
                pending_del.append(text)
                pending_ins.append(text)
                continue
            flush()
            if out and out[-1][0] == "equal":
                out[-1][1] += text
            else:
                out.append(["equal", text])
    flush()
    return [{"op": op, "text": text} for op, text in out]


def stats(ops: list[dict]) -> dict:
    inserted = "".join(o["text"] for o in ops if o["op"] == "insert")
    deleted = "".join(o["text"] for o in ops if o["op"] == "delete")
    return {"inserted": len(inserted), "deleted": len(deleted),
            "inserted_words": len(WORD_RE.findall(inserted)), "deleted_words": len(WORD_RE.findall(deleted))}


def check_sizes(a: str, b: str) -> None:
    """413 when either text has more than MYTHLINE_DOC_DIFF_MAX_TOKENS tokens."""
    limit = max_tokens()
    for name, text in (("from", a), ("to", b)):
        if len(text) > limit:  # fewer characters than the limit cannot make more tokens
            _check_size(name, tokens(text))
