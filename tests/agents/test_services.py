"""An agent's status report: `agent_set_status` checks the caller and every value, so REST
(`PUT /api/agents/me/status`) and MCP (`set_status`) refuse the same reports with the same codes."""
import asyncio

import pytest

from agents.mcp import build_server
from agents.models import AgentProfile
from agents.services import agent_set_status
from mythline_site.errors import Forbidden, Invalid


def test_only_an_agent_reports_a_status(make_user):
    with pytest.raises(Forbidden) as raised:
        agent_set_status(agent=make_user("alice"), status="idle")
    assert raised.value.code == "forbidden" and "agent" in raised.value.message


@pytest.mark.parametrize("fields, bad", [
    ({"status": "dancing"}, {"status"}),
    ({"status": None}, {"status"}),
    ({"status": ["idle"]}, {"status"}),
    ({"status": "idle", "task": "x" * 501}, {"task"}),
    ({"status": "idle", "task": None}, {"task"}),
    ({"status": "idle", "task": 5}, {"task"}),
    ({"status": "idle", "task": "a\x00b"}, {"task"}),
    ({"status": "idle", "progress": 1.5}, {"progress"}),
    ({"status": "idle", "progress": -0.1}, {"progress"}),
    ({"status": "idle", "progress": True}, {"progress"}),
    ({"status": "idle", "progress": float("nan")}, {"progress"}),
    ({"status": "idle", "progress": float("inf")}, {"progress"}),
    ({"status": "idle", "progress": 10 ** 400}, {"progress"}),
    ({"status": "idle", "progress": "0.5"}, {"progress"}),
    ({"status": "busy", "task": [], "progress": False}, {"status", "task", "progress"}),
])
def test_every_bad_value_is_named(make_agent, fields, bad):
    agent = make_agent("scribe")
    with pytest.raises(Invalid) as raised:
        agent_set_status(agent=agent, **fields)
    assert set(raised.value.details) == bad
    if "status" in bad:  # the valid values are listed
        assert all(value in raised.value.details["status"] for value in AgentProfile.Status.values)
    profile = AgentProfile.objects.get(user=agent)
    assert profile.status_updated_at is None and profile.status == AgentProfile.Status.OFFLINE


def test_a_good_report_is_stored(make_agent):
    agent = make_agent("scribe")
    agent_set_status(agent=agent, status="working", task="x" * 500, progress=1)
    profile = AgentProfile.objects.get(user=agent)
    assert (profile.status, profile.task, profile.progress) == ("working", "x" * 500, 1.0)
    agent_set_status(agent=agent, status="idle")
    profile.refresh_from_db()
    assert (profile.status, profile.task, profile.progress) == ("idle", "", None)


# --- REST and MCP: the same codes for the same reports --------------------------------------------

REPORTS = {
    # name: (who, the report, REST status, code, the fields named in details)
    "not-an-agent": ("alice", {"status": "idle"}, 403, "forbidden", None),
    "not-an-agent-bad-status": ("alice", {"status": "dancing"}, 403, "forbidden", None),
    "unknown-status": ("scribe", {"status": "dancing"}, 400, "invalid", {"status"}),
    "task-too-long": ("scribe", {"status": "idle", "task": "x" * 501}, 400, "invalid", {"task"}),
    "task-with-nul": ("scribe", {"status": "idle", "task": "a\x00"}, 400, "invalid", {"task"}),
    "progress-over-one": ("scribe", {"status": "working", "progress": 1.5}, 400, "invalid", {"progress"}),
    "progress-negative": ("scribe", {"status": "working", "progress": -0.5}, 400, "invalid", {"progress"}),
    "progress-boolean": ("scribe", {"status": "working", "progress": True}, 400, "invalid", {"progress"}),
    "progress-text": ("scribe", {"status": "working", "progress": "0.5"}, 400, "invalid", {"progress"}),
}
# MCP checks its arguments' JSON types before the tool runs (in its own words; same code, same field).
TYPES_CHECKED_BY_MCP = {"progress-boolean", "progress-text"}


@pytest.mark.django_db(transaction=True)
def test_rest_and_mcp_answer_a_bad_report_alike(make_user, make_story, make_agent, api):
    alice = make_user("alice")
    story = make_story(alice, slug="tale")
    users = {"alice": alice, "scribe": make_agent("scribe", stories=[story])}
    clients = {name: api(user) for name, user in users.items()}

    async def mcp(user, report):
        result = await build_server(agent=user).call_tool("set_status", report)
        assert result.isError, result
        return result.structuredContent["error"]

    for name, (who, report, status, code, fields) in REPORTS.items():
        r = clients[who].put("/api/agents/me/status", report, format="json")
        rest = r.json()["error"]
        tool = asyncio.run(mcp(users[who], report))
        assert (r.status_code, rest["code"], tool["code"]) == (status, code, code), (name, rest, tool)
        assert (set(rest["details"] or ()), set(tool["details"] or ())) == (fields or set(), fields or set()), name
        if name not in TYPES_CHECKED_BY_MCP:
            assert rest == tool, name  # the service's own answer, word for word
    profile = AgentProfile.objects.get(user=users["scribe"])
    assert profile.status_updated_at is None  # nothing was stored

    # And the same good report succeeds on both.
    r = clients["scribe"].put("/api/agents/me/status", {"status": "working", "progress": 0.5}, format="json")
    assert r.status_code == 200 and r.json()["progress"] == 0.5
    result = asyncio.run(build_server(agent=users["scribe"]).call_tool(
        "set_status", {"status": "waiting", "task": "notes", "progress": 1}))
    assert not result.isError and result.structuredContent["progress"] == 1.0
