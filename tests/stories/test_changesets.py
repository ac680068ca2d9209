"""stories.changesets: a Python port of @codemirror/state change sets.

Expected values marked "CodeMirror 6.7.6" were produced by running the real @codemirror/state 6.7.6
under Node on the same inputs; the others are checked by hand. Pure Python, no database.
"""
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stories.changesets import (
    ChangeSet,
    InvalidChangeSet,
    MapMode,
    edits_from_chars,
    index_to_utf16,
    normalize_line_breaks,
    utf16_len,
    utf16_to_index,
)

GRIN = "😀"  # U+1F600: 2 UTF-16 units, 1 code point
E_ACUTE = "e\u0301"  # combining mark: 2 code points, 2 UTF-16 units


def cs(edits, text):
    """ChangeSet from code-point edits [(from, to, insert)] on `text`."""
    return ChangeSet.of(
        edits_from_chars(text, [{"from": f, "to": t, "insert": s} for f, t, s in edits]), utf16_len(text))


def units(text):
    return text.encode("utf-16-le")


# --------------------------------------------------------------------------- UTF-16 conversions

class TestUtf16:
    @pytest.mark.parametrize("text, expected", [
        ("", 0), ("abc", 3), (GRIN, 2), (f"a{GRIN}b", 4), (E_ACUTE, 2), ("\U0001D11E\n", 3), ("é", 1),
    ])
    def test_len(self, text, expected):
        assert utf16_len(text) == expected

    def test_offsets_around_astral_characters(self):
        text = f"a{GRIN}b{GRIN}"  # units: a=0, 😀=1-2, b=3, 😀=4-5, end=6
        assert [index_to_utf16(text, i) for i in range(5)] == [0, 1, 3, 4, 6]
        assert [utf16_to_index(text, u) for u in (0, 1, 3, 4, 6)] == [0, 1, 2, 3, 4]
        for inside in (2, 5):
            with pytest.raises(ValueError, match="surrogate pair"):
                utf16_to_index(text, inside)

    def test_combining_marks_are_two_code_points_and_two_units(self):
        text = f"caf{E_ACUTE}!"
        assert [index_to_utf16(text, i) for i in range(len(text) + 1)] == [0, 1, 2, 3, 4, 5, 6]
        assert utf16_to_index(text, 5) == 5

    @pytest.mark.parametrize("func, text, value", [
        (utf16_to_index, "ab", 3), (utf16_to_index, "ab", -1), (utf16_to_index, GRIN, 3),
        (index_to_utf16, GRIN, 2), (index_to_utf16, "", 1), (index_to_utf16, "ab", -1),
    ])
    def test_out_of_range(self, func, text, value):
        with pytest.raises(ValueError, match="out of range"):
            func(text, value)

    def test_rejects_non_int(self):
        with pytest.raises(TypeError):
            utf16_to_index("ab", True)
        with pytest.raises(TypeError):
            index_to_utf16("ab", 1.0)

    def test_empty_text(self):
        assert utf16_to_index("", 0) == 0 and index_to_utf16("", 0) == 0

    def test_normalize_line_breaks(self):
        assert normalize_line_breaks("a\r\nb\rc\nd\r\r\n") == "a\nb\nc\nd\n\n"


# --------------------------------------------------------------------------- JSON

class TestJson:
    @pytest.mark.parametrize("data, length, new_length", [
        ([], 0, 0),
        ([5], 5, 5),
        ([[5, "HELLO"], 6], 11, 11),
        ([2, [0, "x", "y"], 2], 4, 7),  # inserts "x\ny"
        ([[2], 3], 5, 3),
        ([2, [0, "", ""], 1], 3, 4),  # inserts "\n"
        ([[2, "a"], [0, "b"], 1], 3, 3),  # adjacent separate changes (CodeMirror output can have these)
        ([[0, GRIN]], 0, 2),
    ])
    def test_round_trip_and_lengths(self, data, length, new_length):
        changes = ChangeSet.from_json(data, length)
        assert changes.to_json() == data
        assert changes.length == length
        assert changes.new_length == new_length
        assert json.loads(json.dumps(changes.to_json())) == data

    def test_empty_line_insert_normalises_like_codemirror(self):
        # [3, ""] is CodeMirror's Text.of([""]): an empty insertion, i.e. a deletion; toJSON gives [3].
        assert ChangeSet.from_json([[3, ""]], 3).to_json() == [[3]]

    @pytest.mark.parametrize("data, length, message", [
        ({"0": 1}, 1, "JSON array"),
        ("[1]", 1, "JSON array"),
        ([1.0], 1, "expected a length"),
        ([True], 1, "expected a length"),
        ([None], 0, "expected a length"),
        (["a"], 1, "expected a length"),
        ([-1, 2], 1, "positive"),
        ([0, 3], 3, "positive"),  # CodeMirror never emits zero-length keeps; its map/compose choke on them
        ([[0], 3], 3, "nothing with nothing"),
        ([[0, ""], 3], 3, "nothing with nothing"),
        ([[]], 0, "non-negative integer length"),
        ([["a"]], 0, "non-negative integer length"),
        ([[-2, "a"]], 0, "non-negative integer length"),
        ([[False, "a"]], 0, "non-negative integer length"),
        ([[1, 5]], 1, "must be strings"),
        ([[1, None]], 1, "must be strings"),
        ([[1, "a\nb"]], 1, "line breaks"),
        ([[1, "a\r"]], 1, "line breaks"),
        ([[1, "\ud83d"]], 1, "lone surrogate"),
        ([3], 4, "cover 3 units but the document has 4"),
        ([3, [2, "x"]], 4, "cover 5 units"),
        ([], 1, "cover 0 units"),
    ])
    def test_invalid(self, data, length, message):
        with pytest.raises(InvalidChangeSet, match=message):
            ChangeSet.from_json(data, length)

    def test_invalid_is_a_value_error(self):
        assert issubclass(InvalidChangeSet, ValueError)

    def test_equality_and_repr(self):
        assert ChangeSet.from_json([1, [1, "x"]], 2) == ChangeSet.of([(1, 2, "x")], 2)
        assert ChangeSet.from_json([1, [1, "x"]], 2) != ChangeSet.of([(1, 2, "y")], 2)
        assert repr(ChangeSet.empty(2)) == "ChangeSet([2])"


# --------------------------------------------------------------------------- apply

class TestApply:
    @pytest.mark.parametrize("text, data, expected", [
        ("hello world", [[5, "HELLO"], 6], "HELLO world"),
        ("abc", [[1], 2], "bc"),  # delete at start
        ("abc", [2, [1]], "ab"),  # delete at end
        ("abc", [[3]], ""),  # delete everything
        ("", [], ""),
        ("", [[0, "x", "", "y"]], "x\n\ny"),  # multi-line insert into an empty doc
        ("ab", [1, [0, "1", "2"], 1], "a1\n2b"),
        ("one\ntwo", [3, [1, " "], 3], "one two"),  # delete a line break
        (f"a{GRIN}b", [1, [2, "🎉"], 1], "a🎉b"),  # replace an astral char (2 units)
        (f"{GRIN}{GRIN}", [2, [0, "x"], 2], f"{GRIN}x{GRIN}"),
        (f"caf{E_ACUTE}", [4, [1]], "cafe"),  # delete only the combining mark
        (f"caf{E_ACUTE}", [3, [2, "é"]], "café"),
    ])
    def test_examples(self, text, data, expected):
        assert ChangeSet.from_json(data, utf16_len(text)).apply(text) == expected

    def test_empty_change_returns_text(self):
        assert ChangeSet.empty(3).apply("abc") == "abc"
        assert ChangeSet.empty(0).apply("") == ""
        assert ChangeSet.empty(3).is_empty and ChangeSet.empty(0).is_empty
        assert not ChangeSet.from_json([[0, "x"]], 0).is_empty

    def test_wrong_document_length(self):
        with pytest.raises(InvalidChangeSet, match="length 3"):
            ChangeSet.empty(3).apply(GRIN)  # 1 code point but 2 units: still wrong
        assert ChangeSet.empty(2).apply(GRIN) == GRIN

    @pytest.mark.parametrize("text, data", [
        (GRIN, [1, [1]]),  # deletes the low half
        (GRIN, [[1], 1]),  # deletes the high half
        (GRIN, [1, [0, "x"], 1]),  # inserts between the halves
        (GRIN + GRIN, [1, [2, "x"], 1]),  # replacement from inside one pair to inside the next
        (GRIN + GRIN, [1, [2], 1]),  # JavaScript would even get a valid string here; still refused
    ])
    def test_rejects_boundaries_inside_surrogate_pairs(self, text, data):
        with pytest.raises(InvalidChangeSet, match="surrogate"):
            ChangeSet.from_json(data, utf16_len(text)).apply(text)

    def test_rejects_document_with_lone_surrogate(self):
        with pytest.raises(ValueError, match="lone surrogate"):
            ChangeSet.empty(1).apply("\ud83d")


# --------------------------------------------------------------------------- of / edits_from_chars

class TestOf:
    def test_simple(self):
        assert ChangeSet.of([(0, 5, "HELLO")], 11).to_json() == [[5, "HELLO"], 6]
        assert ChangeSet.of([(5, 5, "!")], 11).to_json() == [5, [0, "!"], 6]
        assert ChangeSet.of([], 4).to_json() == [4]
        assert ChangeSet.of([], 0).to_json() == []
        assert ChangeSet.of([(2, 2, "")], 4).is_empty  # no-op edits vanish

    def test_sorts_edits(self):
        a = ChangeSet.of([(4, 5, "E"), (0, 1, "A")], 6)
        assert a.to_json() == [[1, "A"], 3, [1, "E"], 1]
        assert a.apply("abcdef") == "AbcdEf"

    @pytest.mark.parametrize("edits, expected", [  # CodeMirror 6.7.6, ChangeSet.of(spec, 6)
        ([(2, 4, "R"), (2, 2, "I")], [2, [0, "I"], [2, "R"], 2]),
        ([(2, 2, "I"), (2, 4, "R")], [2, [0, "I"], [2, "R"], 2]),
        ([(1, 1, "a"), (1, 1, "b")], [1, [0, "ab"], 5]),  # insertions at one spot keep their order
        ([(0, 2, ""), (2, 2, "x")], [[2], [0, "x"], 4]),
        ([(2, 2, "x"), (0, 2, "")], [[2], [0, "x"], 4]),
        ([(1, 1, "a\r\nb\rc")], [1, [0, "a", "b", "c"], 5]),  # line breaks normalised
    ])
    def test_matches_codemirror(self, edits, expected):
        assert ChangeSet.of(edits, 6).to_json() == expected

    @pytest.mark.parametrize("edits, message", [
        ([(0, 3, "x"), (2, 4, "y")], "overlap"),
        ([(1, 3, ""), (2, 2, "y")], "overlap"),  # insertion strictly inside a replaced range
        ([(3, 2, "")], "invalid range"),
        ([(-1, 0, "")], "invalid range"),
        ([(0, 7, "")], "invalid range"),
        ([(0, 1)], "expected"),
        ([(0, 1.5, "")], "integers"),
        ([(0, 1, None)], "string"),
        ([(0, 0, "\udc00")], "lone surrogate"),
    ])
    def test_invalid(self, edits, message):
        with pytest.raises(InvalidChangeSet, match=message):
            ChangeSet.of(edits, 6)

    def test_touching_edits_are_fine(self):
        changes = ChangeSet.of([(0, 2, "X"), (2, 4, "Y"), (4, 4, "Z")], 6)
        assert changes.apply("abcdef") == "XYZef"


class TestEditsFromChars:
    def test_converts_code_points_to_units(self):
        text = f"{GRIN}a{GRIN}b"
        edits = edits_from_chars(text, [{"from": 1, "to": 2, "insert": "A"}, {"from": 4, "insert": "!"}])
        assert edits == [(2, 3, "A"), (6, 6, "!")]
        assert ChangeSet.of(edits, utf16_len(text)).apply(text) == f"{GRIN}A{GRIN}b!"

    def test_defaults(self):
        assert edits_from_chars("abc", [{"from": 1}]) == [(1, 1, "")]
        assert edits_from_chars("abc", [{"from": 1, "to": 3}]) == [(1, 3, "")]
        assert edits_from_chars("", []) == []

    def test_combining_marks_count_as_two_characters(self):
        text = f"caf{E_ACUTE}"
        edits = edits_from_chars(text, [{"from": 3, "to": 5, "insert": "é"}])
        assert ChangeSet.of(edits, utf16_len(text)).apply(text) == "café"

    @pytest.mark.parametrize("edits, message", [
        ({"from": 0}, "must be a list"),
        ([["from", 0]], "expected an object"),
        ([{"to": 1}], "'from' is required"),
        ([{"from": 0, "text": "x"}], "unknown field"),
        ([{"from": "0"}], "integers"),
        ([{"from": 0, "to": True}], "integers"),
        ([{"from": 0, "insert": 5}], "string"),
        ([{"from": 2, "to": 1}], "invalid range"),
        ([{"from": -1, "to": 0}], "invalid range"),
        ([{"from": 0, "to": 4}], "3 characters"),  # "a😀b" is 3 characters although 4 UTF-16 units
    ])
    def test_invalid(self, edits, message):
        with pytest.raises(InvalidChangeSet, match=message):
            edits_from_chars(f"a{GRIN}b", edits)


# --------------------------------------------------------------------------- map_pos / touches_range

class TestMapPos:
    @pytest.fixture
    def changes(self):
        # "abcdef": delete 1-2, insert "XY" at 3, replace 4-5 by "Z"  ->  "acXYdZf"
        c = ChangeSet.of([(1, 2, ""), (3, 3, "XY"), (4, 5, "Z")], 6)
        assert c.to_json() == [1, [1], 1, [0, "XY"], 1, [1, "Z"], 1]
        assert c.apply("abcdef") == "acXYdZf"
        return c

    # CodeMirror 6.7.6: [pos, assoc, Simple, TrackDel, TrackBefore, TrackAfter]
    EXPECTED = [
        [0, -1, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0],
        [1, -1, 1, 1, 1, None], [1, 1, 1, 1, 1, None],
        [2, -1, 1, 1, None, 1], [2, 1, 1, 1, None, 1],
        [3, -1, 2, 2, 2, 2], [3, 1, 4, 4, 4, 4],
        [4, -1, 5, 5, 5, None], [4, 1, 5, 5, 5, None],
        [5, -1, 6, 6, None, 6], [5, 1, 6, 6, None, 6],
        [6, -1, 7, 7, 7, 7], [6, 1, 7, 7, 7, 7],
    ]

    @pytest.mark.parametrize("pos, assoc, simple, track_del, track_before, track_after", EXPECTED)
    def test_matches_codemirror(self, changes, pos, assoc, simple, track_del, track_before, track_after):
        assert changes.map_pos(pos, assoc) == simple
        assert changes.map_pos(pos, assoc, MapMode.TRACK_DEL) == track_del
        assert changes.map_pos(pos, assoc, MapMode.TRACK_BEFORE) == track_before
        assert changes.map_pos(pos, assoc, MapMode.TRACK_AFTER) == track_after

    def test_default_assoc_is_before(self, changes):
        assert changes.map_pos(3) == 2

    def test_track_del_inside_deleted_range(self):
        c = ChangeSet.of([(1, 4, "")], 5)
        assert [c.map_pos(p, 1, MapMode.TRACK_DEL) for p in range(6)] == [0, 1, None, None, 1, 2]

    def test_replacement_across_position(self):
        c = ChangeSet.of([(1, 3, "XYZ")], 4)  # "abcd" -> "aXYZd"
        assert c.map_pos(2, -1) == 1 and c.map_pos(2, 1) == 4

    def test_out_of_range(self, changes):
        with pytest.raises(ValueError, match="out of range"):
            changes.map_pos(7)
        with pytest.raises(ValueError):
            changes.map_pos(-1)


class TestTouchesRange:
    @pytest.mark.parametrize("from_, to, expected", [
        (0, 2, False), (0, 3, True), (3, 3, True), (4, 4, "cover"), (3, 5, True),
        (5, 5, True), (5, 7, True), (6, 8, False), (2, 9, True), (0, 10, True), (10, 10, False),
    ])
    def test_replacement(self, from_, to, expected):
        changes = ChangeSet.of([(3, 5, "XY")], 10)  # replaces [3, 5); touching is inclusive
        assert changes.touches_range(from_, to) == expected

    def test_insertion(self):
        changes = ChangeSet.of([(3, 3, "X")], 10)
        assert changes.touches_range(3) is True
        assert changes.touches_range(0, 3) is True and changes.touches_range(3, 6) is True
        assert changes.touches_range(0, 2) is False and changes.touches_range(4, 10) is False

    def test_empty(self):
        assert ChangeSet.empty(5).touches_range(0, 5) is False
        assert ChangeSet.empty(0).touches_range(0) is False


# --------------------------------------------------------------------------- map / compose

MAP_CASES = [  # CodeMirror 6.7.6: doc, A, B, A.map(B), A.map(B, true), B.map(A), merged text
    ("hello world", [[5, "HELLO"], 6], [5, [0, "!"], 6],
     [[5, "HELLO"], 7], [[5, "HELLO"], 7], [5, [0, "!"], 6], "HELLO! world"),
    ("abcd", [2, [0, "a"], 2], [2, [0, "b"], 2],
     [3, [0, "a"], 2], [2, [0, "a"], 3], [3, [0, "b"], 2], "ababcd"),
    ("abcdef", [1, [3], 2], [2, [3], 1],
     [1, [1], 1], [1, [1], 1], [1, [1], 1], "af"),
    ("abcdef", [1, [4, "X"], 1], [3, [0, "Y"], 3],
     [1, [2, "X"], 1, [2], 1], [1, [2, "X"], 1, [2], 1], [2, [0, "Y"], 1], "aXYf"),
    ("abcdef", [2, [2, "P"], 2], [2, [2, "Q"], 2],
     [3, [0, "P"], 2], [2, [0, "P"], 3], [3, [0, "Q"], 2], "abPQef"),
    (f"a{GRIN}b", [1, [2, "🎉"], 1], [[1], 2, [0, "c"], 1],
     [[2, "🎉"], 2], [[2, "🎉"], 2], [[1], 2, [0, "c"], 1], "🎉cb"),
    ("", [[0, "x", "y"]], [[0, "z"]],
     [1, [0, "x", "y"]], [[0, "x", "y"], 1], [3, [0, "z"]], "x\nyz"),
    ("one\ntwo", [[7]], [4, [0, "2"], 3],
     [[4], 1, [3]], [[4], 1, [3]], [[0, "2"]], "2"),
    ("abc", [3, [0, "!"]], [[0, ">"], 3, [0, "?"]],
     [5, [0, "!"]], [4, [0, "!"], 1], [[0, ">"], 4, [0, "?"]], ">abc!?"),
]


class TestMap:
    @pytest.mark.parametrize("doc, a, b, a_map_b, a_map_b_before, b_map_a, merged", MAP_CASES)
    def test_matches_codemirror(self, doc, a, b, a_map_b, a_map_b_before, b_map_a, merged):
        n = utf16_len(doc)
        A, B = ChangeSet.from_json(a, n), ChangeSet.from_json(b, n)
        assert A.map(B).to_json() == a_map_b
        assert A.map(B, before=True).to_json() == a_map_b_before
        assert B.map(A).to_json() == b_map_a
        assert A.compose(B.map(A)).apply(doc) == merged
        assert B.compose(A.map(B, True)).apply(doc) == merged
        assert B.map(A).apply(A.apply(doc)) == merged

    def test_tie_breaking_at_the_same_position(self):
        doc = "ab"
        first, second = cs([(1, 1, "1")], doc), cs([(1, 1, "2")], doc)
        # `other` comes first by default; before=True puts `self` first.
        assert second.map(first).apply(first.apply(doc)) == "a12b"
        assert first.map(second, before=True).apply(second.apply(doc)) == "a12b"
        assert first.map(second).apply(second.apply(doc)) == "a21b"

    def test_over_empty(self):
        A = ChangeSet.of([(0, 1, "x")], 3)
        assert A.map(ChangeSet.empty(3)) is A
        assert ChangeSet.empty(3).map(A).to_json() == [3]

    def test_length_mismatch(self):
        with pytest.raises(ValueError, match="Mismatched"):
            ChangeSet.empty(3).map(ChangeSet.empty(4))

    def test_stale_agent_edit(self):
        """An agent edits revision R while a browser already changed the text: the REST flow."""
        base = "The hero walked.\nThe end."
        browser = ChangeSet.from_json([[3, "Our"], 22], utf16_len(base))  # "The" -> "Our"
        agent = cs([(9, 15, "ran")], base)  # "walked" -> "ran"
        assert not browser.touches_range(9, 15)
        current = browser.apply(base)
        assert agent.map(browser).apply(current) == "Our hero ran.\nThe end."
        # Edits whose range meets the browser's change, even only at an end, conflict (409).
        assert browser.touches_range(0, 3) is True
        assert browser.touches_range(1, 2) == "cover"
        assert browser.touches_range(3, 4) is True
        assert browser.touches_range(4, 8) is False


COMPOSE_CASES = [  # CodeMirror 6.7.6: doc, A, B (on A's result), A.compose(B), result
    ("abc", [1, [0, "XY"], 2], [2, [2, "Z"], 1], [1, [1, "XZ"], 1], "aXZc"),
    ("abcdef", [[3], 3], [[0, "Q"], 3], [[3], [0, "Q"], 3], "Qdef"),
    ("hello", [5, [0, " world"]], [[11, "bye"]], [[5, "bye"]], "bye"),
    (f"a{GRIN}", [1, [2, "é"]], [1, [1, "😀😀"]], [1, [2, "😀😀"]], "a😀😀"),
    ("xyz", [1, [0, "ab"], 2], [1, [1], 1, [0, "c"], 2], [1, [0, "bc"], 2], "xbcyz"),
]


class TestCompose:
    @pytest.mark.parametrize("doc, a, b, ab, result", COMPOSE_CASES)
    def test_matches_codemirror(self, doc, a, b, ab, result):
        A = ChangeSet.from_json(a, utf16_len(doc))
        B = ChangeSet.from_json(b, A.new_length)
        assert A.compose(B).to_json() == ab
        assert A.compose(B).apply(doc) == result == B.apply(A.apply(doc))

    def test_with_empty(self):
        A = ChangeSet.of([(0, 1, "x")], 3)
        assert A.compose(ChangeSet.empty(3)) is A
        assert ChangeSet.empty(3).compose(A) is A

    def test_length_mismatch(self):
        with pytest.raises(ValueError, match="Mismatched"):
            ChangeSet.of([(0, 0, "x")], 3).compose(ChangeSet.empty(3))

    def test_insert_then_delete_cancels(self):
        A = ChangeSet.of([(1, 1, "xyz")], 2)
        B = ChangeSet.of([(1, 4, "")], 5)
        assert A.compose(B).is_empty
        assert A.compose(B).apply("ab") == "ab"


class TestIteration:
    def test_iter_changes_and_gaps(self):
        c = ChangeSet.from_json([[2, "a"], [0, "b"], 1, [1], 2], 6)
        assert list(c.iter_changes()) == [(0, 2, 0, 2, "ab"), (3, 4, 3, 3, "")]
        assert list(c.iter_changes(individual=True)) == [
            (0, 2, 0, 1, "a"), (2, 2, 1, 2, "b"), (3, 4, 3, 3, "")]
        assert list(c.iter_gaps()) == [(2, 2, 1), (4, 3, 2)]


# --------------------------------------------------------------------------- properties

PROPS = settings(max_examples=200, deadline=None)

# Any Unicode except lone surrogates and "\r" (documents are stored with "\n" line breaks), with
# astral characters, combining marks and line breaks made common.
CHARS = st.one_of(
    st.characters(exclude_categories=("Cs",), exclude_characters="\r"),
    st.sampled_from(["a", "\n", GRIN, "\U0001D11E", "\u0301", "é", " "]),
)
TEXTS = st.text(CHARS, max_size=24)
INSERTS = st.text(CHARS, max_size=5)


@st.composite
def char_edits(draw, text):
    """Non-overlapping edits in code points (touching and same-position insertions allowed)."""
    count = draw(st.integers(0, 4))
    points = sorted(draw(st.lists(st.integers(0, len(text)), min_size=2 * count, max_size=2 * count)))
    edits = []
    for i in range(0, len(points), 2):
        start, end = points[i], points[i + 1]
        if draw(st.booleans()):
            end = start
        edits.append((start, end, draw(INSERTS)))
    return edits


def apply_char_edits(text, edits):
    """Reference: apply code-point edits, in sorted (stable) order, to a Python string."""
    out, pos = [], 0
    for start, end, insert in sorted(edits, key=lambda e: (e[0], e[1])):
        out += [text[pos:start], insert]
        pos = end
    return "".join(out) + text[pos:]


@st.composite
def changesets(draw, text):
    """(change set on `text`, resulting text). Sometimes a composition, for richer structure."""
    edits = draw(char_edits(text))
    changes, result = cs(edits, text), apply_char_edits(text, edits)
    if draw(st.booleans()):
        more = draw(char_edits(result))
        changes, result = changes.compose(cs(more, result)), apply_char_edits(result, more)
    return changes, result


@st.composite
def doc_and_changes(draw, n=1):
    text = draw(TEXTS)
    return (text, *[draw(changesets(text))[0] for _ in range(n)])


@PROPS
@given(st.data())
def test_prop_apply_and_json_round_trip(data):
    text = data.draw(TEXTS)
    edits = data.draw(char_edits(text))
    changes = cs(edits, text)
    expected = apply_char_edits(text, edits)
    assert changes.apply(text) == expected
    assert changes.length == utf16_len(text) and changes.new_length == utf16_len(expected)
    parsed = ChangeSet.from_json(json.loads(json.dumps(changes.to_json())), utf16_len(text))
    assert parsed == changes
    assert parsed.to_json() == changes.to_json()
    assert parsed.apply(text) == expected


@PROPS
@given(doc_and_changes(2))
def test_prop_map_converges(case):
    text, a, b = case
    via_a = b.map(a).apply(a.apply(text))
    via_b = a.map(b, before=True).apply(b.apply(text))
    assert via_a == via_b
    assert a.compose(b.map(a)).apply(text) == via_a == b.compose(a.map(b, True)).apply(text)
    # The mapped changes survive the wire.
    mapped = ChangeSet.from_json(json.loads(json.dumps(b.map(a).to_json())), a.new_length)
    assert mapped.apply(a.apply(text)) == via_a


@PROPS
@given(st.data())
def test_prop_compose(data):
    text = data.draw(TEXTS)
    a, middle = data.draw(changesets(text))
    b, end = data.draw(changesets(middle))
    assert a.apply(text) == middle
    composed = a.compose(b)
    assert composed.length == a.length and composed.new_length == b.new_length
    assert composed.apply(text) == end == b.apply(a.apply(text))


@PROPS
@given(doc_and_changes(1))
def test_prop_map_pos(case):
    text, changes = case
    old, new = units(text), units(changes.apply(text))
    n = changes.length
    for assoc in (-1, 1):
        mapped = [changes.map_pos(p, assoc) for p in range(n + 1)]
        assert mapped == sorted(mapped)  # monotonic
        assert all(0 <= m <= changes.new_length for m in mapped)
    assert changes.map_pos(0, -1) == 0 and changes.map_pos(n, 1) == changes.new_length
    assert all(changes.map_pos(p, -1) <= changes.map_pos(p, 1) for p in range(n + 1))
    # Unchanged text keeps its content at the mapped position.
    for pos_a, pos_b, length in changes.iter_gaps():
        for p in range(pos_a, pos_a + length):
            q = changes.map_pos(p, 1)
            assert q == pos_b + p - pos_a
            assert new[2 * q:2 * q + 2] == old[2 * p:2 * p + 2]
            assert changes.map_pos(p, 1, MapMode.TRACK_DEL) == q
            if p > pos_a:
                assert changes.map_pos(p, -1) == q
                assert not changes.touches_range(p)


@PROPS
@given(st.data())
def test_prop_untouched_range_maps_cleanly(data):
    """If later changes did not touch an agent's range, mapping its edit equals editing the mapped range."""
    text = data.draw(TEXTS)
    later = data.draw(changesets(text))[0]
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    insert = data.draw(INSERTS)
    agent = cs([(start, end, insert)], text)
    f16, t16 = index_to_utf16(text, start), index_to_utf16(text, end)
    current = later.apply(text)
    if later.touches_range(f16, t16):
        return
    mf, mt = later.map_pos(f16), later.map_pos(t16)
    assert later.map_pos(f16, 1) == mf and later.map_pos(t16, 1) == mt
    assert mt - mf == t16 - f16
    cf, ct = utf16_to_index(current, mf), utf16_to_index(current, mt)
    assert current[cf:ct] == text[start:end]
    assert agent.map(later).apply(current) == current[:cf] + insert + current[ct:]


@PROPS
@given(TEXTS)
def test_prop_utf16_conversions(text):
    n16 = utf16_len(text)
    assert n16 == len(text.encode("utf-16-le")) // 2
    for i in range(len(text) + 1):
        u = index_to_utf16(text, i)
        assert u == len(text[:i].encode("utf-16-le")) // 2
        assert utf16_to_index(text, u) == i
    raw = text.encode("utf-16-le")
    for u in range(n16 + 1):
        inside = u < n16 and 0xDC00 <= int.from_bytes(raw[2 * u:2 * u + 2], "little") <= 0xDFFF
        if inside:
            with pytest.raises(ValueError):
                utf16_to_index(text, u)
        else:
            assert index_to_utf16(text, utf16_to_index(text, u)) == u


@PROPS
@given(st.data())
def test_prop_edit_order_does_not_matter(data):
    text = data.draw(TEXTS)
    edits = data.draw(char_edits(text))
    positions = [start for start, end, _ in edits if start == end]
    if len(positions) != len(set(positions)):
        return  # insertions at one spot are ordered by the caller
    shuffled = data.draw(st.permutations(edits))
    assert cs(shuffled, text) == cs(edits, text)
