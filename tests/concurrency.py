"""Callers at once, for the races that only PostgreSQL shows (SQLite serialises write transactions)."""
import threading

import pytest
from django.db import connection, connections


def at_once(n, call):
    """Run `call(i)` on n threads released together; each holds an open database connection
    before the barrier, so none is slowed by connecting. Returns (results, errors) in order."""
    barrier = threading.Barrier(n, timeout=30)
    results, errors = [None] * n, [None] * n

    def run(i):
        try:
            connections["default"].ensure_connection()
            barrier.wait()
            results[i] = call(i)
        except Exception as exc:  # noqa: BLE001 - every failure is reported by the test
            errors[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    return results, errors


def postgres_only() -> None:
    """These races exist on PostgreSQL only (SQLite runs each write transaction as BEGIN IMMEDIATE):
    skip on SQLite, where CI's embedded run is; CI's Postgres run has them."""
    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL race (DATABASE_URL=postgres://...); this run is on SQLite")


def postgres_race(settings) -> None:
    """For a race test: PostgreSQL only, and rate limits out of the way of N requests at once."""
    postgres_only()
    rate = ("1000/s", 1000)
    settings.MYTHLINE_RATES = {"post": rate, "write": rate, "read": rate}


def bearer_clients(users, n):
    """n API clients, each with its own fresh token of users[i % len(users)]."""
    from rest_framework.test import APIClient

    from accounts.services import token_issue

    clients = []
    for i in range(n):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_issue(user=users[i % len(users)])}")
        clients.append(client)
    return clients
