#!/usr/bin/env python
"""The cost of mapping an outline's ranges through one push of 10,000 changes (review 15, P1).

    .venv/bin/python bench/outline_map.py

A 40,000-unit document and one change set of 10,000 one-character inserts (the most one push may
hold, MYTHLINE_DOC_MAX_PUSH_CHANGES), with 500 scene ranges (MYTHLINE_OUTLINE_MAX_SCENES) near
its end. "old" maps each range with two `map_pos` calls (each walks the sections up to the
position: what outline reads did per scene), "new" maps all 500 with `outline.selectors.map_ranges`
(one walk, `stories.changesets.map_positions`). Pure Python, no database.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mythline_site.settings")
import django  # noqa: E402

django.setup()
from outline.selectors import map_ranges  # noqa: E402
from stories.changesets import ChangeSet  # noqa: E402

L = 40000
parts = []
for _ in range(10000):
    parts += [3, [0, "y"]]
parts.append(L - 30000)
cs = ChangeSet.from_json(parts, L)
ranges = [(30000 + 19 * s, 30005 + 19 * s, False) for s in range(500)]
t0 = time.perf_counter()
for s in range(50):
    cs.map_pos(ranges[s][0], 1), cs.map_pos(ranges[s][1], -1)
old = (time.perf_counter() - t0) / 50 * 500
t0 = time.perf_counter()
for _ in range(5):
    map_ranges(cs, ranges)
new = (time.perf_counter() - t0) / 5
print("500 scenes through one 10k-change push: old %.0f ms, new %.1f ms (%.0fx); x99 pushes: old %.0f s, new %.2f s"
      % (old * 1000, new * 1000, old / new, old * 99, new * 99))
