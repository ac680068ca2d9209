"""The roles of the writers' room (docs/crew.md). One list for the REST API, the room's panel,
`seed_demo` and the crew worker (agents/crew/runner.py plays them).

A story's crew is one agent account per role, made for that story (`narrator-12`, display name
"Narrator"), so an agent's status, tokens, read cursors and loop counts are the story's own: what the
narrator is doing in one story never shows in another. The demo story keeps its named crew
(`narrator`, `voice-mara`, ...), as SPEC 13 lists it.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Role:
    name: str
    display_name: str
    description: str
    capabilities: tuple[str, ...]
    required: bool = False


ROLES: tuple[Role, ...] = (
    Role("showrunner", "Showrunner", "Runs the board: hears the writers' requests, plans the next scene with "
         "the plot planner and hands it to the writers.", ("proposal", "decision", "query", "task_update"),
         required=True),
    Role("plot-planner", "Plot Planner", "Turns a request into a scene of the outline: a title and its beats.",
         ("scene_plan",), required=True),
    Role("narrator", "Narrator", "Writes the scene's prose into the document, at the outline's place.",
         ("narration",), required=True),
    Role("dialogue-writer", "Dialogue Writer", "Briefs the voices and puts their lines in the draft.",
         ("dialogue",)),
    Role("voice-lead", "Lead Voice", "Speaks as the scene's leading character.", ("dialogue",)),
    Role("voice-second", "Second Voice", "Speaks as the scene's other character.", ("dialogue",)),
    Role("critic", "Critic", "Votes on each plan and gives one concrete note on each line.", ("feedback", "vote")),
    Role("continuity", "Continuity Keeper", "Checks each scene against the request and the bible.",
         ("feedback", "query")),
)
BY_NAME = {role.name: role for role in ROLES}
NAMES = tuple(role.name for role in ROLES)
REQUIRED = tuple(role.name for role in ROLES if role.required)
# Dialogue needs its writer and both voices: a crew with some of them but not all has none.
DIALOGUE = ("dialogue-writer", "voice-lead", "voice-second")

# The demo story's crew: its agents have the names SPEC 13 gives them.
DEMO_MEMBERS = {"showrunner": "showrunner", "plot-planner": "plot-planner", "narrator": "narrator",
                "dialogue-writer": "dialogue-writer", "voice-lead": "voice-mara", "voice-second": "voice-elias",
                "critic": "critic", "continuity": "continuity"}
