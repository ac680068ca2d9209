"""The OpenAPI schema is generated without a warning and validates as OpenAPI: clients generate
code from it, and a warning (an enum named `StatusB34Enum`, two operations with one id) is a name
that changes under them."""
import os
import subprocess
import sys

from tests.live import ROOT


def test_the_schema_validates_with_no_warning(tmp_path):
    env = {**os.environ, "DEBUG": "1", "DJANGO_SETTINGS_MODULE": "mythline_site.settings"}
    for name in ("DATABASE_URL", "REDIS_URL"):  # the embedded setup: nothing else to start
        env.pop(name, None)
    result = subprocess.run([sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn",
                             "--file", str(tmp_path / "schema.yaml")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Warning" not in result.stderr, result.stderr[-3000:]
