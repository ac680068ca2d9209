"""CodeMirror 6 change sets in pure Python (no Django).

A port of `ChangeSet` / `ChangeDesc` from @codemirror/state (src/change.ts, 6.x): the same section
representation, JSON form, position mapping, `map` (operational transformation) and `compose`, so the
server computes exactly what the browsers' `@codemirror/collab` computes.

Units: CodeMirror counts positions in UTF-16 code units; Python strings count code points. Every
position and length on `ChangeSet` is in UTF-16 units. Internally inserted text is kept as UTF-16-LE
bytes so that lengths, slices and concatenations behave exactly like JavaScript strings; conversion to
and from `str` happens at the edges (`from_json`/`of` in, `apply`/`to_json`/`iter_changes` out).
Agents speak code points: `edits_from_chars` converts their edits, `utf16_to_index`/`index_to_utf16`
convert single positions.

JSON form (`ChangeSet.toJSON`): a list whose items are either a number N (keep N units) or a list
`[len, *lines]` (replace `len` units with `"\\n".join(lines)`; `[len]` is a pure deletion). CodeMirror's
output never contains zero-length parts (`0`, `[0]`, `[0, ""]`: its `addSection` drops them), though it
may contain adjacent separate changes such as `[[2, "a"], [0, "b"]]`. `from_json` rejects zero-length
parts: CodeMirror's own `fromJSON` accepts them, but then its `map`/`compose` can throw on a zero-length
keep. Everything else is kept verbatim, so `to_json` gives back CodeMirror-produced JSON unchanged.

Line breaks: CodeMirror documents never contain "\\r" (strings are split on /\\r\\n?|\\n/). Lines in
JSON must therefore not contain "\\r" or "\\n", and `ChangeSet.of` normalises "\\r\\n" and "\\r" in
inserted text to "\\n", exactly like `ChangeSet.of` in CodeMirror. Documents stored on the server must
be normalised the same way (see `normalize_line_breaks`), or their lengths disagree with the browser's.
"""
from __future__ import annotations

import enum
import re
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, overload

__all__ = [
    "ChangeSet",
    "InvalidChangeSet",
    "MapMode",
    "edits_from_chars",
    "index_to_utf16",
    "map_positions",
    "normalize_line_breaks",
    "replay",
    "shift_ranges",
    "utf16_len",
    "utf16_to_index",
]

_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_LINE_BREAK = re.compile(r"\r\n?|\n")  # CodeMirror's DefaultSplit
_NL = "\n".encode("utf-16-le")


class InvalidChangeSet(ValueError):
    """A change set (or edit list) that is malformed or does not fit the document."""


class MapMode(enum.Enum):
    """How `ChangeSet.map_pos` treats deletions around the position (CodeMirror's `MapMode`)."""

    SIMPLE = 0  # always map to a valid position
    TRACK_DEL = 1  # None if a deletion happens across the position
    TRACK_BEFORE = 2  # None if the character before the position is deleted
    TRACK_AFTER = 3  # None if the character after the position is deleted


# --------------------------------------------------------------------------- UTF-16 <-> code points

def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Utf16Index:
    """Position conversions for one text, O(log n) each after an O(n) scan for astral characters."""

    __slots__ = ("length", "units", "_astral", "_starts")

    def __init__(self, text: str):
        self._astral = [m.start() for m in _ASTRAL.finditer(text)]  # code-point indexes
        # UTF-16 offset at which the k-th astral character starts.
        self._starts = [index + k for k, index in enumerate(self._astral)]
        self.length = len(text)
        self.units = len(text) + len(self._astral)

    def to_utf16(self, index: int) -> int:
        if not 0 <= index <= self.length:
            raise ValueError(f"character index {index} is out of range 0..{self.length}")
        return index + bisect_left(self._astral, index)

    def to_index(self, offset: int) -> int:
        if not 0 <= offset <= self.units:
            raise ValueError(f"UTF-16 offset {offset} is out of range 0..{self.units}")
        k = bisect_left(self._starts, offset)  # astral characters starting before `offset`
        if k and self._starts[k - 1] + 1 == offset:
            raise ValueError(f"UTF-16 offset {offset} falls inside a surrogate pair")
        return offset - k


def utf16_len(text: str) -> int:
    """Length of `text` in UTF-16 code units (what JavaScript's `.length` returns)."""
    return len(text) + len(_ASTRAL.findall(text))


def utf16_to_index(text: str, offset: int) -> int:
    """Code-point index of UTF-16 `offset` in `text`. ValueError when out of range or inside a pair."""
    if not _is_int(offset):
        raise TypeError("offset must be an int")
    return Utf16Index(text).to_index(offset)


def index_to_utf16(text: str, index: int) -> int:
    """UTF-16 offset of code-point `index` in `text`. ValueError when out of range."""
    if not _is_int(index):
        raise TypeError("index must be an int")
    return Utf16Index(text).to_utf16(index)


def normalize_line_breaks(text: str) -> str:
    """Replace "\\r\\n" and "\\r" by "\\n", as CodeMirror does when it loads a document."""
    return _LINE_BREAK.sub("\n", text)


def _encode(text: str) -> bytes:
    return text.encode("utf-16-le", "surrogatepass")


def _decode(data: bytes) -> str:
    # surrogatepass keeps lone surrogates (possible mid-composition, as in JavaScript) instead of failing.
    return data.decode("utf-16-le", "surrogatepass")


def _unit(data: bytes, pos: int) -> int:
    return data[2 * pos] | (data[2 * pos + 1] << 8)


def _splits_pair(data: bytes, pos: int) -> bool:
    return (0 < pos < len(data) // 2 and 0xD800 <= _unit(data, pos - 1) <= 0xDBFF
            and 0xDC00 <= _unit(data, pos) <= 0xDFFF)


def _check_line(line: str, where: str) -> bytes:
    if "\n" in line or "\r" in line:
        raise InvalidChangeSet(f"{where}: a line must not contain line breaks")
    try:
        return line.encode("utf-16-le")
    except UnicodeEncodeError:
        raise InvalidChangeSet(f"{where}: text contains a lone surrogate") from None


# --------------------------------------------------------------------------- section helpers (ports)

def _add_section(sections: list[int], length: int, ins: int, force_join: bool = False) -> None:
    if length == 0 and ins <= 0:
        return
    last = len(sections) - 2
    if last >= 0 and ins <= 0 and ins == sections[last + 1]:
        sections[last] += length
    elif last >= 0 and length == 0 and sections[last] == 0:
        sections[last + 1] += ins
    elif force_join:
        sections[last] += length
        sections[last + 1] += ins
    else:
        sections.append(length)
        sections.append(ins)


def _add_insert(values: list[bytes], sections: list[int], value: bytes) -> None:
    if not value:
        return
    index = (len(sections) - 2) >> 1
    if index < len(values):
        values[-1] = values[-1] + value
    else:
        values.extend([b""] * (index - len(values)))
        values.append(value)


class _SectionIter:
    __slots__ = ("sections", "inserted", "i", "len", "ins", "off")

    def __init__(self, changes: ChangeSet):
        self.sections = changes._sections
        self.inserted = changes._inserted
        self.i = 0
        self.next()

    def next(self) -> None:
        if self.i < len(self.sections):
            self.len = self.sections[self.i]
            self.ins = self.sections[self.i + 1]
            self.i += 2
        else:
            self.len = 0
            self.ins = -2
        self.off = 0

    @property
    def done(self) -> bool:
        return self.ins == -2

    @property
    def len2(self) -> int:
        return self.len if self.ins < 0 else self.ins

    @property
    def text(self) -> bytes:
        index = (self.i - 2) >> 1
        return b"" if index >= len(self.inserted) else self.inserted[index]

    def text_bit(self, length: int) -> bytes:
        index = (self.i - 2) >> 1
        if index >= len(self.inserted) and not length:
            return b""
        return self.inserted[index][2 * self.off:2 * (self.off + length)]

    def forward(self, length: int) -> None:
        if length == self.len:
            self.next()
        else:
            self.len -= length
            self.off += length

    def forward2(self, length: int) -> None:
        if self.ins == -1:
            self.forward(length)
        elif length == self.ins:
            self.next()
        else:
            self.ins -= length
            self.off += length


def _map_set(set_a: ChangeSet, set_b: ChangeSet, before: bool) -> ChangeSet:
    """`mapSet` from change.ts: a copy of set_a that applies after set_b (both start at one doc)."""
    sections: list[int] = []
    insert: list[bytes] = []
    a, b = _SectionIter(set_a), _SectionIter(set_b)
    inserted = -1
    while True:
        if (a.done and b.len) or (b.done and a.len):
            raise ValueError("Mismatched change set lengths")
        elif a.ins == -1 and b.ins == -1:
            length = min(a.len, b.len)
            _add_section(sections, length, -1)
            a.forward(length)
            b.forward(length)
        elif b.ins >= 0 and (a.ins < 0 or inserted == a.i
                             or (a.off == 0 and (b.len < a.len or (b.len == a.len and not before)))):
            # A change in B that comes first: skip over it (and over the changes in A it covers).
            length = b.len
            _add_section(sections, b.ins, -1)
            while length:
                piece = min(a.len, length)
                if a.ins >= 0 and inserted < a.i and a.len <= piece:
                    _add_section(sections, 0, a.ins)
                    _add_insert(insert, sections, a.text)
                    inserted = a.i
                a.forward(piece)
                length -= piece
            b.next()
        elif a.ins >= 0:
            # The part of a change in A up to the next non-deletion change in B.
            length, left = 0, a.len
            while left:
                if b.ins == -1:
                    piece = min(left, b.len)
                    length += piece
                    left -= piece
                    b.forward(piece)
                elif b.ins == 0 and b.len < left:
                    left -= b.len
                    b.next()
                else:
                    break
            _add_section(sections, length, a.ins if inserted < a.i else 0)
            if inserted < a.i:
                _add_insert(insert, sections, a.text)
            inserted = a.i
            a.forward(a.len - left)
        elif a.done and b.done:
            return ChangeSet._create(sections, insert)
        else:
            raise ValueError("Mismatched change set lengths")


def _compose_sets(set_a: ChangeSet, set_b: ChangeSet) -> ChangeSet:
    """`composeSets` from change.ts."""
    sections: list[int] = []
    insert: list[bytes] = []
    a, b = _SectionIter(set_a), _SectionIter(set_b)
    open_ = False
    while True:
        if a.done and b.done:
            return ChangeSet._create(sections, insert)
        elif a.ins == 0:  # deletion in A
            _add_section(sections, a.len, 0, open_)
            a.next()
        elif b.len == 0 and not b.done:  # insertion in B
            _add_section(sections, 0, b.ins, open_)
            _add_insert(insert, sections, b.text)
            b.next()
        elif a.done or b.done:
            raise ValueError("Mismatched change set lengths")
        else:
            length = min(a.len2, b.len)
            section_len = len(sections)
            if a.ins == -1:
                ins_b = -1 if b.ins == -1 else (0 if b.off else b.ins)
                _add_section(sections, length, ins_b, open_)
                if ins_b:
                    _add_insert(insert, sections, b.text)
            elif b.ins == -1:
                _add_section(sections, 0 if a.off else a.len, length, open_)
                _add_insert(insert, sections, a.text_bit(length))
            else:
                _add_section(sections, 0 if a.off else a.len, 0 if b.off else b.ins, open_)
                if not b.off:
                    _add_insert(insert, sections, b.text)
            open_ = ((a.ins > length or (b.ins >= 0 and b.len > length))
                     and (open_ or len(sections) > section_len))
            a.forward2(length)
            b.forward(length)


# --------------------------------------------------------------------------- ChangeSet

class ChangeSet:
    """An immutable CodeMirror change set. Positions and lengths are in UTF-16 code units.

    `_sections` is CodeMirror's flat list of pairs (length in the old document, -1 for kept text or
    the length of the replacement); `_inserted[i]` is the replacement text of section i (UTF-16-LE).
    """

    __slots__ = ("_sections", "_inserted")

    def __init__(self, sections: Sequence[int], inserted: Sequence[bytes]):
        # Internal: use from_json, of or empty.
        self._sections: tuple[int, ...] = tuple(sections)
        self._inserted: tuple[bytes, ...] = tuple(inserted)

    @classmethod
    def _create(cls, sections: Sequence[int], inserted: Sequence[bytes]) -> ChangeSet:
        return cls(sections, inserted)

    # ---- construction

    @classmethod
    def empty(cls, length: int) -> ChangeSet:
        """A change set that keeps a document of `length` units unchanged."""
        if not _is_int(length) or length < 0:
            raise ValueError("length must be a non-negative int")
        return cls([length, -1] if length else [], [])

    @classmethod
    def from_json(cls, data: Any, doc_length: int) -> ChangeSet:
        """Parse `ChangeSet.toJSON()` output and check it fits a document of `doc_length` units."""
        if not isinstance(data, list):
            raise InvalidChangeSet("changes must be a JSON array")
        sections: list[int] = []
        inserted: list[bytes] = []
        total = 0
        for i, part in enumerate(data):
            if _is_int(part):
                if part <= 0:
                    raise InvalidChangeSet(f"changes[{i}]: a kept length must be positive")
                sections += (part, -1)
                total += part
            elif isinstance(part, list):
                if not part or not _is_int(part[0]) or part[0] < 0:
                    raise InvalidChangeSet(f"changes[{i}]: must start with a non-negative integer length")
                if part[0] == 0 and (len(part) == 1 or part[1:] == [""]):
                    raise InvalidChangeSet(f"changes[{i}]: change replaces nothing with nothing")
                if len(part) == 1:
                    sections += (part[0], 0)
                else:
                    lines = []
                    for j, line in enumerate(part[1:], 1):
                        if not isinstance(line, str):
                            raise InvalidChangeSet(f"changes[{i}][{j}]: inserted lines must be strings")
                        lines.append(_check_line(line, f"changes[{i}][{j}]"))
                    text = _NL.join(lines)
                    inserted.extend([b""] * (i - len(inserted)))
                    inserted.append(text)
                    sections += (part[0], len(text) // 2)
                total += part[0]
            else:
                raise InvalidChangeSet(f"changes[{i}]: expected a length or an array [length, ...lines]")
        if total != doc_length:
            raise InvalidChangeSet(f"changes cover {total} units but the document has {doc_length}")
        return cls(sections, inserted)

    @classmethod
    def of(cls, edits: Sequence[tuple[int, int, str]], doc_length: int) -> ChangeSet:
        """Changes from `(from, to, insert)` edits in UTF-16 units of the original document.

        Edits are sorted by position (stable, so insertions at one position keep their order and go
        before a replacement starting there) and must not overlap; touching edits are fine. Line breaks
        in `insert` are normalised to "\\n". Same result as CodeMirror's `ChangeSet.of`.
        """
        if not _is_int(doc_length) or doc_length < 0:
            raise InvalidChangeSet("document length must be a non-negative int")
        checked: list[tuple[int, int, bytes]] = []
        for n, edit in enumerate(edits):
            if not isinstance(edit, (tuple, list)) or len(edit) != 3:
                raise InvalidChangeSet(f"edit {n}: expected (from, to, insert)")
            start, end, text = edit
            if not (_is_int(start) and _is_int(end)):
                raise InvalidChangeSet(f"edit {n}: from and to must be integers")
            if not isinstance(text, str):
                raise InvalidChangeSet(f"edit {n}: insert must be a string")
            if not 0 <= start <= end <= doc_length:
                raise InvalidChangeSet(
                    f"edit {n}: invalid range {start} to {end} (in a document of length {doc_length})")
            try:
                data = normalize_line_breaks(text).encode("utf-16-le")
            except UnicodeEncodeError:
                raise InvalidChangeSet(f"edit {n}: insert contains a lone surrogate") from None
            checked.append((start, end, data))
        checked.sort(key=lambda e: (e[0], e[1]))
        sections: list[int] = []
        inserted: list[bytes] = []
        pos = 0
        for start, end, data in checked:
            if start < pos:
                raise InvalidChangeSet(f"edits overlap at {start}")
            if start == end and not data:
                continue
            if start > pos:
                _add_section(sections, start - pos, -1)
            _add_section(sections, end - start, len(data) // 2)
            _add_insert(inserted, sections, data)
            pos = end
        if pos < doc_length:
            _add_section(sections, doc_length - pos, -1)
        return cls(sections, inserted)

    # ---- serialisation

    def to_json(self) -> list[int | list[int | str]]:
        """CodeMirror's `toJSON()` form."""
        parts: list[int | list[int | str]] = []
        for i in range(0, len(self._sections), 2):
            length, ins = self._sections[i], self._sections[i + 1]
            if ins < 0:
                parts.append(length)
            elif ins == 0:
                parts.append([length])
            else:
                parts.append([length, *_decode(self._inserted[i >> 1]).split("\n")])
        return parts

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ChangeSet):
            return NotImplemented
        return self._sections == other._sections and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(self._sections)

    def __repr__(self) -> str:
        return f"ChangeSet({self.to_json()!r})"

    # ---- properties

    @property
    def length(self) -> int:
        """Length of the document before the change (UTF-16 units)."""
        return sum(self._sections[0::2])

    @property
    def new_length(self) -> int:
        """Length of the document after the change (UTF-16 units)."""
        pairs = zip(self._sections[0::2], self._sections[1::2])
        return sum(length if ins < 0 else ins for length, ins in pairs)

    @property
    def is_empty(self) -> bool:
        """True when there are no changes (CodeMirror's `empty`)."""
        return not self._sections or (len(self._sections) == 2 and self._sections[1] < 0)

    # ---- iteration

    def iter_gaps(self) -> Iterator[tuple[int, int, int]]:
        """Unchanged ranges as (pos_a, pos_b, length): position in the old and in the new document."""
        pos_a = pos_b = 0
        for i in range(0, len(self._sections), 2):
            length, ins = self._sections[i], self._sections[i + 1]
            if ins < 0:
                yield pos_a, pos_b, length
                pos_b += length
            else:
                pos_b += ins
            pos_a += length

    def _iter_changes(self, individual: bool) -> Iterator[tuple[int, int, int, int, bytes]]:
        sections, inserted = self._sections, self._inserted
        pos_a = pos_b = i = 0
        while i < len(sections):
            length, ins = sections[i], sections[i + 1]
            i += 2
            if ins < 0:
                pos_a += length
                pos_b += length
                continue
            end_a, end_b, text = pos_a, pos_b, b""
            while True:
                end_a += length
                end_b += ins
                index = (i - 2) >> 1
                if ins and index < len(inserted):
                    text += inserted[index]
                if individual or i == len(sections) or sections[i + 1] < 0:
                    break
                length, ins = sections[i], sections[i + 1]
                i += 2
            yield pos_a, end_a, pos_b, end_b, text
            pos_a, pos_b = end_a, end_b

    def iter_changes(self, individual: bool = False) -> Iterator[tuple[int, int, int, int, str]]:
        """Changed ranges as (from_a, to_a, from_b, to_b, inserted text), UTF-16 positions.

        Adjacent changes are merged unless `individual` is true (as in CodeMirror's iterChanges).
        """
        for from_a, to_a, from_b, to_b, text in self._iter_changes(individual):
            yield from_a, to_a, from_b, to_b, _decode(text)

    # ---- operations

    def apply(self, text: str) -> str:
        """Apply to `text` (a Python str whose UTF-16 length must equal `length`)."""
        try:
            data = text.encode("utf-16-le")
        except UnicodeEncodeError:
            raise ValueError("document contains a lone surrogate") from None
        out = self._apply_units(data)
        if out is data:
            return text
        try:
            return out.decode("utf-16-le")
        except UnicodeDecodeError:
            raise InvalidChangeSet("the change leaves a lone surrogate in the document") from None

    def _apply_units(self, data: bytes) -> bytes:
        """`apply` on UTF-16-LE bytes (no decoding: `replay` decodes once at the end)."""
        units = len(data) // 2
        if units != self.length:
            raise InvalidChangeSet(
                f"change set applies to a document of length {self.length}, this one has {units}")
        out: list[bytes] = []
        pos = 0
        for from_a, to_a, _from_b, _to_b, inserted in self._iter_changes(False):
            for edge in (from_a, to_a):
                if _splits_pair(data, edge):
                    raise InvalidChangeSet(f"change boundary {edge} splits a surrogate pair")
            out.append(data[2 * pos:2 * from_a])
            out.append(inserted)
            pos = to_a
        if not out:
            return data
        out.append(data[2 * pos:])
        return b"".join(out)

    @overload
    def map_pos(self, pos: int, assoc: int = -1) -> int: ...

    @overload
    def map_pos(self, pos: int, assoc: int, mode: MapMode) -> int | None: ...

    def map_pos(self, pos: int, assoc: int = -1, mode: MapMode = MapMode.SIMPLE) -> int | None:
        """Map an old-document position to the new document (CodeMirror's `mapPos`).

        assoc < 0 (default) sticks to the character before: the position stays before insertions at
        it. assoc > 0 sticks to the character after. In a tracking `mode`, None when the position's
        context was deleted.
        """
        if not _is_int(pos) or pos < 0:
            raise ValueError(f"position {pos!r} is not a non-negative int")
        pos_a = pos_b = 0
        sections = self._sections
        for i in range(0, len(sections), 2):
            length, ins = sections[i], sections[i + 1]
            end_a = pos_a + length
            if ins < 0:
                if end_a > pos:
                    return pos_b + (pos - pos_a)
                pos_b += length
            else:
                if mode is not MapMode.SIMPLE and end_a >= pos and (
                        (mode is MapMode.TRACK_DEL and pos_a < pos < end_a)
                        or (mode is MapMode.TRACK_BEFORE and pos_a < pos)
                        or (mode is MapMode.TRACK_AFTER and end_a > pos)):
                    return None
                if end_a > pos or (end_a == pos and assoc < 0 and not length):
                    return pos_b if pos == pos_a or assoc < 0 else pos_b + ins
                pos_b += ins
            pos_a = end_a
        if pos > pos_a:
            raise ValueError(f"Position {pos} is out of range for changeset of length {pos_a}")
        return pos_b

    def touches_range(self, from_: int, to: int | None = None) -> bool | Literal["cover"]:
        """Whether a change touches [from_, to] (inclusive: changes ending at `from_` or starting
        at `to`, and insertions at either end, count). "cover" when one change spans the whole range
        strictly inside it. CodeMirror's `touchesRange`.
        """
        if to is None:
            to = from_
        pos = 0
        sections = self._sections
        for i in range(0, len(sections), 2):
            if pos > to:
                break
            length, ins = sections[i], sections[i + 1]
            end = pos + length
            if ins >= 0 and pos <= to and end >= from_:
                return "cover" if pos < from_ and end > to else True
            pos = end
        return False

    def map(self, other: ChangeSet, before: bool = False) -> ChangeSet:
        """This change rebased over `other` (both starting from the same document), so it applies to
        the document `other` produces. At a shared insertion point `other`'s insertion goes first,
        unless `before` is true. `A.compose(B.map(A))` and `B.compose(A.map(B, True))` converge.
        """
        if other.length != self.length:
            raise ValueError(f"Mismatched change set lengths ({self.length} and {other.length})")
        return self if other.is_empty else _map_set(self, other, before)

    def compose(self, other: ChangeSet) -> ChangeSet:
        """One change set doing this change then `other` (which starts from this one's result)."""
        if other.length != self.new_length:
            raise ValueError(
                f"Mismatched change set lengths (new length {self.new_length}, next length {other.length})")
        if self.is_empty:
            return other
        if other.is_empty:
            return self
        return _compose_sets(self, other)


# --------------------------------------------------------------------------- agents (code points)

def edits_from_chars(text: str, edits: Any) -> list[tuple[int, int, str]]:
    """Convert agent edits `[{"from": a, "to": b, "insert": s}]` (code-point positions in `text`) to
    `(from, to, insert)` in UTF-16 units, for `ChangeSet.of(..., utf16_len(text))`.

    `to` defaults to `from` and `insert` to "" (as in CodeMirror's change specs); other keys are
    rejected. Overlaps are left to `ChangeSet.of`.
    """
    if not isinstance(edits, list):
        raise InvalidChangeSet("edits must be a list")
    index = Utf16Index(text)
    out: list[tuple[int, int, str]] = []
    for n, edit in enumerate(edits):
        if not isinstance(edit, Mapping):
            raise InvalidChangeSet(f"edits[{n}]: expected an object with from, to and insert")
        unknown = set(edit) - {"from", "to", "insert"}
        if unknown:
            raise InvalidChangeSet(f"edits[{n}]: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        if "from" not in edit:
            raise InvalidChangeSet(f"edits[{n}]: 'from' is required")
        start = edit["from"]
        end = edit.get("to", start)
        insert = edit.get("insert", "")
        if not (_is_int(start) and _is_int(end)):
            raise InvalidChangeSet(f"edits[{n}]: 'from' and 'to' must be integers")
        if not isinstance(insert, str):
            raise InvalidChangeSet(f"edits[{n}]: 'insert' must be a string")
        if not 0 <= start <= end <= index.length:
            raise InvalidChangeSet(
                f"edits[{n}]: invalid range {start} to {end} (the text has {index.length} characters)")
        out.append((index.to_utf16(start), index.to_utf16(end), insert))
    return out


# --------------------------------------------------------------------------- server helpers

REPLAY_FLUSH_SECTIONS = 4096  # `replay` applies what it composed once it has this many sections


def replay(text: str, changes: Iterable[Any]) -> tuple[str, int]:
    """`text` after the change sets `changes` (JSON form, each made against the result of the
    ones before), and how many were replayed.

    The changes are composed (cost: their own size, not the document's) and applied together, so
    rebuilding a revision of a large document costs about one `apply` instead of one per change;
    what is composed is applied whenever it grows past REPLAY_FLUSH_SECTIONS sections, so that
    many large change sets never make composing quadratic. The text is encoded and decoded once.
    """
    try:
        data = text.encode("utf-16-le")
    except UnicodeEncodeError:
        raise ValueError("document contains a lone surrogate") from None
    length, count = len(data) // 2, 0
    # Composed like a binary counter (a run of 2^k changes is composed with the run of 2^k before
    # it), so each change's sections take part in O(log n) compositions, not in every later one.
    runs: list[tuple[int, ChangeSet]] = []
    sections = 0
    for item in changes:
        cs = ChangeSet.from_json(item, length)
        length = cs.new_length
        count += 1
        run = (1, cs)
        sections += len(cs._sections)
        while runs and runs[-1][0] == run[0]:
            size, before = runs.pop()
            sections -= len(before._sections) + len(run[1]._sections)
            run = (size + run[0], before.compose(run[1]))
            sections += len(run[1]._sections)
        runs.append(run)
        if sections > 2 * REPLAY_FLUSH_SECTIONS:
            data, runs, sections = _fold(runs)._apply_units(data), [], 0
    if runs:
        data = _fold(runs)._apply_units(data)
    try:
        return data.decode("utf-16-le"), count
    except UnicodeDecodeError:
        raise InvalidChangeSet("the changes leave a lone surrogate in the document") from None


def _fold(runs: list[tuple[int, ChangeSet]]) -> ChangeSet:
    composed = runs[0][1]
    for _, cs in runs[1:]:
        composed = composed.compose(cs)
    return composed


def shift_ranges(changes: ChangeSet, ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]] | None:
    """`ranges` (sorted, not overlapping, positions in the document `changes` starts from) in the
    document it produces, or None when a change touches one of them (as `touches_range`:
    inclusive, an insertion at either end counts). One pass over both, O(ranges + sections), where
    `touches_range` and `map_pos` per range would cost O(ranges x sections).

    An untouched range has no change inside it or at its edges, so it only moves by what the
    changes before it added or removed (what `map_pos` gives with either `assoc`).
    """
    sections = changes._sections
    n, i, pos, delta = len(sections), 0, 0, 0
    out: list[tuple[int, int]] = []
    for start, end in ranges:
        while i < n:
            length, ins = sections[i], sections[i + 1]
            if ins >= 0 and pos + length >= start:
                break  # the first change that does not end before the range
            if ins >= 0:
                delta += ins - length
            pos += length
            i += 2
        if i < n and pos <= end:
            return None  # it ends at or after `start` and starts at or before `end`
        out.append((start + delta, end + delta))
    return out


def map_positions(changes: ChangeSet, positions: Sequence[tuple[int, int]]) -> list[int]:
    """`[changes.map_pos(pos, assoc) for pos, assoc in positions]` (MapMode.SIMPLE) in one walk
    over the sections: O(sections + P log P) where a `map_pos` per position costs O(P x sections).
    `positions` need not be sorted; the answers come back in their order. ValueError, as `map_pos`,
    for a position that is negative, not an int or past the end of the document.

    The section at which `map_pos` stops for (pos, assoc) never comes before the one for a smaller
    pos, or for the same pos with assoc < 0, so the positions are visited in (pos, assoc) order.
    """
    for pos, _ in positions:
        if not _is_int(pos) or pos < 0:
            raise ValueError(f"position {pos!r} is not a non-negative int")
    order = sorted(range(len(positions)), key=lambda k: (positions[k][0], positions[k][1] >= 0))
    out = [0] * len(positions)
    sections = changes._sections
    n, i, pos_a, pos_b = len(sections), 0, 0, 0
    for k in order:
        pos, assoc = positions[k]
        while i < n:
            length, ins = sections[i], sections[i + 1]
            end_a = pos_a + length
            if ins < 0:
                if end_a > pos:
                    out[k] = pos_b + (pos - pos_a)
                    break
                pos_b += length
            else:
                if end_a > pos or (end_a == pos and assoc < 0 and not length):
                    out[k] = pos_b if pos == pos_a or assoc < 0 else pos_b + ins
                    break
                pos_b += ins
            pos_a = end_a
            i += 2
        else:
            if pos > pos_a:
                raise ValueError(f"Position {pos} is out of range for changeset of length {pos_a}")
            out[k] = pos_b
    return out
