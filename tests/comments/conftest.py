"""The set-up these tests share with their neighbours (tests/annotating.py)."""
from tests.annotating import server  # noqa: F401 - a fixture, found by its name
