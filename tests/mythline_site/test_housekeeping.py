"""The garbage-collection policy of each server process (mythline_site/housekeeping.py)."""
import asyncio
import gc
import weakref

from mythline_site.housekeeping import gc_loop, gc_step


class Node:
    pass


def test_a_freeze_keeps_live_objects_out_of_full_collections_and_a_full_step_frees_frozen_cycles():
    gc.unfreeze()
    try:
        cycle = Node()
        cycle.me = cycle
        alive = weakref.ref(cycle)
        gc_step(full=False)
        assert gc.get_freeze_count() > 0
        del cycle
        gc.collect()
        assert alive() is not None  # frozen: a full collection does not even look at it
        gc_step(full=True)
        assert alive() is None  # the periodic full step frees what died while frozen
        assert gc.get_freeze_count() > 0  # and freezes what is alive again
    finally:
        gc.unfreeze()


def test_the_loop_freezes_on_its_clock(settings):
    settings.MYTHLINE_GC_FREEZE_SECONDS = 0.01
    settings.MYTHLINE_GC_FULL_SECONDS = 3600
    gc.unfreeze()

    async def go():
        task = asyncio.ensure_future(gc_loop())
        try:
            async with asyncio.timeout(5):
                while gc.get_freeze_count() == 0:
                    await asyncio.sleep(0.01)
        finally:
            task.cancel()
    try:
        asyncio.run(go())
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
