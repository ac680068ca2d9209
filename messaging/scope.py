"""One batch's scope: what the writes of a batch of messages collect while they are stored, handed
over once on the way out of the batch's block (messaging.services._post_batch).

Two apps use it: loops keeps the batch's loop keys with one on_commit hook (loops.one_commit_hook),
webhooks inserts the batch's deliveries with one INSERT and looks each agent's webhook up once
(webhooks.one_batch). An entry added inside a savepoint that rolls back is dropped, as Django drops
an on_commit hook registered there: the entries added under the same open savepoints share a no-op
on_commit marker, and only those whose marker is still pending when the block ends are handed over
(outside any savepoint, as a request's batch is, there is no marker: nothing to roll back alone).
"""
from collections.abc import Callable
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import connection, transaction
from django.db.transaction import TransactionManagementError


def _marker() -> None:
    """An entry's on_commit marker: pending while the entry's savepoints stand (it does nothing)."""


class BatchScope:
    """`with scope.open():` collects `scope.add(entry)` calls made within (in the same context) and
    calls `flush(entries)` once on the way out, with the entries still standing, in the order they
    were added; not when the block raised (its transaction does not commit). Nested: the outermost
    one flushes. `scope.state()` is a dict kept for the block (lookups worth doing once per
    batch), None outside one. Open it inside the transaction that stores the batch (in
    `transaction.atomic()`): outside one, a commit or rollback within the block would end what
    the entries depend on before they are handed over, and it refuses to open."""

    def __init__(self, name: str, flush: Callable[[list], None]):
        self._open: ContextVar[dict | None] = ContextVar(name, default=None)
        self._flush = flush

    def state(self) -> dict | None:
        scope = self._open.get()
        return None if scope is None else scope["state"]

    def add(self, entry) -> bool:
        """Collect `entry` for the flush; False (nothing kept) outside a block."""
        scope = self._open.get()
        if scope is None:
            return False
        marker = None
        if connection.in_atomic_block and connection.savepoint_ids:
            # One marker for the entries added under the same open savepoints.
            stack = tuple(connection.savepoint_ids)
            marker = scope["markers"].get(stack)
            if marker is None:
                marker = scope["markers"][stack] = lambda: _marker()  # noqa: E731 - found by identity
                transaction.on_commit(marker)
        scope["entries"].append((marker, entry))
        return True

    @contextmanager
    def open(self):
        if not connection.in_atomic_block:
            raise TransactionManagementError("A batch scope opens inside the transaction that stores the batch.")
        if self._open.get() is not None:
            yield
            return
        scope = {"state": {}, "entries": [], "markers": {}}
        token = self._open.set(scope)
        try:
            yield
        finally:
            self._open.reset(token)
        entries = _standing(scope["entries"])
        if entries:
            self._flush(entries)


def _standing(entries: list) -> list:
    """The entries not added inside a savepoint that rolled back since (their marker is gone)."""
    if all(marker is None for marker, _entry in entries):
        return [entry for _marker, entry in entries]
    pending = {id(func) for _sids, func, _robust in connection.run_on_commit}
    return [entry for marker, entry in entries if marker is None or id(marker) in pending]
