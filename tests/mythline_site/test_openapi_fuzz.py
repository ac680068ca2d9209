"""Every operation of the OpenAPI schema, fuzzed by schemathesis with data that fits it and data
that does not (positive and negative generation): no answer is a server error.

The requests go through Django in-process (WSGI) on the test database, as the story's owner, with
the path parameters pointed at a real story, channel, document and participant so that the
generated bodies and queries reach the code behind the checks for existence; the other
parameters are the generator's. A 5xx fails the test with the request that caused it.
"""
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings as hypothesis_settings
from schemathesis import GenerationMode

from accounts.services import token_issue
from bible.services import entry_create
from stories.documents import document_create

pytestmark = pytest.mark.django_db

schema = schemathesis.openapi.from_wsgi("/api/schema?format=json", get_wsgi_application())
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])

REAL = {"story": "tale", "channel": "general", "doc": "main", "name": "main", "username": "ed",
        "entry": "mara"}


@pytest.fixture
def in_process():
    """As Django's test client does: the request's end must not close the test's connection."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def world(in_process, make_user, make_agent, make_story, settings):
    settings.ALLOWED_HOSTS = ["localhost", "testserver", "127.0.0.1"]
    owner, editor = make_user("owner"), make_user("ed")
    story = make_story(owner, slug="tale", editors=[editor])
    make_agent("scout", capabilities=["feedback"], stories=[story])
    if not story.documents.filter(name="main").exists():
        document_create(story=story, creator=owner, name="main", text="The lamp guttered.\n")
    if not story.bible_entries.filter(slug="mara").exists():  # the story bible's `{entry}`
        entry_create(story=story, by=owner, kind="character", name="Mara", aliases=["the keeper's daughter"])
    return {"Authorization": f"Bearer {token_issue(user=owner)}"}


@schema.parametrize()
@hypothesis_settings(max_examples=25, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                            HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_no_server_errors(case, world):
    for name, value in REAL.items():
        if case.path_parameters and name in case.path_parameters:
            case.path_parameters[name] = value
    response = case.call(headers=world)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}\n"
        f"query={case.query!r} body={getattr(case, 'body', None)!r}\n{response.text[:2000]}")
