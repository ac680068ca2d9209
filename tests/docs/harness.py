"""Docs that run: every fenced block of README.md and docs/*.md, in order, against one live server.

Collected by Sybil (the root conftest.py hands it `pytest_collect_file`), so each block is a test
item named after its file and line. The documents run in collection order (README.md, then docs/
alphabetically) against ONE server started for the session: the embedded configuration `make run`
uses (SQLite, in-process layer and presence), migrated and seeded with the demo story. What one
block creates, the next one sees, as it would for a reader typing them in order.

- ```sh blocks run in bash from the checkout, with the shell variables of the earlier blocks (so
  `TOKEN=$(...)` in the README is `$TOKEN` in docs/mcp.md) and the docs server's DATABASE_URL (so
  `manage.py create_agent` writes where the server reads). A block fails on a non-zero exit or
  when it prints an error envelope (`{"error": {...}}`): `curl -s` exits 0 on a 409.
- ```python blocks run in one namespace per document, with the shell's exported variables in
  os.environ while they run.
- ```json blocks must parse, and when they show a socket frame (`"type"` of a server frame), a
  message or an error envelope, they must match the schema the server's own frames are checked
  against (messaging/frames.py).
- In every block `127.0.0.1:8000` (where `make run` serves) becomes the docs server's address.

A block that cannot run here says why, in the Markdown source, just above it:
`<!-- skip: next "starts a server that runs until stopped (tests/...: covered there)" -->`; pytest
reports it as skipped with that reason. Other fences (```text, ```ini) are not code.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import subprocess
import sys
import tempfile
import textwrap
from contextlib import contextmanager
from pathlib import Path

import jsonschema
import pytest
from sybil import Sybil
from sybil.parsers.markdown import CodeBlockParser, SkipParser

from messaging.frames import ERROR_CODES, SCHEMAS, _MESSAGE
from tests.live import ROOT, LiveServer

DOCUMENTED_ADDRESS = "127.0.0.1:8000"
SHELL_TIMEOUT = 180
ERROR_ENVELOPE = re.compile(r'\{\s*"error"\s*:\s*\{')


class DocsSite:
    """The server the documents talk to, and the shell state they build up."""

    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="mythline-docs-"))
        self.env = {
            "DATABASE_URL": f"sqlite:///{self.tmp / 'docs.sqlite3'}",
            "MYTHLINE_VAR_DIR": str(self.tmp),
            "SECRET_KEY": secrets.token_urlsafe(50),
        }
        self.server = LiveServer(env=self.env)
        self.address = f"127.0.0.1:{self.server.port}"
        self.shell_state = self.tmp / "shell-state.sh"
        self.shell_state.write_text("")

    def manage(self, *args: str) -> None:
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT,
                       env=self.server.env, check=True, capture_output=True, text=True, timeout=300)

    def start(self) -> "DocsSite":
        self.manage("migrate", "--noinput")
        self.manage("seed_demo")
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def localize(self, source: str) -> str:
        return source.replace(DOCUMENTED_ADDRESS, self.address)

    def exported(self) -> dict[str, str]:
        """The variables the blocks so far have exported (`export NAME=...`) and the server's env lacks."""
        base = self.shell_env()
        out = subprocess.run(["bash", "-c", f"source {shlex.quote(str(self.shell_state))} >/dev/null; env -0"],
                             env=base, capture_output=True, text=True, check=True).stdout
        pairs = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
        return {name: value for name, value in pairs.items()
                if base.get(name) != value and name not in ("SHLVL", "_", "PWD", "OLDPWD")}

    def shell_env(self) -> dict[str, str]:
        return {**self.server.env, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


@contextmanager
def environ(extra: dict[str, str]):
    saved = {name: os.environ.get(name) for name in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _where(example) -> str:
    return f"{Path(example.path).relative_to(ROOT)}:{example.line}"


def run_shell(example) -> None:
    site: DocsSite = example.namespace["docs_site"]
    source = site.localize(example.parsed)
    # Earlier blocks' variables in; this block's variables out (new or changed ones only).
    script = textwrap.dedent(f"""\
        set -eo pipefail
        source {shlex.quote(str(site.shell_state))}
        __docs_before=$(compgen -v)
        {{
        {source}
        }}
        for __v in $(compgen -v); do
          case "$__v" in __*|BASH*|FUNCNAME|PIPESTATUS|_|LINENO|RANDOM|SECONDS|SRANDOM|EPOCH*|COLUMNS|LINES) continue;; esac
          declare -p "$__v" 2>/dev/null >> {shlex.quote(str(site.shell_state))}.new || true
        done
        """)
    state_new = Path(f"{site.shell_state}.new")
    state_new.unlink(missing_ok=True)
    result = subprocess.run(["bash", "-c", script], cwd=ROOT, env=site.shell_env(), capture_output=True,
                            text=True, timeout=SHELL_TIMEOUT)
    shown = f"\n--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
    if result.returncode != 0:
        raise AssertionError(f"{_where(example)}: the block exited {result.returncode}{shown}")
    if ERROR_ENVELOPE.search(result.stdout):
        raise AssertionError(f"{_where(example)}: the block printed an error answer{shown}")
    if state_new.exists():
        # Keep only what is ours to carry: drop read-only shell internals bash refuses to redeclare.
        lines = [line for line in state_new.read_text().splitlines()
                 if not re.match(r"declare -[a-zA-Z]*r", line)]
        site.shell_state.write_text("\n".join(lines) + "\n")
        state_new.unlink()


def run_python(example) -> None:
    site: DocsSite = example.namespace["docs_site"]
    source = site.localize(example.parsed)
    code = compile("\n" * example.line + source, example.path, "exec")
    with environ(site.exported()):
        exec(code, example.namespace)


def _schema_for(sample: dict) -> dict | None:
    if isinstance(sample.get("type"), str) and sample["type"] in SCHEMAS:
        return SCHEMAS[sample["type"]]
    if "error" in sample and set(sample) == {"error"}:
        return {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"], "additionalProperties": False,
            "properties": {"code": {"enum": ERROR_CODES}, "message": {"type": "string"}, "details": {}}}}}
    if {"seq", "msg_type"} <= set(sample):
        return _MESSAGE
    return None


def check_json(example) -> None:
    try:
        sample = json.loads(example.parsed)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"{_where(example)}: not valid JSON: {exc}") from None
    schema = _schema_for(sample) if isinstance(sample, dict) else None
    if schema is not None:
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(sample), key=str)
        assert not errors, f"{_where(example)}: does not match what the server sends: " + \
            "; ".join(f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors)


@pytest.fixture(scope="session")
def docs_site():
    site = DocsSite().start()
    yield site
    site.stop()


sybil = Sybil(
    parsers=[
        SkipParser(),
        CodeBlockParser("sh", run_shell),
        CodeBlockParser("python", run_python),
        CodeBlockParser("json", check_json),
    ],
    path=str(ROOT),
    patterns=["README.md", "docs/*.md"],
    fixtures=["docs_site"],
)
pytest_collect_file = sybil.pytest()
