"""What the crew worker reads every poll (writers.selectors.crews_to_serve): the same few queries for
one crew as for five (no query per crew), and the same rows as before: agents no longer editors of
the story are left out, paused crews are not served but still count as having a crew."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from stories.models import Participant
from stories.services import participant_add
from writers.roles import NAMES
from writers.selectors import active_crews, crews_to_serve
from writers.services import crew_add, crew_pause

pytestmark = pytest.mark.django_db


@pytest.fixture
def crews(make_user, make_story):
    owner = make_user("owner")

    def add(n):
        made = []
        for i in range(n):
            story = make_story(owner, slug=f"tale-{len(made)}-{n}-{i}")
            crew_add(story=story, by=owner)
            made.append(story)
        return made
    return owner, add


def queries_of_a_poll() -> tuple[list[str], int]:
    with CaptureQueriesContext(connection) as ctx:
        rows, slugs = crews_to_serve()
    assert all(row["story"] in slugs for row in rows)
    return [q["sql"] for q in ctx.captured_queries], len(rows)


def test_a_poll_reads_as_many_queries_for_five_crews_as_for_one(crews):
    owner, add = crews
    add(1)
    one, served = queries_of_a_poll()
    assert served == 1 and len(one) == 2  # the crews, then the agents still editors of every story at once
    add(4)
    five, served = queries_of_a_poll()
    assert served == 5 and len(five) == len(one), five


def test_the_rows_leave_out_agents_no_longer_editors_and_paused_crews(crews):
    owner, add = crews
    first, second, third = add(3)
    demoted = f"narrator-{second.pk}"
    participant_add(story=second, user=Participant.objects.get(story=second, user__username=demoted).user,
                         role=Participant.Role.VIEWER, by=owner)
    crew_pause(story=third, by=owner, paused=True)
    rows, slugs = crews_to_serve()
    by_story = {row["story"]: row for row in rows}
    assert set(by_story) == {first.slug, second.slug} and slugs == {first.slug, second.slug, third.slug}
    assert set(by_story[first.slug]["members"]) == set(NAMES)  # (jsonb keeps no key order)
    assert "narrator" not in by_story[second.slug]["members"]
    assert set(by_story[second.slug]["members"]) == set(NAMES) - {"narrator"}
    assert by_story[second.slug]["members"]["showrunner"] == f"showrunner-{second.pk}"  # each story's own agents
    assert active_crews() == rows


def test_no_crew_reads_one_query(crews):
    with CaptureQueriesContext(connection) as ctx:
        assert crews_to_serve() == ([], set())
    assert len(ctx.captured_queries) == 1
