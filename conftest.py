"""Collects the fenced code blocks of README.md and docs/*.md as tests (tests/docs/harness.py)."""
from tests.docs.harness import docs_site, pytest_collect_file  # noqa: F401
