"""The demo drama crew (SPEC 13): eight agents, each a real SDK client of a Mythline server.

Nothing here touches the database: every agent talks to the server over the network with its own
token, listens to its inbox (and `#general` where it needs to), reports its status, and writes to
the story's `main` document through the REST document ops. `manage.py run_agents` issues the
tokens and runs a `Crew`.

A scene, as the agents play it (everything in `#general` unless an inbox is named):

    showrunner     task_update "started"      -> inbox.plot-planner: outline scene k
    plot-planner   task_update, scene_plan
    showrunner     proposal (reply to the plan)
    critic         vote on the proposal
    (requires_approval: the showrunner waits for a human `vote` or `decision` on the proposal)
    showrunner     decision                   -> inbox.narrator: narrate
    narrator       narration x2, appends them to `main`, task_update "done"
    continuity     query on the narration;  plot-planner answers (text)
    showrunner                                -> inbox.dialogue-writer: dialogue
    dialogue-writer                           -> inbox.voice-<a>, inbox.voice-<b>: your line
    voices         dialogue;  dialogue-writer appends each line to `main`
    critic         feedback on each line, one asks for a revision
    voice          revised dialogue;  dialogue-writer replaces the line in `main`, task_update "done"
    showrunner     task_update "done": next scene

A human `text` or `query` in `#general` (or in the showrunner's inbox) steers the next scene: the
showrunner acknowledges it and the next plan follows the characters and the motif it names.

Restarts: every post has an idempotency key derived from the message it answers (or, for the
showrunner's own moves, from the scene), so an agent that handles a message again posts nothing
new; the showrunner rebuilds its board from `#general` on start.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Callable

from mythline_sdk import (INBOX, AsyncMythlineClient, Backoff, Conflict, InvalidRequest, LoopDetected, Message,
                          MythlineError, NotFound, idempotency_key)

from agents.crew.context import StoryContext, load_context
from agents.crew.llm import writer_from_env
from agents.crew.writing import (DEFAULT_CAST, Character, Focus, Outline, Writer, cast_from_participants,
                                 dialogue_block, steer_from, verdict)
from writers.roles import DEMO_MEMBERS, DIALOGUE

logger = logging.getLogger("mythline.crew")

GENERAL = "general"
# The demo's crew (SPEC 13), by username; a story's own crew names its agents by role (writers/roles.py).
CREW = tuple(DEMO_MEMBERS.values())
VOICES = ("voice-lead", "voice-second")
CREW_DRAFT = "crew-draft"  # the crew's fork of main, when the story asks it to write there
# "@showrunner", "@narrator-12", "@crew": a human's request to the crew names it.
_MENTION = re.compile(r"(?<![\w@])@([a-z0-9][a-z0-9_-]{0,49})", re.I)
_SCENE_NUMBER = re.compile(r"\bscene\s+(\d{1,4})\b", re.I)
_SCENE_CORRELATION = re.compile(r"scene-(\d+)")
QUICK = Backoff(base=0.1, cap=0.3, max_attempts=2)


def revise_index(scene: int) -> int:
    """Which of the two lines of a scene the critic sends back for a revision."""
    return scene % 2


def correlation(scene: int) -> str:
    return f"scene-{scene}"


@dataclass
class CrewOptions:
    scenes: int = 3          # scenes the crew starts unprompted in the story (earlier runs count);
                             # after that it waits for a human to steer the next one
    pace: float = 0.0        # seconds an agent "thinks" before each post (a demo a person can follow)
    once: bool = False       # stop once the first scene is written
    tick: float = 1.0        # how often the showrunner looks at the board unprompted
    history: int = 1000      # messages of #general the showrunner reads on start


def _default_factory(cast: tuple[Character, ...], story: StoryContext | None) -> Writer:
    return writer_from_env(cast, story=story)


class Crew:
    """A story's crew. `members` maps each role of the crew (writers/roles.py) to the username of its
    agent in this story (default: the demo's named crew); `tokens` holds a token per username of the
    agents that run now (a role in `members` without a token is paused: its work waits for it). A
    role not in `members` at all is not in this crew: its stage is skipped (no critic: the showrunner
    approves its own plans; no dialogue writer and voices: scenes are narration only)."""

    def __init__(self, base_url: str, story: str, tokens: dict[str, str], *, members: dict[str, str] | None = None,
                 script: str = "lighthouse", document: str = "main", options: CrewOptions | None = None,
                 writer_factory: Callable[[tuple[Character, ...], StoryContext | None], Writer] = _default_factory):
        self.members = dict(DEMO_MEMBERS if members is None else members)
        if "showrunner" not in self.members or self.members["showrunner"] not in tokens:
            raise ValueError("a crew runs with its showrunner")
        self.base_url, self.story, self.tokens = base_url, story, tokens
        self.script = script
        self.document = document  # where the scenes go: "main", or the crew's fork (CREW_DRAFT)
        self.options = options or CrewOptions()
        self.writer_factory = writer_factory
        self.writer: Writer | None = None
        self.context: StoryContext | None = None
        self.notes: dict[str, list[str]] = {}  # username -> the writers' notes for it (this run)
        self.farewell: tuple[str, str] | None = None  # set by whoever stops the crew: what its agents say
        self.finished = asyncio.Event()  # --once: the first scene is written
        self.posted: dict[str, int] = {}
        self.scenes_written: list[int] = []
        self._plans: dict[str, Message] = {}
        self._think = 0

    # --- shared helpers -----------------------------------------------------------------------
    async def think(self) -> None:
        if self.options.pace > 0:
            self._think += 1
            await asyncio.sleep(self.options.pace * (0.6 + 0.8 * ((self._think * 7919) % 100) / 100))

    async def plan(self, client: AsyncMythlineClient, plan_id: str) -> Message:
        if plan_id not in self._plans:
            self._plans[plan_id] = await client.get_message(plan_id)
        return self._plans[plan_id]

    def outline_of(self, plan: Message) -> Outline:
        p = plan.payload
        return self.writer.outline(int(p["scene"]), Focus.from_json(p.get("focus")), int(p.get("version", 1)))

    def has(self, role: str) -> bool:
        return role in self.members

    def has_dialogue(self) -> bool:
        return all(role in self.members for role in DIALOGUE) or (
            self.script == "lighthouse" and "dialogue-writer" in self.members
            and all(c.voice in self.members.values() for c in DEFAULT_CAST))

    def username(self, role: str) -> str:
        return self.members.get(role, role)

    def is_voice(self, username: str) -> bool:
        voices = {self.members.get(v) for v in VOICES} | {c.voice for c in DEFAULT_CAST if self.script == "lighthouse"}
        return username in voices - {None}

    def voice_for(self, speaker: Character, index: int) -> str:
        """The agent that speaks a scene's line: the character's own voice (the demo's), else the
        lead voice for the scene's first character and the second voice for the other."""
        if speaker.voice and speaker.voice in self.members.values():
            return speaker.voice
        return self.members.get(VOICES[min(index, 1)], VOICES[min(index, 1)])

    def mentioned_roles(self, text: str) -> set[str]:
        """The roles a text @mentions, by role or by the agent's username ("crew": the whole crew)."""
        by_name = {**{r: r for r in self.members}, **{u.lower(): r for r, u in self.members.items()}, "crew": "crew"}
        return {by_name[m.group(1).lower()] for m in _MENTION.finditer(text or "") if m.group(1).lower() in by_name}

    async def refresh(self, client: AsyncMythlineClient) -> StoryContext:
        """Read the story again (premise, bible, outline): a plan starts from what it says now."""
        try:
            self.context = await load_context(client, self.story, script=self.script)
        except MythlineError as exc:
            logger.info("crew: the story could not be read again (%s); planning from what was read before", exc)
        if self.writer is not None and self.context is not None:
            self.writer.story = self.context
        return self.context

    async def ensure_document(self, client: AsyncMythlineClient) -> None:
        """The crew's own draft, forked from `main` the first time the crew writes to a fork."""
        if self.document == "main":
            return
        try:
            await client.get_document(self.story, self.document)
        except NotFound:
            try:
                await client.request("POST", f"/api/stories/{self.story}/documents", json={
                    "name": self.document, "fork_of": "main", "title": "The crew's draft"})
            except Conflict:
                pass  # made meanwhile (or the story holds all the forks it may: the writes will say so)

    def outline_scene(self, scene_id) -> dict | None:
        if self.context is None:
            return None
        return next((s for s in self.context.outline if s.get("id") == scene_id), None)

    # --- running ------------------------------------------------------------------------------
    async def run(self, *, stop: asyncio.Event | None = None, duration: float | None = None,
                  farewell: tuple[str, str] = ("offline", "")) -> dict:
        """Run until `stop`, `duration` or (with `once`) the first scene; then every agent reports
        `farewell` (offline; the crew worker says "idle, paused" when the room paused it)."""
        running = {role: username for role, username in self.members.items() if username in self.tokens}
        clients = {role: AsyncMythlineClient(self.base_url, self.tokens[username], username=username,
                                             backoff=Backoff(base=0.2, cap=5.0, max_attempts=10))
                   for role, username in running.items()}
        try:
            boss = clients["showrunner"]
            await self.ensure_document(boss)
            await self.refresh(boss)
            if self.script == "lighthouse":
                participants = await boss.list_participants(self.story)
                cast = tuple(c for c in cast_from_participants(participants) if c.voice in self.members.values())
                cast = cast if len(cast) >= 2 else DEFAULT_CAST
            else:
                cast = self.context.characters() if self.context is not None else ()
            self.writer = self.writer_factory(cast, self.context)
            kinds = {"showrunner": Showrunner, "plot-planner": PlotPlanner, "narrator": Narrator,
                     "dialogue-writer": DialogueWriter, "critic": Critic, "continuity": Continuity}
            agents: list[CrewAgent] = [kinds[role](self, client) for role, client in clients.items() if role in kinds]
            voices = {c.voice for c in DEFAULT_CAST}
            agents += [Voice(self, client) for role, client in clients.items()
                       if role in VOICES or client.username in voices]
            agents.sort(key=lambda a: not isinstance(a, Showrunner))
            for agent in agents:
                await agent.status("idle", "Joining the writers' room")
            showrunner = agents[0]
            general_after = await showrunner.prepare()

            listeners = []
            for agent in agents:
                # From the read cursor: a restarted agent handles again what it had not acknowledged.
                # (On a first run that is the story's whole history; the agents answer crew requests
                # only, so older messages pass through untouched.)
                options = {"start": "cursor", "queue_size": 64, "ignore_own": agent.ignore_own}
                if agent is showrunner:
                    options["after"] = {f"channel:{self.story}/{GENERAL}": general_after}
                listener = agent.client.listener([(self.story, t) for t in agent.topics], **options)
                listener.on("*", agent.dispatch)
                listeners.append(listener)
            halt = asyncio.Event()
            tasks = [asyncio.create_task(listener.run(stop=halt)) for listener in listeners]
            tasks.append(asyncio.create_task(showrunner.tick(halt)))
            waits = [asyncio.create_task(halt.wait())]
            if stop is not None:
                waits.append(asyncio.create_task(stop.wait()))
            if self.options.once:
                waits.append(asyncio.create_task(self.finished.wait()))
            waits.extend(tasks)
            await asyncio.wait(waits, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
            halt.set()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                    logger.error("crew task ended with %s: %s", type(result).__name__, result)
            for w in waits:
                w.cancel()
            # The server may be going down with us (Ctrl-C on `make run`): a quick try each, at once.
            await asyncio.gather(*(agent.status(*(self.farewell or farewell), quick=True) for agent in agents))
            return {"scenes_written": list(self.scenes_written), "posted": dict(self.posted),
                    "finished": self.finished.is_set()}
        finally:
            for client in clients.values():
                await client.aclose()


class CrewAgent:
    username = ""
    topics: tuple[str, ...] = (GENERAL, INBOX)
    ignore_own = True

    def __init__(self, crew: Crew, client: AsyncMythlineClient):
        self.crew, self.client, self.story = crew, client, crew.story
        self.username = client.username or self.username  # the story's own agent for the role
        self._status: tuple | None = None

    @property
    def writer(self) -> Writer:
        return self.crew.writer

    async def dispatch(self, message: Message) -> None:
        """Route a message to `on_<msg_type>` (inbox and #general alike); a note from a human,
        forwarded to this agent's inbox by the showrunner, is taken here."""
        if (message.msg_type == "text" and message.payload.get("request") == "note"
                and message.channel == f"inbox.{self.username}"
                and message.sender_name == self.crew.username("showrunner")):  # forwarded by the board only
            await self.take_note(message)
            return
        handler = getattr(self, f"on_{message.msg_type.replace('.', '_').replace('-', '_')}", None)
        if handler is not None:
            await handler(message)

    async def say(self, channel: str, msg_type: str, payload: dict, *, key: str, scene: int | None = None,
                  reply_to: str | None = None) -> Message | None:
        """Post with an idempotency key. A repeat answers the stored message; a refusal by the loop
        policies or a key already used for other words (a model writer after a restart) is logged
        and skipped: the crew carries on."""
        # The loop policies compare an agent's payloads across all its stories: the same crew
        # announcing scene 1 in two stories is not a loop, so every payload names its story.
        payload = {**payload, "story": self.story}
        await self.crew.think()
        try:
            try:
                message = await self.client.post_message(
                    self.story, channel, msg_type, payload, reply_to=reply_to,
                    correlation_id=correlation(scene) if scene else None, idempotency_key=key)
            except InvalidRequest as exc:
                if reply_to is None or "reply_to" not in (exc.details or {}):
                    raise
                # The message answered is not one this agent may read (a human's note in an inbox):
                # post it unthreaded rather than not at all.
                message = await self.client.post_message(
                    self.story, channel, msg_type, payload,
                    correlation_id=correlation(scene) if scene else None, idempotency_key=key + ":unthreaded")
        except (LoopDetected, Conflict) as exc:
            logger.warning("%s: %s not posted: %s", self.username, msg_type, exc)
            return None
        if message.created:
            self.crew.posted[msg_type] = self.crew.posted.get(msg_type, 0) + 1
            words = message.text or ""
            logger.info("%-15s %-11s -> #%s: %s", self.username, msg_type, channel,
                        words if len(words) <= 90 else words[:87] + "...")
        return message

    async def status(self, status: str, task: str = "", progress: float | None = None, *,
                     quick: bool = False) -> None:
        if self._status == (status, task, progress):
            return
        self._status = (status, task, progress)
        try:
            if quick:
                body = {"status": status, "task": task, **({"progress": progress} if progress is not None else {})}
                await self.client.request("PUT", "/api/agents/me/status", json=body, backoff=QUICK)
            else:
                await self.client.set_status(status, task, progress)
        except MythlineError as exc:
            logger.info("%s: status not reported: %s", self.username, exc)

    async def take_note(self, m: Message) -> None:
        """A writer's note for this agent: kept for its next pieces of writing (what the model is
        given as the room's words, first), and acknowledged in #general."""
        note, by = str(m.payload.get("note") or "")[:500], str(m.payload.get("by") or "a writer")[:100]
        if not note:
            return
        notes = self.crew.notes.setdefault(self.username, [])
        notes[:] = [*notes, f"{by}, to you: {note}"][-5:]
        target = m.payload.get("from_message") if isinstance(m.payload.get("from_message"), str) else None
        short = note if len(note) <= 80 else note[:77] + "..."
        await self.say(GENERAL, "text", {"text": f"Noted, {by}: “{short}”. It goes into my next pass.",
                                         "note_from": target},
                       key=idempotency_key("re", m.id, "noted"), reply_to=target)

    async def situation(self) -> tuple[list[str], str]:
        """What a writer sees besides the plan: the room's last words and the end of the draft."""
        recent: list[str] = []
        try:
            last = (await self.client.read_messages(self.story, GENERAL, limit=1)).last_seq
            page = await self.client.read_messages(self.story, GENERAL, after=max(0, last - 12), limit=12)
            for message in page.results:
                if message.text and message.msg_type in ("text", "query", "steer", "narration", "dialogue"):
                    recent.append(f"{message.sender.get('display_name') or message.sender_name}: {message.text[:400]}")
            doc = await self.client.get_document(self.story, self.crew.document)
            return [*self.crew.notes.get(self.username, []), *recent], doc.text[-2000:]
        except MythlineError as exc:
            logger.info("%s: writing without the room's context: %s", self.username, exc)
            return recent, ""

    def based_on(self, outline: Outline, *, scene: dict | None = None, steered_by=(), by: str = "",
                 document: dict | None = None) -> dict:
        """The context receipt a crew message carries (docs/crew.md, "Context receipts"): the bible
        entries the scene's text names, the human messages that asked for it, the outline scene
        and the document range it was written into."""
        try:
            bible = list(self.writer.receipt(outline).get("bible") or [])
        except Exception:  # noqa: BLE001 - a receipt must never stop the writing
            bible = []
        return {"bible": bible[:20], "messages": [{"id": i, "sender": by} for i in steered_by][:10],
                "document": document,
                "outline": {"id": scene["id"], "position": scene["position"], "title": scene["title"]}
                if scene else None}

    async def write_into_scene(self, outline_id, block: str, *, key: str, marker: str,
                               at_end: bool = False) -> dict | None:
        """Put `block` into `main` at the outline scene's place, and set the scene's range to cover it:
        the first text of a scene goes where the human marked its place (an empty range), else after
        the text of the scene before it in the outline (else before the one after it, else at the
        end); later text (`at_end`) goes at the end of the scene's own text. A scene that has text
        already is not written again (the crew never duplicates a scene); `marker` found in the
        document means this block is in (a repeat). Answers the range written, or None."""
        if not isinstance(outline_id, int):
            await self.append_block(block, marker=marker)
            return None
        path = f"/api/stories/{self.story}/outline"
        doc_name = self.crew.document
        for attempt in range(6):
            scenes = (await self.client.get(path))["results"]
            me = next((x for x in scenes if x["id"] == outline_id), None)
            doc = await self.client.get_document(self.story, self.crew.document)
            if me is None:
                await self.append_block(block, marker=marker)
                return None
            if marker in doc.text:
                return me.get("range")
            ranges = [x.get("range") for x in scenes if x.get("range") and x["range"].get("document") == doc_name]
            if any(r.get("revision") != doc.revision for r in ranges):
                await asyncio.sleep(0.1 * (attempt + 1))
                continue  # the document moved between the two reads: read again
            r = me.get("range") if me.get("range") and me["range"].get("document") == self.crew.document else None
            has_text = r is not None and not r.get("gone") and r["to"] > r["from"]
            if has_text and not at_end:
                logger.info("%s: scene %s has text already; not writing it again", self.username, me["position"])
                return r
            if has_text or (r is not None and not r.get("gone")):
                pos, start = r["to"], r["from"]
            else:
                def text_range(x):
                    q = x.get("range")
                    return q if q and q.get("document") == doc_name and not q.get("gone") and q["to"] > q["from"] else None
                before = [text_range(x) for x in scenes if x["position"] < me["position"] and text_range(x)]
                after = [text_range(x) for x in scenes if x["position"] > me["position"] and text_range(x)]
                pos = before[-1]["to"] if before else (after[0]["from"] if after else len(doc.text))
                start = None
            head, tail = doc.text[:pos], doc.text[pos:]
            prefix = "" if not head or head.endswith("\n\n") else ("\n" if head.endswith("\n") else "\n\n")
            suffix = "" if not tail or tail.startswith("\n") else "\n\n"
            try:
                edit = await self.client.edit_document(
                    self.story, self.crew.document, base_revision=doc.revision,
                    edits=[{"from": pos, "to": pos, "insert": prefix + block + suffix}],
                    idempotency_key=f"{key}:{attempt}")
            except Conflict:
                continue  # someone typed there meanwhile: read again
            if edit.suggestion is not None:  # the story has agents suggest: a person decides
                logger.info("%s: suggested scene %s's text (suggestion %s)", self.username, me["position"],
                            edit.suggestion.get("id"))
                return {"document": doc_name, "suggestion": edit.suggestion.get("id")}
            begin = pos + len(prefix)
            written = {"document": self.crew.document, "from": begin if start is None else start, "to": begin + len(block),
                       "revision": edit.revision}
            change = {"range": written}
            if me.get("status") in ("planned", "drafting") and not at_end:
                change["status"] = "drafted"
            try:
                await self.client.request("PATCH", f"{path}/{outline_id}", json=change, idempotent=True)
            except MythlineError as exc:
                logger.warning("%s: the outline scene's range was not set: %s", self.username, exc)
            return written
        await self.append_block(block, marker=marker)  # the document kept moving: at least it is in
        return None

    async def append_block(self, block: str, *, marker: str) -> bool:
        """Append a paragraph to `main` unless `marker` is there already (a repeat after a restart)."""
        doc = await self.client.get_document(self.story, self.crew.document)
        if marker in doc.text:
            return False
        text = doc.text
        sep = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
        await self.client.append_document(self.story, self.crew.document, sep + block.rstrip("\n") + "\n")
        return True


# --- the showrunner ----------------------------------------------------------------------------


@dataclass
class Scene:
    number: int
    title: str = ""
    focus: Focus = field(default_factory=Focus)
    steered_by: list = field(default_factory=list)
    version: int = 1
    started: bool = False
    plans: dict = field(default_factory=dict)       # version -> scene_plan message
    proposals: dict = field(default_factory=dict)   # version -> proposal message
    decisions: dict = field(default_factory=dict)   # version -> decision message
    responses: list = field(default_factory=list)   # votes and decisions (and human replies) on proposals
    narration_done: bool = False
    dialogue_done: bool = False
    finished: bool = False
    outline_id: int | None = None                   # the outline scene it writes (planned by a human)

    def verdict_on(self, proposal: Message, *, human: bool) -> tuple[bool, str] | None:
        for m in self.responses:
            target = m.payload.get("proposal") or m.reply_to
            if target != proposal.id or m.from_human != human:
                continue
            words = m.payload.get("choice") if m.msg_type == "vote" else m.text
            said = verdict(str(words or ""))
            if said is not None:
                return said, m.sender.get("display_name") or m.sender_name
        return None


class Showrunner(CrewAgent):
    """Runs the board. Its state is rebuilt from #general (`observe`), and `reconcile` makes the
    next move from that state: the same state always leads to the same move, with the same
    idempotency key, so repeating a move after a restart stores nothing twice."""

    username = "showrunner"
    ignore_own = False  # its own posts are part of the board

    def __init__(self, crew, client):
        super().__init__(crew, client)
        self.scenes: dict[int, Scene] = {}
        self.seen: set[str] = set()
        self.highest = 0                      # highest scene number seen (crew or not)
        self.acks: dict[str, Focus] = {}      # human message id -> the focus acknowledged
        self.consumed: set[str] = set()       # human message ids a scene already followed
        self.proposal_scene: dict[str, int] = {}
        self.done: set[str] = set()           # keys of moves made in this process
        self.unprompted = 0                   # scenes the crew started without a human asking
        self.lock = asyncio.Lock()
        self._approval = (0.0, False)

    # --- the board ----------------------------------------------------------------------------
    async def prepare(self) -> int:
        """Read recent #general into the board, and answer what humans said while the crew was
        away (after the showrunner's read cursor); answer the seq it read up to."""
        last = (await self.client.read_messages(self.story, GENERAL, limit=1)).last_seq
        cursor = next((row.read_seq for row in await self.client.inbox()
                       if row.story == self.story and row.channel == GENERAL), 0)
        missed, own = [], 0
        async for message in self.client.iter_messages(self.story, GENERAL, after=max(0, last - self.crew.options.history)):
            self.observe(message)
            last = max(last, message.seq)
            if message.sender_name == self.username:
                own = message.seq
            if message.seq > cursor and (self.is_steer(message) or self.note_roles(message)):
                missed.append(message)
        # Unanswered requests after the read cursor; on a crew's first run (no cursor yet), those
        # after the showrunner's last word, or all when it never spoke: a writer who asks while the
        # crew is still starting is answered, a request it answered in another life is not.
        if not cursor:
            missed = [m for m in missed if m.seq > own]
        for message in missed:
            if self.is_steer(message):
                await self.heard(message)
            elif self.note_roles(message):
                await self.forward_note(message, self.note_roles(message))
        return last

    def is_steer(self, message: Message) -> bool:
        """A request to the crew: a human's `steer` message, or a `text`/`query` that @mentions the crew
        or one of its agents (in #general or the showrunner's inbox). Other human lines are the
        writers talking among themselves: the crew leaves them alone."""
        if not message.from_human or message.id in self.acks or message.reply_to in self.proposal_scene:
            return False
        if message.msg_type == "steer":
            return True
        return message.msg_type in ("text", "query") and (
            message.channel == f"inbox.{self.username}"
            or bool(self.crew.mentioned_roles(message.text) & {"showrunner", "crew"}))

    def note_roles(self, message: Message) -> list[str]:
        """The agents a human's line @mentions by name (not the showrunner, not the crew as a whole):
        a note for each of them, not a request for a scene."""
        if not message.from_human or message.msg_type not in ("text", "query") or message.channel != GENERAL:
            return []
        roles = self.crew.mentioned_roles(message.text) - {"showrunner", "crew"}
        return sorted(roles) if not self.is_steer(message) else []

    async def forward_note(self, message: Message, roles: list[str]) -> None:
        """Hand a human's note to the agents it names, in their inboxes (once per message and agent)."""
        words = " ".join(_MENTION.sub(" ", message.text or "").split())[:500]
        name = message.sender.get("display_name") or message.sender_name
        for role in roles:
            await self.say(f"inbox.{self.crew.username(role)}", "text",
                           {"text": f"{name} asks you: {words}", "request": "note", "note": words,
                            "from_message": message.id, "by": name},
                           key=idempotency_key("re", message.id, "note", role))

    def scene(self, number: int) -> Scene:
        if number not in self.scenes:
            self.scenes[number] = Scene(number)
        return self.scenes[number]

    def observe(self, m: Message) -> None:
        if m.id in self.seen:
            return
        self.seen.add(m.id)
        found = _SCENE_CORRELATION.fullmatch(m.correlation_id or "")
        if found:
            self.highest = max(self.highest, int(found.group(1)))
        p = m.payload or {}  # None: a deleted message (the SDK's Message.payload)
        k = p.get("scene") if isinstance(p.get("scene"), int) and not isinstance(p.get("scene"), bool) else None
        v = p.get("version", 1) if isinstance(p.get("version"), int) else 1
        me = m.sender_name == self.username
        if k is not None:
            self.highest = max(self.highest, k)
        if me and m.msg_type == "text" and isinstance(p.get("steer"), dict) and p.get("steer_from"):
            self.acks[p["steer_from"]] = Focus.from_json(p["steer"])
        if k is None:
            if m.msg_type in ("vote", "decision", "text", "query") and not me:
                target = p.get("proposal") or m.reply_to
                if target in self.proposal_scene:
                    self.scene(self.proposal_scene[target]).responses.append(m)
            return
        s = self.scene(k)
        stage = p.get("stage")
        if me and m.msg_type == "task_update" and stage == "start":
            if not s.started and not p.get("steered_by"):  # no request started it
                self.unprompted += 1
            s.started, s.title = True, p.get("title", s.title)
            s.focus, s.steered_by = Focus.from_json(p.get("focus")), list(p.get("steered_by") or [])
            s.outline_id = p.get("outline_id") if isinstance(p.get("outline_id"), int) else None
            self.consumed.update(s.steered_by)
        elif me and m.msg_type == "task_update" and stage == "scene":
            s.finished = True
        elif m.sender_name == self.crew.username("plot-planner") and m.msg_type == "scene_plan":
            s.plans[v] = m
        elif me and m.msg_type == "proposal":
            s.proposals[v] = m
            self.proposal_scene[m.id] = k
        elif me and m.msg_type == "decision":
            s.decisions[v] = m
            if p.get("approved") is False:
                s.version = max(s.version, v + 1)
        elif m.msg_type in ("vote", "decision") and not me and p.get("proposal") in self.proposal_scene:
            self.scene(self.proposal_scene[p["proposal"]]).responses.append(m)
        elif m.sender_name == self.crew.username("narrator") and m.msg_type == "task_update" and stage == "narration":
            s.narration_done = True
        elif m.sender_name == self.crew.username("dialogue-writer") and m.msg_type == "task_update" and stage == "dialogue":
            s.dialogue_done = True

    def current(self) -> Scene | None:
        started = [s for s in self.scenes.values() if s.started]
        return max(started, key=lambda s: s.number) if started else None

    def pending_steers(self) -> list[tuple[str, Focus]]:
        return [(mid, focus) for mid, focus in self.acks.items() if mid not in self.consumed]

    def next_number(self) -> int:
        return max([self.highest, *self.scenes]) + 1

    async def requires_approval(self) -> bool:
        checked, value = self._approval
        if time.monotonic() - checked > 0.5:
            try:
                value = (await self.client.get_story(self.story)).requires_approval
            except MythlineError:
                pass
            self._approval = (time.monotonic(), value)
        return value

    # --- events -------------------------------------------------------------------------------
    async def dispatch(self, message: Message) -> None:
        self.observe(message)
        if self.is_steer(message):
            await self.heard(message)
        elif self.note_roles(message):
            await self.forward_note(message, self.note_roles(message))
        await self.reconcile()

    async def tick(self, halt: asyncio.Event) -> None:
        while not halt.is_set():
            try:
                await self.reconcile()
            except MythlineError as exc:
                logger.info("showrunner: %s", exc)
            except Exception:  # noqa: BLE001 - a bug in one move must not stop the board
                logger.exception("showrunner: reconcile failed")
            try:
                await asyncio.wait_for(halt.wait(), self.crew.options.tick)
            except asyncio.TimeoutError:
                pass

    async def heard(self, message: Message) -> None:
        """A human spoke in the room: steer the next scene toward what they named."""
        words = " ".join(_MENTION.sub(" ", message.text or "").split())
        focus = steer_from(words, self.writer.cast, by=message.sender_name, story=self.crew.context)
        current = self.current()
        upcoming = self.next_number() if current is None or current.finished else current.number + 1
        name = message.sender.get("display_name") or message.sender_name
        if focus:
            who = " and ".join(focus.characters) or "the story"
            text = (f"Heard, {name}. Scene {upcoming} will follow {who} toward {focus.motif}"
                    + (f": “{focus.direction}”." if focus.direction else "."))
        else:  # a request that names nothing the crew knows ("@crew next scene, please"): still a request
            text = f"Heard, {name}. The next scene is on its way" + (f": “{focus.direction}”." if focus.direction
                                                                     else ".")
        in_room = message.channel == GENERAL
        ack = await self.say(GENERAL, "text", {"text": text, "steer": focus.as_json(), "steer_from": message.id,
                                               "scene_next": upcoming},
                             key=idempotency_key("re", message.id, "ack"), reply_to=message.id if in_room else None)
        if ack is not None:
            self.observe(ack)
        self.acks.setdefault(message.id, focus)

    # --- moves --------------------------------------------------------------------------------
    async def once(self, key: str, move) -> Message | None:
        """Make a move at most once per process (the key makes it once on the server too)."""
        if key in self.done:
            return None
        message = await move()
        self.done.add(key)
        if message is not None and message.channel == GENERAL:
            self.observe(message)
        return message

    def key(self, s: Scene, what: str) -> str:
        return idempotency_key(self.story, "scene", s.number, "v", s.version, what)

    async def reconcile(self) -> None:
        async with self.lock:
            await self._reconcile()

    async def _reconcile(self) -> None:
        if self.crew.options.once and self.crew.finished.is_set():
            return
        s = self.current()
        if s is None or s.finished:
            pending = self.pending_steers()
            if pending or self.unprompted < self.crew.options.scenes:
                await self.start_scene(*await self.next_target(pending), pending)
            else:
                await self.status("idle", f"Waiting for the room: @{self.username} (or a steer) asks for the "
                                          f"next scene")
            return
        k, v = s.number, s.version
        plan = s.plans.get(v)
        if plan is None:
            await self.assign_plan(s)
            await self.status("waiting", f"Scene {k}: waiting for the plot planner's outline", 0.1)
            return
        proposal = s.proposals.get(v)
        if proposal is None:
            await self.propose(s, plan)
            return
        decision = s.decisions.get(v)
        if decision is None:
            human = s.verdict_on(proposal, human=True)
            if human is not None:
                await self.decide(s, proposal, *human)
            elif await self.requires_approval():
                await self.status("waiting", f"Scene {k}: waiting for a human vote on the plan", 0.3)
            elif not self.crew.has("critic"):
                await self.decide(s, proposal, True, "the showrunner: no critic in this crew")
            else:
                agent = s.verdict_on(proposal, human=False)
                if agent is not None:
                    await self.decide(s, proposal, agent[0], agent[1])
                else:
                    await self.status("waiting", f"Scene {k}: waiting for the critic's vote", 0.3)
            return
        if not s.narration_done:
            await self.assign(s, plan, "narrator", "narration",
                              f"Scene {k}, '{s.title}', is approved: narrate it in two short passages and put "
                              f"them in the draft.")
            await self.status("working", f"Scene {k}: the narrator is drafting '{s.title}'", 0.5)
            return
        if not s.dialogue_done and self.crew.has_dialogue():
            await self.assign(s, plan, "dialogue-writer", "dialogue",
                              f"Narration of '{s.title}' is in. Dialogue for scene {k}, please: brief the voices "
                              f"and get their lines into the draft.")
            await self.status("working", f"Scene {k}: the voices are speaking", 0.75)
            return
        await self.finish(s)

    async def next_target(self, pending: list[tuple[str, Focus]]) -> tuple[int, int | None]:
        """Which scene to write next: the one a request names ("scene 3") if the outline has it
        unwritten, else the outline's first planned scene with no text yet, else a new scene after
        the last (the plot planner adds it to the outline). Never a scene the board already had,
        nor one whose text is in the document: the crew does not write a scene twice."""
        context = await self.crew.refresh(self.client)
        fallback = self.next_number()
        if context is None:
            return fallback, None
        scenes = sorted(context.outline, key=lambda x: x.get("position", 0))
        fallback = max(fallback, len(scenes) + 1)

        def open_scene(x) -> bool:
            r = x.get("range")
            written = bool(r) and not r.get("gone") and r.get("to", 0) > r.get("from", 0)
            started = x.get("position") in self.scenes and self.scenes[x["position"]].started
            return not written and not started and x.get("status") in ("planned", "drafting") \
                and not any(s.outline_id == x.get("id") for s in self.scenes.values())
        for _, focus in reversed(pending):
            named = _SCENE_NUMBER.search(focus.direction or "")
            if named:
                wanted = next((x for x in scenes if x.get("position") == int(named.group(1))), None)
                if wanted is not None and open_scene(wanted):
                    return wanted["position"], wanted["id"]
        planned = next((x for x in scenes if open_scene(x)), None)
        if planned is not None and self.crew.script != "lighthouse":
            return planned["position"], planned["id"]
        return fallback, None

    async def start_scene(self, k: int, outline_id: int | None, pending: list[tuple[str, Focus]]) -> None:
        focus = _merge([f for _, f in pending])
        s = self.scene(k)
        s.focus, s.steered_by, s.outline_id = focus, [mid for mid, _ in pending], outline_id
        outline = self.writer.outline(k, focus, 1)
        s.title = outline.title
        await self.status("working", f"Scene {k}: briefing the plot planner on '{outline.title}'", 0.05)
        payload = {"task": f"Scene {k}: {outline.title}", "status": "started", "progress": 0.0, "stage": "start",
                   "scene": k, "title": outline.title, "focus": focus.as_json() if focus else None,
                   "steered_by": s.steered_by, "outline_id": outline_id}
        start = await self.say(GENERAL, "task_update", payload, key=self.key(s, "start"), scene=k)
        if start is None:  # refused: count it as started so the board moves on
            s.started = True
            self.consumed.update(s.steered_by)
        else:
            self.observe(start)

    async def assign_plan(self, s: Scene) -> None:
        outline = self.writer.outline(s.number, s.focus, s.version)
        asked = f" {_focus_sentence(s.focus)}" if s.focus else ""
        again = "" if s.version == 1 else f" The room turned down the last plan; try '{outline.title}' instead."
        text = f"Please outline scene {s.number}, '{outline.title}'.{asked}{again}"
        payload = {"text": text, "request": "scene_plan", "scene": s.number, "version": s.version,
                   "title": outline.title, "focus": s.focus.as_json() if s.focus else None,
                   "steered_by": s.steered_by, "outline_id": s.outline_id}
        await self.once(self.key(s, "assign-plan"), lambda: self.say(
            f"inbox.{self.crew.username('plot-planner')}", "text", payload, key=self.key(s, "assign-plan"), scene=s.number))

    async def propose(self, s: Scene, plan: Message) -> None:
        beats = plan.payload.get("beats") or []
        text = (f"Scene {s.number} plan, '{s.title}': {beats[0] if beats else ''} It ends when "
                f"{_lower_first(beats[-1]) if beats else 'the light comes round'} Shall we write it? Vote yes or no.")
        payload = {"text": text, "scene": s.number, "version": s.version, "plan": plan.id}
        await self.once(self.key(s, "proposal"), lambda: self.say(
            GENERAL, "proposal", payload, key=self.key(s, "proposal"), scene=s.number, reply_to=plan.id))

    async def decide(self, s: Scene, proposal: Message, approved: bool, who: str) -> None:
        if approved:
            text = f"Approved ({who}): scene {s.number}, '{s.title}', goes to the writers."
        else:
            text = f"Turned down ({who}): scene {s.number} goes back to the board for a new plan."
        payload = {"text": text, "proposal": proposal.id, "scene": s.number, "version": s.version,
                   "approved": approved}
        await self.once(self.key(s, "decision"), lambda: self.say(
            GENERAL, "decision", payload, key=self.key(s, "decision"), scene=s.number, reply_to=proposal.id))

    async def assign(self, s: Scene, plan: Message, agent: str, request: str, text: str) -> None:
        payload = {"text": text, "request": request, "scene": s.number, "version": s.version, "plan": plan.id,
                   "title": s.title}
        key = self.key(s, f"assign-{request}")
        await self.once(key, lambda: self.say(f"inbox.{self.crew.username(agent)}", "text", payload, key=key,
                                              scene=s.number))

    async def finish(self, s: Scene) -> None:
        payload = {"task": f"Scene {s.number}, '{s.title}', is written and in the draft", "status": "done",
                   "progress": 1.0, "stage": "scene", "scene": s.number}
        message = await self.once(self.key(s, "done"), lambda: self.say(
            GENERAL, "task_update", payload, key=self.key(s, "done"), scene=s.number))
        s.finished = True
        if message is not None:
            self.crew.scenes_written.append(s.number)
        await self.status("idle", f"Scene {s.number} is written", 1.0)
        if self.crew.options.once:
            self.crew.finished.set()


def _merge(foci: list[Focus]) -> Focus:
    if not foci:
        return Focus()
    characters = tuple(dict.fromkeys(c for f in foci for c in f.characters))
    latest = foci[-1]
    motif = next((f.motif for f in reversed(foci) if f.motif), "")
    return Focus(characters, motif, latest.direction, latest.by)


def _focus_sentence(focus: Focus) -> str:
    who = " and ".join(focus.characters) or "the story"
    return f"The room wants {who} and {focus.motif}" + (f" (“{focus.direction}”)." if focus.direction else ".")


def _key_word(phrase: str) -> str:
    """The word of a motif or name to look for in the text ("the torn page" -> "page")."""
    words = [w for w in re.findall(r"\w+", phrase.casefold()) if w not in ("the", "a", "an", "of", "her", "his")]
    return max(words, key=len) if words else phrase.casefold()


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text and not text[:2].isupper() else text


# --- the writers -----------------------------------------------------------------------------------


class PlotPlanner(CrewAgent):
    username = "plot-planner"

    async def on_text(self, m: Message) -> None:
        if (m.channel != f"inbox.{self.username}" or m.payload.get("request") != "scene_plan"
                or m.sender_name != self.crew.username("showrunner")):
            return
        p = m.payload
        k, v = int(p["scene"]), int(p.get("version", 1))
        focus = Focus.from_json(p.get("focus"))
        outline = self.writer.outline(k, focus, v)
        await self.status("working", f"Outlining scene {k}, '{outline.title}'", 0.3)
        await self.say(GENERAL, "task_update", {"task": f"Outlining scene {k}: {outline.title}",
                                                "status": "in_progress", "progress": 0.5, "stage": "plan",
                                                "scene": k},
                       key=idempotency_key("re", m.id, "progress"), scene=k)
        steered_by = [i for i in p.get("steered_by") or [] if isinstance(i, str)]
        scene = await self.plan_into_outline(outline, p.get("outline_id"))
        payload = {"title": f"Scene {k}: {outline.title}", "beats": list(outline.beats), "scene": k, "version": v,
                   "heading": outline.heading,
                   "based_on": self.based_on(outline, scene=scene, steered_by=steered_by, by=focus.by)}
        if scene is not None:
            payload["outline_id"] = scene["id"]
        if focus:
            payload["focus"] = focus.as_json()
            payload["steered_by"] = steered_by
        await self.say(GENERAL, "scene_plan", payload, key=idempotency_key("re", m.id, "plan"), scene=k,
                       reply_to=steered_by[-1] if steered_by else None)
        await self.status("idle", f"Scene {k} outlined", 1.0)

    async def plan_into_outline(self, outline: Outline, outline_id) -> dict | None:
        """The plan in the story's outline: the human's planned scene marked `drafting`, or a new
        scene after the last one (found again, not added twice, when the planner handles the same
        request after a restart). None when the outline cannot be written (the crew carries on)."""
        path = f"/api/stories/{self.story}/outline"
        try:
            if isinstance(outline_id, int):
                scene = await self.client.get(f"{path}/{outline_id}")
                change = {"status": "drafting"} if scene["status"] == "planned" else {}
                if not scene.get("beats"):
                    change["beats"] = list(outline.beats)
                if change:
                    scene = (await self.client.request("PATCH", f"{path}/{outline_id}", json=change,
                                                       idempotent=True))[1]
                return scene
            current = (await self.client.get(path))["results"]
            mine = next((x for x in current if x["title"] == outline.title and x["created_by"] == self.username), None)
            if mine is not None:
                return mine
            body = {"title": outline.title[:200], "beats": [b[:1000] for b in outline.beats][:50], "status": "drafting",
                    "characters": [c.name for c in outline.cast], "pov": outline.cast[0].name if outline.cast else ""}
            return (await self.client.request("POST", path, json=body))[1]
        except MythlineError as exc:
            logger.warning("%s: the outline was not updated: %s", self.username, exc)
            return None

    async def on_query(self, m: Message) -> None:
        if m.channel != GENERAL or m.sender_name != self.crew.username("continuity") or not m.payload.get("plan"):
            return
        plan = await self.crew.plan(self.client, m.payload["plan"])
        outline = self.crew.outline_of(plan)
        await self.say(GENERAL, "text", {"text": outline.answer, "scene": outline.scene, "target": m.id},
                       key=idempotency_key("re", m.id, "answer"), scene=outline.scene, reply_to=m.id)


class Narrator(CrewAgent):
    username = "narrator"
    topics = (INBOX,)

    async def on_text(self, m: Message) -> None:
        if (m.payload.get("request") != "narration" or not m.payload.get("plan")
                or m.sender_name != self.crew.username("showrunner")):
            return
        plan = await self.crew.plan(self.client, m.payload["plan"])
        outline = self.crew.outline_of(plan)
        k = outline.scene
        await self.status("working", f"Scene {k}: narrating '{outline.title}'", 0.2)
        recent, around = await self.situation()
        parts = []
        for part in (1, 2):
            parts.append(await self.writer.narration(outline, part, recent=recent, around=around))
            await self.status("working", f"Scene {k}: narrating '{outline.title}'", 0.2 + 0.3 * part)
        outline_id = plan.payload.get("outline_id")
        written = await self.write_into_scene(outline_id, f"{outline.heading}\n\n" + "\n\n".join(parts),
                                              key=idempotency_key("re", m.id, "write"), marker=outline.heading)
        scene = self.crew.outline_scene(outline_id) or (
            {"id": outline_id, "position": k, "title": outline.title} if isinstance(outline_id, int) else None)
        steered_by = [i for i in plan.payload.get("steered_by") or [] if isinstance(i, str)]
        based_on = self.based_on(outline, scene=scene, steered_by=steered_by, by=outline.focus.by,
                                 document=written)
        for part, text in enumerate(parts, 1):
            await self.say(GENERAL, "narration", {"text": text, "scene": k, "part": part, "plan": plan.id,
                                                  "based_on": based_on},
                           key=idempotency_key("re", m.id, f"narration-{part}"), scene=k, reply_to=plan.id)
        await self.say(GENERAL, "task_update", {"task": f"Narration of scene {k}, '{outline.title}', is in the draft",
                                                "status": "done", "progress": 1.0, "stage": "narration", "scene": k},
                       key=idempotency_key("re", m.id, "done"), scene=k)
        await self.status("idle", f"Scene {k} narrated", 1.0)


class DialogueWriter(CrewAgent):
    username = "dialogue-writer"

    async def on_text(self, m: Message) -> None:
        if (m.channel != f"inbox.{self.username}" or m.payload.get("request") != "dialogue"
                or m.sender_name != self.crew.username("showrunner")):
            return
        plan = await self.crew.plan(self.client, m.payload["plan"])
        outline = self.crew.outline_of(plan)
        await self.status("working", f"Scene {outline.scene}: briefing {outline.cast[0].name}", 0.2)
        await self.brief(outline, plan, 0, key=idempotency_key("re", m.id, "brief-0"))

    async def brief(self, outline: Outline, plan: Message, index: int, *, key: str) -> None:
        speaker = outline.cast[index]
        cue = outline.beats[1 + index] if len(outline.beats) > 1 + index else outline.beats[-1]
        text = (f"Scene {outline.scene}, '{outline.title}': {'you open' if index == 0 else 'you answer'}, "
                f"{speaker.name}. Play this beat: {cue}")
        await self.say(f"inbox.{self.crew.voice_for(speaker, index)}", "text",
                       {"text": text, "request": "line", "scene": outline.scene, "index": index, "plan": plan.id,
                        "character": speaker.name}, key=key, scene=outline.scene)

    async def on_dialogue(self, m: Message) -> None:
        p = m.payload
        if m.channel != GENERAL or not self.crew.is_voice(m.sender_name) or not p.get("plan"):
            return
        plan = await self.crew.plan(self.client, p["plan"])
        outline = self.crew.outline_of(plan)
        index = int(p.get("index", 0))
        speaker = outline.cast[index]
        if p.get("revision_of"):
            original = await self.client.get_message(p["revision_of"])
            await self.replace_line(original, m, speaker)
        else:
            await self.write_into_scene(plan.payload.get("outline_id"),
                                        dialogue_block(speaker, p["line"], p.get("direction", "")),
                                        key=idempotency_key("re", m.id, "write"), marker=p["line"], at_end=True)
            await self.status("working", f"Scene {outline.scene}: {speaker.name}'s line is in the draft",
                              0.4 + 0.2 * index)
            if index == 0:
                await self.brief(outline, plan, 1, key=idempotency_key("re", m.id, "brief-1"))
        await self.maybe_done(outline, plan)

    async def replace_line(self, original: Message, revised: Message, speaker: Character) -> None:
        old = dialogue_block(speaker, original.payload["line"], original.payload.get("direction", ""))
        new = dialogue_block(speaker, revised.payload["line"], revised.payload.get("direction", ""))
        for _ in range(3):
            doc = await self.client.get_document(self.story, self.crew.document)
            if new in doc.text:
                return
            if old not in doc.text:
                await self.append_block(new, marker=revised.payload["line"])
                return
            try:
                await self.client.edit_document(self.story, self.crew.document, base_revision=doc.revision,
                                                find=old, replace=new)
                return
            except Conflict:
                continue  # someone edited that paragraph meanwhile: read again

    async def maybe_done(self, outline: Outline, plan: Message) -> None:
        """Both lines in, and the one the critic sent back revised: report the dialogue done."""
        k = outline.scene
        lines, revised = {}, set()
        page = await self.client.read_messages(self.story, GENERAL, before=None, after=max(0, plan.seq - 1), limit=500)
        for message in page.results:
            q = message.payload or {}  # None: deleted
            if message.msg_type != "dialogue" or q.get("plan") != plan.id:
                continue
            if q.get("revision_of"):
                revised.add(int(q.get("index", 0)))
            else:
                lines[int(q.get("index", 0))] = message
        if {0, 1} <= set(lines) and revise_index(k) in revised:
            await self.say(GENERAL, "task_update",
                           {"task": f"Dialogue of scene {k}, '{outline.title}', is in the draft, revised once",
                            "status": "done", "progress": 1.0, "stage": "dialogue", "scene": k},
                           key=idempotency_key(self.story, "scene", k, "plan", plan.id, "dialogue-done"), scene=k)
            await self.status("idle", f"Scene {k}: dialogue done", 1.0)


class Voice(CrewAgent):
    """Speaks the line of the character it is briefed for (the demo's voices each play their own)."""

    async def on_text(self, m: Message) -> None:
        if (m.channel != f"inbox.{self.username}" or m.payload.get("request") != "line"
                or m.sender_name != self.crew.username("dialogue-writer")):
            return
        plan = await self.crew.plan(self.client, m.payload["plan"])
        outline = self.crew.outline_of(plan)
        index = int(m.payload.get("index", 0))
        speaker = outline.cast[min(index, len(outline.cast) - 1)]
        await self.status("working", f"Scene {outline.scene}: finding {speaker.name}'s line", 0.5)
        recent, around = await self.situation()
        line, direction = await self.writer.line(outline, index, recent=recent, around=around)
        await self.say(GENERAL, "dialogue", {"character": speaker.name, "line": line, "direction": direction,
                                             "scene": outline.scene, "index": index, "plan": plan.id},
                       key=idempotency_key("re", m.id, "line"), scene=outline.scene, reply_to=plan.id)
        await self.status("waiting", f"Scene {outline.scene}: waiting for notes", None)

    async def on_feedback(self, m: Message) -> None:
        p = m.payload
        if m.channel != GENERAL or m.sender_name != self.crew.username("critic") or not p.get("revise") or not p.get("target"):
            return
        target = await self.client.get_message(p["target"])
        if target.sender_name != self.username:
            return
        plan = await self.crew.plan(self.client, target.payload["plan"])
        outline = self.crew.outline_of(plan)
        index = int(target.payload.get("index", 0))
        speaker = outline.cast[min(index, len(outline.cast) - 1)]
        await self.status("working", f"Scene {outline.scene}: revising a line after the critic's note", 0.8)
        line, direction = await self.writer.revise(outline, index, p.get("text", ""))
        await self.say(GENERAL, "dialogue", {"character": speaker.name, "line": line, "direction": direction,
                                             "scene": outline.scene, "index": index, "plan": plan.id,
                                             "revision_of": target.id},
                       key=idempotency_key("re", m.id, "revision"), scene=outline.scene, reply_to=m.id)
        await self.status("idle", f"Scene {outline.scene}: line revised", 1.0)


class Critic(CrewAgent):
    username = "critic"
    topics = (GENERAL,)

    async def on_proposal(self, m: Message) -> None:
        if m.sender_name != self.crew.username("showrunner") or not m.payload.get("plan"):
            return
        plan = await self.crew.plan(self.client, m.payload["plan"])
        outline = self.crew.outline_of(plan)
        reason = (f"'{outline.title}' earns its place: {_lower_first(outline.beats[1]) if len(outline.beats) > 1 else ''}"
                  .rstrip())
        await self.say(GENERAL, "vote", {"proposal": m.id, "choice": "yes", "reason": reason,
                                         "scene": outline.scene},
                       key=idempotency_key("re", m.id, "vote"), scene=outline.scene)

    async def on_dialogue(self, m: Message) -> None:
        p = m.payload
        if not self.crew.is_voice(m.sender_name) or p.get("revision_of") or not p.get("plan"):
            return
        plan = await self.crew.plan(self.client, p["plan"])
        outline = self.crew.outline_of(plan)
        index = int(p.get("index", 0))
        revise = index == revise_index(outline.scene)
        await self.status("working", f"Scene {outline.scene}: reading {p.get('character')}'s line", 0.5)
        text, rating = await self.writer.critique(outline, index, p.get("line", ""), revise)
        await self.say(GENERAL, "feedback", {"text": text, "target": m.id, "rating": rating, "revise": revise,
                                             "scene": outline.scene, "plan": plan.id},
                       key=idempotency_key("re", m.id, "feedback"), scene=outline.scene, reply_to=m.id)
        # The note lands on the line it is about, in the draft: a comment on the passage.
        await self.comment_on(p.get("line", ""), text)
        await self.status("idle", "Reading the draft", None)

    async def comment_on(self, passage: str, body: str, *, tries: int = 6) -> None:
        """A comment thread on `passage` in the crew's document (once it is there: the dialogue
        writer puts the line in as the critic reads it), unless this agent commented on it already."""
        if not passage or not body:
            return
        path = f"/api/stories/{self.story}/documents/{self.crew.document}/comments"
        try:
            for attempt in range(tries):
                doc = await self.client.get_document(self.story, self.crew.document)
                at = doc.text.find(passage)
                if at >= 0:
                    break
                await asyncio.sleep(0.3)
            else:
                return
            threads = (await self.client.get(path)).get("results") or []
            if any(t.get("created_by") == self.username and t.get("quote") == passage[:500] for t in threads):
                return  # a repeat after a restart
            await self.client.request("POST", path, json={"from": at, "to": at + len(passage), "revision": doc.revision,
                                                          "body": body[:5000]})
        except MythlineError as exc:
            logger.info("%s: no comment on the line: %s", self.username, exc)


class Continuity(CrewAgent):
    username = "continuity"
    topics = (GENERAL,)

    async def on_narration(self, m: Message) -> None:
        p = m.payload
        if m.sender_name != self.crew.username("narrator") or p.get("part") not in (1, 2) or not p.get("plan"):
            return
        plan = await self.crew.plan(self.client, p["plan"])
        outline = self.crew.outline_of(plan)
        if p.get("part") == 2:
            await self.on_narration_2(m, plan, outline)
            return
        await self.status("working", f"Checking scene {outline.scene} against the earlier ones", 0.5)
        await self.say(GENERAL, "query", {"text": outline.question, "scene": outline.scene, "target": m.id,
                                          "plan": plan.id},
                       key=idempotency_key("re", m.id, "query"), scene=outline.scene, reply_to=m.id)
        await self.status("idle", "Keeping the facts straight", None)

    async def on_narration_2(self, m: Message, plan: Message, outline: Outline) -> None:
        """Checks the scene against what the request asked for: the characters it named and its
        motif must be in the narration; says so either way (a `feedback` on the scene)."""
        focus = outline.focus
        if not focus:
            return
        page = await self.client.read_messages(self.story, GENERAL, after=max(0, plan.seq - 1), limit=500,
                                               types=["narration"])
        text = " ".join(x.text for x in page.results if (x.payload or {}).get("plan") == plan.id).casefold()
        asked = [*focus.characters, *([focus.motif] if focus.motif else [])]
        missing = [a for a in asked if _key_word(a) not in text]
        who = focus.by or "the room"
        if missing:
            note = (f"Scene {outline.scene} misses part of what {who} asked for: no "
                    f"{' and no '.join(missing)} in the narration. Worth another pass.")
        else:
            note = f"Scene {outline.scene} does what {who} asked: {', '.join(asked)}, all in the narration."
        await self.say(GENERAL, "feedback", {"text": note, "target": m.id, "rating": 2 if missing else 4,
                                             "scene": outline.scene, "plan": plan.id, "request_met": not missing,
                                             "missing": missing},
                       key=idempotency_key("re", m.id, "request-check"), scene=outline.scene, reply_to=m.id)
