#!/usr/bin/env python
"""The cost of co-editing's worst requests, in-process on a fresh SQLite database (issue 14).

    .venv/bin/python bench/coedit_bounds.py                       # this tree
    .venv/bin/python bench/coedit_bounds.py --tree /tmp/before    # another checkout (e.g. `git archive`)

A 1.9 M character document is edited 100 times (browser pushes near its start), then:

1. **Stale edit**: one REST edit of 6,000 one-character inserts against `base_revision: 0`
   (100 revisions behind), while another thread writes to an unrelated story every few
   milliseconds; reported: the edit's time, and the longest the unrelated write waited (on
   SQLite the document's row lock is the database's write lock). Where the tree caps edits and
   lag (MYTHLINE_DOC_MAX_EDITS, MYTHLINE_DOC_MAX_LAG), the same is measured at the caps: 1,000
   edits, 100 revisions behind.
2. **Old revision**: `GET .../documents/big?revision=97` against the current one (median of 5).
3. **Forks**: five forks at revision 97: time and database growth; then forks until refused.

Prints one JSON line `BENCH-COEDIT-BOUNDS {...}`. Only a temp dir is written, and removed.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", default=str(Path(__file__).resolve().parent.parent),
                        help="the project tree to import (default: this one)")
    parser.add_argument("--chars", type=int, default=1_900_000)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="coedit-bounds-")
    try:
        print("BENCH-COEDIT-BOUNDS " + json.dumps(run(Path(args.tree), Path(tmp), args.chars)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(tree: Path, tmp: Path, chars: int) -> dict:
    sys.path.insert(0, str(tree))
    os.environ.update({"DJANGO_SETTINGS_MODULE": "mythline_site.settings", "MYTHLINE_VAR_DIR": str(tmp),
                       "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}", "ALLOWED_HOSTS": "testserver",
                       "MYTHLINE_READ_BURST": "100000", "MYTHLINE_POST_BURST": "100000",
                       "MYTHLINE_WRITE_BURST": "100000"})
    os.environ.pop("REDIS_URL", None)
    import django
    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import OperationalError, connection, transaction
    from rest_framework.test import APIClient

    from accounts.models import User
    from mythline_site.errors import MythlineError
    from stories import documents
    from stories.changesets import ChangeSet, utf16_len
    from stories.models import Document, Story
    from stories.services import story_create

    call_command("migrate", verbosity=0)
    alice = User.objects.create_user("alice", password="x" * 12)
    bob = User.objects.create_user("bob", password="x" * 12)
    story = story_create(owner=alice, slug="bench", title="Bench")
    other = story_create(owner=bob, slug="other", title="Other")
    rng = random.Random(7)
    words = ["the ", "sea ", "wolf ", "ash ", "king ", "and ", "moon ", "ember\n"]
    text = "".join(rng.choice(words) for _ in range(chars // 4))[:chars]
    doc = documents.document_create(story=story, creator=alice, name="big", text=text)
    for _ in range(100):  # the browsers' edits, near the start
        doc.refresh_from_db()
        at = rng.randrange(0, 1000)
        cs = ChangeSet.of([(at, at, "x")], utf16_len(doc.text))
        documents.document_push(doc=doc, author=alice, revision=doc.revision, changes=cs.to_json())
    doc.refresh_from_db()
    out = {"tree": str(tree), "chars": len(doc.text), "revision": doc.revision,
           "snapshot_every": settings.MYTHLINE_DOC_SNAPSHOT_EVERY,
           "caps": {k: getattr(settings, k, None) for k in (
               "MYTHLINE_DOC_MAX_EDITS", "MYTHLINE_DOC_MAX_PUSH_CHANGES", "MYTHLINE_DOC_MAX_LAG",
               "MYTHLINE_STORY_MAX_DOCUMENTS", "MYTHLINE_STORY_MAX_FORKS")}}

    def stale_edit(n_edits: int, base: int) -> dict:
        """One REST edit of `n_edits` inserts far from the browsers' edits, made at `base`, while a
        thread writes to another story; the longest of those writes is what the edit made others wait."""
        base_len = len(documents.text_at(doc, base))
        positions = sorted(rng.sample(range(5000, base_len), n_edits))
        body = {"base_revision": base, "edits": [{"from": p, "to": p, "insert": "y"} for p in positions]}
        waits, timeouts, done = [], [], threading.Event()

        def writer():
            try:
                while not done.is_set():
                    started = time.perf_counter()
                    try:
                        with transaction.atomic():
                            Story.objects.filter(pk=other.pk).update(title=f"Other {started}")
                    except OperationalError:  # "database is locked": waited the whole busy timeout
                        timeouts.append(1)
                    waits.append(time.perf_counter() - started)
                    done.wait(0.005)
            finally:
                connection.close()

        thread = threading.Thread(target=writer)
        thread.start()
        while not waits:  # the writer runs before the edit starts
            time.sleep(0.001)
        started = time.perf_counter()
        try:
            change = documents.document_edit(doc=Document.objects.get(pk=doc.pk), author=alice, body=body)
            result = {"status": 200, "revision": change.revision}
        except MythlineError as error:
            result = {"status": error.status, "code": error.code}
        result["seconds"] = round(time.perf_counter() - started, 3)
        done.set()
        thread.join()
        result["other_write_max_wait_s"] = round(max(waits), 3)
        result["other_write_timeouts"] = len(timeouts)  # refused after SQLite's 30 s busy timeout
        return result

    out["stale_edit_6000_base0"] = stale_edit(6000, 0)
    doc.refresh_from_db()
    if out["caps"]["MYTHLINE_DOC_MAX_EDITS"]:
        out["stale_edit_at_caps"] = stale_edit(settings.MYTHLINE_DOC_MAX_EDITS,
                                               doc.revision - min(100, settings.MYTHLINE_DOC_MAX_LAG))
        doc.refresh_from_db()

    client = APIClient()
    client.force_authenticate(alice)

    def get_seconds(**params) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            response = client.get("/api/stories/bench/documents/big", params)
            assert response.status_code == 200, response.content[:300]
            times.append(time.perf_counter() - started)
        return round(statistics.median(times), 4)

    current, old = get_seconds(), get_seconds(revision=97)
    out["get_current_s"], out["get_revision_97_s"], out["get_old_over_current"] = current, old, round(old / current, 2)

    def db_bytes() -> int:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cursor.execute("PRAGMA page_count")
            pages = cursor.fetchone()[0]
            cursor.execute("PRAGMA freelist_count")
            free = cursor.fetchone()[0]
            cursor.execute("PRAGMA page_size")
            return (pages - free) * cursor.fetchone()[0]

    before, started = db_bytes(), time.perf_counter()
    for i in range(5):
        documents.document_create(story=story, creator=alice, name=f"fork{i}", fork_of=doc, at_revision=97)
    out["five_forks_s"] = round(time.perf_counter() - started, 3)
    out["five_forks_db_growth_mb"] = round((db_bytes() - before) / 1e6, 1)
    made = 5
    while made < 30:  # the tree without a cap: stop at 30
        try:
            documents.document_create(story=story, creator=alice, name=f"fork{made}", fork_of=doc, at_revision=97)
        except MythlineError as error:
            out["forks_refused_after"] = {"forks": made, "code": error.code}
            break
        made += 1
    else:
        out["forks_refused_after"] = None
    return out


if __name__ == "__main__":
    main()
