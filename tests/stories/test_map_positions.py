"""`map_positions`: many positions through one change set in one walk, exactly as `map_pos` maps
each (stories/changesets.py)."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stories.changesets import ChangeSet, map_positions

from .test_changesets import PROPS, TEXTS, changesets


@PROPS
@given(st.data())
def test_prop_map_positions_equals_map_pos(data):
    text = data.draw(TEXTS)
    changes = data.draw(changesets(text))[0]
    if data.draw(st.booleans()):  # sometimes a composition of two
        changes = changes.compose(data.draw(changesets(changes.apply(text)))[0])
    n = changes.length
    positions = data.draw(st.lists(st.tuples(st.integers(0, n), st.sampled_from([-1, 1])), max_size=30))
    assert map_positions(changes, positions) == [changes.map_pos(p, a) for p, a in positions]
    every = [(p, a) for p in range(n + 1) for a in (1, -1)]
    assert map_positions(changes, every) == [changes.map_pos(p, a) for p, a in every]


def test_insertions_and_deletions_at_a_position():
    changes = ChangeSet.from_json([2, [0, "xy"], [0, "z"], [2], 1, [1, "q"]], 6)
    every = [(p, a) for p in range(7) for a in (-1, 1)]
    assert map_positions(changes, every[::-1]) == [changes.map_pos(p, a) for p, a in every[::-1]]
    assert map_positions(changes, []) == []
    assert map_positions(ChangeSet.empty(0), [(0, 1), (0, -1)]) == [0, 0]


def test_positions_out_of_range_are_refused_like_map_pos():
    changes = ChangeSet.from_json([3, [0, "a"]], 3)
    with pytest.raises(ValueError, match="out of range"):
        map_positions(changes, [(1, 1), (4, -1)])
    for bad in (-1, "1", True):
        with pytest.raises(ValueError):
            map_positions(changes, [(bad, 1)])
