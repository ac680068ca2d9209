"""Suggestions and comment anchors map through concurrent changes the same way on the server and in
the browser (issue #16).

Random cases (fixed seed): a text with astral characters, suggestion edits and comment anchors on
it, then a run of changes, many of them at or next to the ranges' edges. The server's answers come
from the functions its refreshes use (`shift_ranges` in a walk like `suggestions.services.refresh`:
the first change touching a suggestion makes it stale; `comments.services.map_anchors`); the
browser's from its own code path, in tests/node/anchors.test.mjs (the panels' place() and the marks
StateFields), which must agree on every case.
"""
import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from comments.services import map_anchors
from stories.changesets import ChangeSet, index_to_utf16, shift_ranges, utf16_len
from suggestions.services import _old_length
from tests.conftest import require

ROOT = Path(__file__).resolve().parent.parent.parent
SUITE = ROOT / "tests" / "node" / "anchors.test.mjs"
ALPHABET = "ab cd\né😀🐉"  # astral characters are two UTF-16 units


def _text(rng: random.Random, lo: int, hi: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(lo, hi)))


def _edges(text: str, points: list[int], rng: random.Random) -> int:
    """A character index of `text`: often one of `points` (UTF-16 edges of the ranges) or next to one."""
    if points and rng.random() < 0.4:
        u = rng.choice(points) + rng.choice((0, 0, 0, -1, 1))
        for index in range(len(text) + 1):  # the boundary at or after u
            if index_to_utf16(text, index) >= u:
                return index
        return len(text)
    return rng.randint(0, len(text))


def _sorted_ranges(text: str, rng: random.Random, count: int, allow_empty: bool) -> list[tuple[int, int]]:
    """`count` or fewer sorted, non-overlapping (possibly adjacent) ranges of character indexes."""
    cuts = sorted(rng.randint(0, len(text)) for _ in range(2 * count))
    out = []
    for k in range(0, len(cuts), 2):
        a, b = cuts[k], cuts[k + 1]
        if a < b or (allow_empty and a == b):
            out.append((a, b))
    return out


def _change(text: str, points: list[int], rng: random.Random) -> tuple[list, str]:
    """A random change set of `text` (JSON form) and the text it makes."""
    marks = sorted({_edges(text, points, rng) for _ in range(rng.randint(1, 4))})
    edits, last = [], -1
    for k in range(0, len(marks), 2):
        a = marks[k]
        b = marks[k + 1] if k + 1 < len(marks) and rng.random() < 0.6 else a
        if a <= last:
            continue
        insert = _text(rng, 0, 3) if a < b else _text(rng, 1, 3)
        edits.append((a, b, insert))
        last = b
    if not edits:
        edits = [(len(text), len(text), "z")]
    units = [(index_to_utf16(text, a), index_to_utf16(text, b), insert) for a, b, insert in edits]
    cs = ChangeSet.of(units, utf16_len(text))
    return cs.to_json(), cs.apply(text)


def _case(rng: random.Random) -> dict:
    text = original = _text(rng, 0, 24)
    u = lambda i: index_to_utf16(text, i)  # noqa: E731
    suggestions = []
    for _ in range(rng.randint(1, 3)):
        ranges = _sorted_ranges(text, rng, rng.randint(1, 3), allow_empty=True)
        edits = [[u(a), u(b), _text(rng, 0 if a < b else 1, 3)] for a, b in ranges]
        if edits:
            suggestions.append({"edits": edits, "stale": None, "mapped": [e[:] for e in edits]})
    comments = [{"from": u(a), "to": u(b), "mapped": [u(a), u(b)], "orphaned": False}
                for a, b in _sorted_ranges(text, rng, rng.randint(1, 3), allow_empty=False)]
    changes = []
    for n in range(1, rng.randint(1, 6) + 1):
        points = [p for s in suggestions if s["stale"] is None for e in s["mapped"] for p in e[:2]]
        points += [p for c in comments for p in c["mapped"]]
        json_changes, text = _change(text, points, rng)
        changes.append(json_changes)
        # The server's walk (suggestions.services.refresh, comments.services.refresh), one change at a time.
        cs = ChangeSet.from_json(json_changes, _old_length(json_changes))
        for s in suggestions:
            if s["stale"] is not None:
                continue
            shifted = shift_ranges(cs, [(a, b) for a, b, _ in s["mapped"]])
            if shifted is None:
                s["stale"], s["mapped"] = n, None
            else:
                s["mapped"] = [[a, b, insert] for (a, b), (_, _, insert) in zip(shifted, s["mapped"], strict=True)]
        mapped = map_anchors(cs, [(c["mapped"][0], c["mapped"][1], c["orphaned"]) for c in comments])
        for c, (a, b, orphaned) in zip(comments, mapped, strict=True):
            c["mapped"], c["orphaned"] = [a, b], orphaned
    return {"text": original, "changes": changes, "suggestions": suggestions, "comments": comments}


def make_cases(seed: int, count: int) -> list[dict]:
    rng = random.Random(seed)
    return [_case(rng) for _ in range(count)]


def _node() -> str:
    node = shutil.which("node")
    require(bool(node) and (ROOT / "frontend" / "node_modules" / "@codemirror" / "view").is_dir(),
            "Node.js and frontend/node_modules")
    return node


def test_server_answers_are_consistent():
    """The cases' server answers agree with the slow definitions (touches_range + map_pos)."""
    for case in make_cases(seed=7, count=200):
        length = utf16_len(case["text"])
        sets = []
        for changes in case["changes"]:
            sets.append(ChangeSet.from_json(changes, length))
            length = sets[-1].new_length
        for s in case["suggestions"]:
            ranges = [(a, b) for a, b, _ in s["edits"]]
            stale = None
            for n, cs in enumerate(sets, 1):
                if any(cs.touches_range(a, b) for a, b in ranges):
                    stale = n
                    break
                ranges = [(cs.map_pos(a, 1), cs.map_pos(b, -1)) for a, b in ranges]
            assert s["stale"] == stale
            if stale is None:
                assert [e[:2] for e in s["mapped"]] == [list(r) for r in ranges]


@pytest.mark.timeout(300)
def test_browser_maps_as_the_server(tmp_path):
    node = _node()
    cases = make_cases(seed=16, count=1000)
    assert sum(s["stale"] is not None for c in cases for s in c["suggestions"]) > 100
    assert sum(s["stale"] is None for c in cases for s in c["suggestions"]) > 100
    assert sum(a["orphaned"] for c in cases for a in c["comments"]) > 50
    path = tmp_path / "anchor-cases.json"
    path.write_text(json.dumps(cases, ensure_ascii=False), encoding="utf-8")
    proc = subprocess.run([node, "--test", str(SUITE)], cwd=ROOT, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "MYTHLINE_ANCHOR_CASES": str(path)})
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-3000:]
    assert "from " + str(path) in proc.stdout  # it used these cases, not its built-in ones
