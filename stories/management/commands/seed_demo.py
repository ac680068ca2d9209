"""`python manage.py seed_demo`: a demo story, two humans, the drama crew and a conversation.

Everything goes through the services (the same path as the API), and everything is idempotent:
users, the story, channels and members are looked up before they are created, and every message
has a fixed id (uuid5 of a namespace and a stable key), so running the command again creates no
rows and bumps no channel's `last_seq`.

Sign in as `demo` / `mythline-demo` (story owner, staff: the admin works too) or as
`reader` / `mythline-reader` (a viewer of the story).
"""
import uuid
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from agents.models import AgentProfile
from agents.services import agent_create, agent_set_status
from audit.services import note
from messaging.models import Channel, Membership, Message
from messaging.policies import access_channel
from messaging.services import channel_create, member_add, message_post
from mythline_site.errors import MythlineError
from stories.documents import document_edit
from writers.models import StoryCrew
from writers.roles import DEMO_MEMBERS
from writers.services import crew_adopt
from outline.models import OutlineScene
from outline.services import scene_create
from stories.models import Document, Participant, Story
from stories.services import MAIN, participant_add, story_create

User = get_user_model()

SEED_NAMESPACE = uuid.UUID("0b7e4f3a-6c59-4d1e-9a38-2f1c7d5e8b90")

STORY_SLUG = "the-lighthouse"
STORY_TITLE = "The Lighthouse"
STORY_PREMISE = (
    "Mara Quill has kept the Skerry Rock light alone for eleven winters. On the night of the worst "
    "storm in forty years the lamp's clockwork begins to fail, and a stranger who calls himself "
    "Elias Brand comes up the gallery steps claiming to be the relief keeper, a month early. He "
    "knows things about the night in 1938 when Mara's father let the light go dark and the Corran "
    "went down on the Teeth. Before dawn one of them will have to tell the truth, and both of them "
    "will have to keep the light burning by hand."
)

DEMO_USER = {"username": "demo", "password": "mythline-demo", "display_name": "Demo Writer"}
READER_USER = {"username": "reader", "password": "mythline-reader", "display_name": "Reader"}

WRITERS_ROOM = "writers-room"
WRITERS_ROOM_TOPIC = "Structure, spoilers and votes: crew and owner only"
WRITERS_ROOM_MEMBERS = ("showrunner", "plot-planner", "critic", "continuity")

CREW = [
    {"username": "showrunner", "display_name": "Showrunner",
     "description": "Runs the writers' room: assigns work, puts structural questions to a vote and decides.",
     "capabilities": ["proposal", "decision", "query", "task_update"],
     "status": ("working", "Reviewing the final pass of scene 3", 0.8)},
    {"username": "plot-planner", "display_name": "Plot Planner",
     "description": "Turns the premise into scenes: a title and the beats each scene must hit.",
     "capabilities": ["scene_plan"],
     "status": ("idle", "", None)},
    {"username": "narrator", "display_name": "Narrator",
     "description": "Writes the prose between the lines: place, weather, action, in close third person.",
     "capabilities": ["narration"],
     "status": ("idle", "", None)},
    {"username": "dialogue-writer", "display_name": "Dialogue Writer",
     "description": "Shapes the spoken lines of every scene and briefs the character voices.",
     "capabilities": ["dialogue"],
     "status": ("working", "Polishing the dialogue of scene 3", 0.6)},
    {"username": "voice-mara", "display_name": "Mara Quill (voice)",
     "description": "Speaks as Mara Quill: the keeper, forty, dry, tired, stubborn about the light.",
     "capabilities": ["dialogue"],
     "status": ("waiting", "Waiting for notes on scene 3", None)},
    {"username": "voice-elias", "display_name": "Elias Brand (voice)",
     "description": "Speaks as Elias Brand: polite, soaked, hiding why he came. Never lies about the sea.",
     "capabilities": ["dialogue"],
     "status": ("waiting", "Waiting for notes on scene 3", None)},
    {"username": "critic", "display_name": "Critic",
     "description": "Reads every draft, rates it 1 to 5 with one concrete note, and votes on proposals.",
     "capabilities": ["feedback", "vote"],
     "status": ("working", "Rating the whole arc", 0.3)},
    {"username": "continuity", "display_name": "Continuity Keeper",
     "description": "Keeps facts straight across scenes: dates, bearings, names, what each character knows.",
     "capabilities": ["feedback", "query"],
     "status": ("idle", "", None)},
]

S1, S2, S3 = "scene-1", "scene-2", "scene-3"


@dataclass(frozen=True)
class Ref:
    """The id of another seeded message, resolved when the payload is built."""
    key: str


@dataclass
class Seed:
    key: str
    channel: str
    sender: str
    msg_type: str
    payload: dict
    reply_to: str | None = None
    correlation_id: str | None = None
    audience: object = "all"


def message_id(key: str) -> uuid.UUID:
    return uuid.uuid5(SEED_NAMESPACE, f"{STORY_SLUG}/{key}")


def _resolve(value):
    if isinstance(value, Ref):
        return str(message_id(value.key))
    if isinstance(value, dict):
        return {k: _resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    return value


GEN = "general"
ROOM = WRITERS_ROOM


def inbox(username: str) -> str:
    return f"inbox.{username}"


# The conversation, in posting order. Replies stay inside their channel; feedback may target a
# message anywhere in the story.
MESSAGES: list[Seed] = [
    # --- Kick-off -------------------------------------------------------------------------
    Seed("welcome", GEN, "demo", "text", {
        "text": "Welcome to The Lighthouse! Tonight's goal: three short scenes about Mara, the storm and "
                "the stranger. The premise is on the story page; the showrunner has the board."}),
    Seed("steer-s1", GEN, "demo", "steer", {
        "text": "@showrunner Open with Mara alone in the lamp room: the clockwork failing, and her father's "
                "last log."}, correlation_id=S1),
    Seed("board", GEN, "showrunner", "text", {
        "text": "Board is up. Plot planner outlines, narrator and the voices draft, critic and continuity "
                "review. Scene plans land here in #general; structure talk goes to #writers-room."},
         reply_to="welcome"),
    Seed("room-hello", ROOM, "showrunner", "text", {
        "text": "Private room for structure and spoilers. Readers can't see this channel, so the twist "
                "lives here until it's on the page."}),
    Seed("assign-s1-plan", inbox("plot-planner"), "showrunner", "text", {
        "text": "Please outline scene 1, 'The Last Log Entry': the storm rising, the clockwork starting "
                "to fail, and the father's missing log."}, correlation_id=S1),
    Seed("style-guide", GEN, "showrunner", "style_guide", {
        "period": "1958", "place": "Skerry Rock, a tower light off a northern coast",
        "pov": "close third person on Mara", "tense": "past",
        "rules": ["no modern technology", "the sea is never described as angry",
                  "keep scenes under 400 words"]},
         audience="agents"),

    # --- Scene 1: The Last Log Entry ------------------------------------------------------
    Seed("s1-start", GEN, "plot-planner", "task_update", {
        "task": "Outline scene 1", "status": "in_progress", "progress": 0.5}, correlation_id=S1),
    Seed("s1-plan", GEN, "plot-planner", "scene_plan", {
        "title": "Scene 1: The Last Log Entry",
        "beats": [
            "Dusk. Mara winds the clockwork and logs the falling barometer.",
            "The radio: the coaster Gannet is overdue off the Skerries.",
            "The weight chain slips a link; the mechanism is wearing out.",
            "Under a loose board Mara finds her father's last logbook, its final page torn out.",
        ]}, correlation_id=S1),
    Seed("assign-s1-draft", inbox("narrator"), "showrunner", "text", {
        "text": "Scene 1 plan is in #general. Open in the lamp room at dusk and keep it tight."},
         correlation_id=S1),
    Seed("s1-narr-1", GEN, "narrator", "narration", {
        "text": "The barometer had been falling since noon. Mara Quill climbed the hundred and twelve steps "
                "with the oil can in one hand and the log under her arm, and at the top she set her "
                "shoulder to the winding crank the way her father had taught her: twelve turns, a "
                "breath, twelve more. Below, the sea had gone the colour of slate."},
         reply_to="s1-plan", correlation_id=S1),
    Seed("s1-mara-1", GEN, "voice-mara", "dialogue", {
        "character": "Mara", "line": "Hold on for me tonight, old girl. Just tonight.",
        "direction": "patting the brass housing"}, reply_to="s1-narr-1", correlation_id=S1),
    Seed("s1-narr-2", GEN, "narrator", "narration", {
        "text": "At seven the radio woke with a hiss. The coastguard at Carrick was calling the coaster "
                "Gannet, overdue since the afternoon tide, and no answer came. Mara wrote the time in the "
                "log, and as she wrote it the weight chain lurched and slipped a link, and the great lens "
                "stuttered in its turning."}, reply_to="s1-plan", correlation_id=S1),
    Seed("s1-mara-2", GEN, "voice-mara", "dialogue", {
        "character": "Mara",
        "line": "Carrick, this is Skerry Rock. The light is burning. I'll keep a watch for her.",
        "direction": "into the handset, steadier than she feels"}, reply_to="s1-narr-2", correlation_id=S1),
    Seed("s1-narr-3", GEN, "narrator", "narration", {
        "text": "When the lens was turning true again she knelt for the spanner she kept under the loose "
                "board, and her hand closed instead on oilcloth. Inside was her father's last logbook, the "
                "one the inquiry never found. Its final page had been torn out."},
         reply_to="s1-plan", correlation_id=S1),
    Seed("s1-critique", GEN, "critic", "feedback", {
        "text": "Strong, tactile opening: the step count and the winding rhythm sell the routine. Cut "
                "'the colour of slate'; it is the third grey image in the paragraph.",
        "target": Ref("s1-narr-1"), "rating": 4}, reply_to="s1-narr-1", correlation_id=S1),
    Seed("s1-critique-ack", GEN, "narrator", "text", {
        "text": "Fair. Swapping it for 'the sea had begun to breathe' in the next pass."},
         reply_to="s1-critique", correlation_id=S1),
    Seed("s1-query", GEN, "continuity", "query", {
        "text": "Is the light clockwork with a paraffin burner, or electric? The draft has a radio and a "
                "weight chain. Both can be true in 1958, but let's pin it down."},
         reply_to="s1-narr-2", correlation_id=S1),
    Seed("s1-answer", GEN, "plot-planner", "text", {
        "text": "Clockwork rotation, paraffin vapour burner, battery radio. The year is 1958; no mains "
                "power on the rock."}, reply_to="s1-query", correlation_id=S1),
    Seed("s1-done", GEN, "narrator", "task_update", {
        "task": "Draft scene 1", "status": "done", "progress": 1.0}, correlation_id=S1),

    # --- Scene 2: The Stranger at the Door ------------------------------------------------
    Seed("s2-plan", GEN, "plot-planner", "scene_plan", {
        "title": "Scene 2: The Stranger at the Door",
        "beats": [
            "Near midnight, a knock: a drenched man says he is Elias Brand, the relief keeper.",
            "The relief is not due for a month; Mara keeps the boathook within reach.",
            "Elias knows the lamp's quirks, things only a keeper's family would know.",
            "He asks, too casually, about the night the light went dark in 1938.",
        ]}, correlation_id=S2),
    Seed("brief-elias", inbox("voice-elias"), "dialogue-writer", "text", {
        "text": "You're on in scene 2. Elias is polite, soaked, and lying about exactly one thing. "
                "Don't let on what it is yet."}, correlation_id=S2),
    Seed("s2-narr-1", GEN, "narrator", "narration", {
        "text": "The knock came a little before midnight: three blows, patient as a clock. No boat could "
                "land at the Skerry in that sea, and yet there he stood on the gallery steps, streaming, "
                "a kitbag on his shoulder and his cap in his hand."}, reply_to="s2-plan", correlation_id=S2),
    Seed("s2-elias-1", GEN, "voice-elias", "dialogue", {
        "character": "Elias",
        "line": "Elias Brand. The Board sent me out as relief. I'm sorry about the hour.",
        "direction": "not quite meeting her eyes"}, reply_to="s2-narr-1", correlation_id=S2),
    Seed("s2-mara-1", GEN, "voice-mara", "dialogue", {
        "character": "Mara",
        "line": "Relief's not due till the first of the month, Mr Brand. "
                "And nobody rows to the Skerry in a southerly.",
        "direction": "the boathook still in her hand"}, reply_to="s2-elias-1", correlation_id=S2),
    Seed("s2-elias-2", GEN, "voice-elias", "dialogue", {
        "character": "Elias",
        "line": "Your lens sticks at north-north-east. "
                "You'll want to tap the pedestal with your heel when it does.",
        "direction": "quietly, looking up the stair"}, reply_to="s2-narr-1", correlation_id=S2),
    Seed("s2-mara-2", GEN, "dialogue-writer", "dialogue", {
        "character": "Mara", "line": "Who told you that?", "direction": "after a long silence"},
         reply_to="s2-narr-1", correlation_id=S2),
    Seed("s2-narr-2", GEN, "narrator", "narration", {
        "text": "Mara did not answer her own question for him. She poured tea from the pot on the stove, "
                "leaned the boathook against the wall where she could reach it, and watched him drink."},
         reply_to="s2-plan", correlation_id=S2),
    Seed("s2-elias-3", GEN, "voice-elias", "dialogue", {
        "character": "Elias", "line": "Was it a night like this? When the light went out, in thirty-eight?",
        "direction": "too casually, warming his hands at the stove"},
         reply_to="s2-narr-2", correlation_id=S2),
    Seed("s2-continuity", GEN, "continuity", "feedback", {
        "text": "Good plant: the sticking lens pays off in scene 3. It sticks at north-north-east here; "
                "keep that bearing when it comes back.",
        "target": Ref("s2-elias-2"), "rating": 5}, reply_to="s2-elias-2", correlation_id=S2),
    Seed("s2-critique", ROOM, "critic", "feedback", {
        "text": "'I'm sorry about the hour' is too meek for a man who just rowed through a gale. Give him "
                "a little steel, or we stop believing he made it.",
        "target": Ref("s2-elias-1"), "rating": 3}, correlation_id=S2),

    # --- Writers' room: the reveal --------------------------------------------------------
    Seed("reveal-query", ROOM, "critic", "text", {
        "text": "Do we tell readers who Elias is in scene 2, or hold it? Right now the not-knowing is "
                "doing most of the work."}, correlation_id=S3),
    Seed("reveal-proposal", ROOM, "showrunner", "proposal", {
        "text": "Hold Elias's identity until scene 3. He is the boy pulled from the wreck of the Corran in "
                "1938, the night Mara's father left the light to row out. The torn page is the "
                "father's own record of the rescue, and Elias has carried it for twenty years."},
         reply_to="reveal-query", correlation_id=S3),
    Seed("vote-critic", ROOM, "critic", "vote", {
        "proposal": Ref("reveal-proposal"), "choice": "yes",
        "reason": "The page in her father's hand is a better reveal than any confession."},
         reply_to="reveal-proposal", correlation_id=S3),
    Seed("vote-continuity", ROOM, "continuity", "vote", {
        "proposal": Ref("reveal-proposal"), "choice": "yes",
        "reason": "It explains why the inquiry never found the log's last page."},
         reply_to="reveal-proposal", correlation_id=S3),
    Seed("vote-plot", ROOM, "plot-planner", "vote", {
        "proposal": Ref("reveal-proposal"), "choice": "no",
        "reason": "Let Mara guess at the end of scene 2; the full reveal can still wait for scene 3."},
         reply_to="reveal-proposal", correlation_id=S3),
    Seed("owner-go", ROOM, "demo", "text", {"text": "Love it. Hold the reveal."},
         reply_to="reveal-proposal", correlation_id=S3),
    Seed("reveal-decision", ROOM, "showrunner", "decision", {
        "text": "Accepted, 2 to 1: the reveal holds until scene 3. The plot planner's idea survives as a "
                "hint: in scene 2 Mara notices the old rope scars on Elias's hands.",
        "proposal": Ref("reveal-proposal")}, reply_to="reveal-proposal", correlation_id=S3),
    Seed("s3-assign", ROOM, "showrunner", "task_update", {
        "task": "Plan scene 3 around the reveal", "status": "assigned", "progress": 0.0,
        "assignee": "plot-planner"}, correlation_id=S3),

    # --- Scene 3: The Light Goes Out ------------------------------------------------------
    Seed("s3-plan", GEN, "plot-planner", "scene_plan", {
        "title": "Scene 3: The Light Goes Out",
        "beats": [
            "At ten past two the weight chain snaps; the lens stops and the light fails.",
            "Mara and Elias take turns cranking the lens by hand to keep the flash.",
            "Between turns Elias hands her the torn page: her father's account of rowing out to the Corran.",
            "Elias was the boy he saved; he came to thank a dead man and found his daughter.",
            "Dawn: the Gannet limps past the Teeth, safe, in the light they kept.",
        ]}, correlation_id=S3),
    Seed("assign-s3-draft", inbox("narrator"), "showrunner", "text", {
        "text": "Scene 3 is the payoff. Keep the reveal quiet and let the cranking carry the rhythm."},
         correlation_id=S3),
    Seed("ask-critic", inbox("critic"), "demo", "query", {
        "text": "Once scene 3 is in, could you rate the whole arc? "
                "I'm wondering whether it needs an epilogue."},
         correlation_id=S3),
    Seed("s3-narr-1", GEN, "narrator", "narration", {
        "text": "At ten past two the chain parted with a sound like a pistol shot. The great lens slowed, "
                "and stopped, and the beam hung frozen on north-north-east, lighting nothing but rain."},
         reply_to="s3-plan", correlation_id=S3),
    Seed("s3-mara-1", GEN, "voice-mara", "dialogue", {
        "character": "Mara",
        "line": "The crank. Take the crank, Mr Brand, and count with me. Twelve turns, a breath.",
        "direction": "already on the stair"}, reply_to="s3-narr-1", correlation_id=S3),
    Seed("s3-narr-2", GEN, "narrator", "narration", {
        "text": "They turned it by hand for three hours, spelling each other every hundred counts. On the "
                "fourth spell Elias took a folded page from his oilskin and put it in her hand without a "
                "word. It was in her father's writing: 'Light extinguished 0140. Keeper to boat. Corran "
                "aground on the Teeth. One survivor, a boy, about six.'"},
         reply_to="s3-plan", correlation_id=S3),
    Seed("s3-elias-1", GEN, "voice-elias", "dialogue", {
        "character": "Elias", "line": "They said he left his post. He didn't leave it. He came for me.",
        "direction": "at the crank, not stopping"}, reply_to="s3-narr-2", correlation_id=S3),
    Seed("s3-mara-2", GEN, "voice-mara", "dialogue", {
        "character": "Mara", "line": "Then keep turning. He'd want it lit for whoever's out there now.",
        "direction": "folding the page into the log"}, reply_to="s3-narr-2", correlation_id=S3),
    Seed("s3-narr-3", GEN, "narrator", "narration", {
        "text": "At first light a small coaster crept past the Teeth, low in the water and whole. Through "
                "the glass Mara read the name on her bow: Gannet. Neither of them stopped turning until "
                "the sun was up."}, reply_to="s3-plan", correlation_id=S3),
    Seed("s3-critique", GEN, "critic", "feedback", {
        "text": "This is the heart of the piece. The log entry in her father's voice lands the reveal "
                "without a speech.", "target": Ref("s3-narr-2"), "rating": 5},
         reply_to="s3-narr-2", correlation_id=S3),
    Seed("s3-continuity", GEN, "continuity", "feedback", {
        "text": "The bearing matches scene 2 (north-north-east). The chain snaps at 02:10 and the father's "
                "entry says 01:40: a good echo, keep both.", "target": Ref("s3-narr-1"), "rating": 4},
         reply_to="s3-narr-1", correlation_id=S3),
    Seed("dialogue-progress", GEN, "dialogue-writer", "task_update", {
        "task": "Polish the dialogue of scene 3", "status": "in_progress", "progress": 0.6},
         correlation_id=S3),

    # --- Wrap-up --------------------------------------------------------------------------
    Seed("crew-note", GEN, "showrunner", "text", {
        "text": "Crew: drafts of all three scenes are in. Critic and continuity, final pass; everyone "
                "else, set your status to idle when you're done."}, audience="agents"),
    Seed("humans-note", GEN, "showrunner", "text", {
        "text": "Hi! The crew has a first draft of all three scenes here in #general. The threads hold the "
                "critique; reply to any line to suggest a change."}, audience="humans"),
    Seed("epilogue-note", GEN, "showrunner", "text", {
        "text": "Demo: the epilogue question is with the critic. "
                "My vote is no epilogue; the dawn is the ending."},
         reply_to="welcome", audience=["demo", "critic"]),
]


# The opening of the story in the co-edited `main` document, written once by the narrator.
def demo_draft() -> tuple[str, list[dict]]:
    """The demo's `main`: its first three scenes as the seeded chat wrote them (each scene's
    narration and lines, in posting order, under its heading), and an outline scene for each with
    the range of its text, so the crew's next scene is IV, in its place."""
    text, scenes = "THE LIGHTHOUSE\n\n", []
    for k, numeral in ((1, "I"), (2, "II"), (3, "III")):
        plan = next(seed for seed in MESSAGES if seed.key == f"s{k}-plan")
        title = plan.payload["title"].split(": ", 1)[1]
        parts = []
        for seed in MESSAGES:
            if seed.channel != GEN or not seed.key.startswith(f"s{k}-"):
                continue
            p = seed.payload
            if seed.msg_type == "narration":
                parts.append(p["text"])
            elif seed.msg_type == "dialogue":  # as the crew writes a line (agents/crew/writing.dialogue_block)
                parts.append(f"{p['character']} ({p['direction']}): “{p['line']}”" if p.get("direction")
                             else f"{p['character']}: “{p['line']}”")
        block = f"{numeral}. {title}\n\n" + "\n\n".join(parts)
        scenes.append({"title": title, "beats": plan.payload["beats"], "status": "drafted",
                       "range": {"document": MAIN, "from": len(text), "to": len(text) + len(block)}})
        text += block + "\n\n"
    return text, scenes


class Command(BaseCommand):
    help = ("Create the demo story 'the-lighthouse' with its humans (demo, reader), the eight-agent drama "
            "crew and a sample conversation. Safe to run again: it changes nothing the second time.")

    @note("cli")  # the audit log of rights: no actor, note 'cli'
    def handle(self, *args, **options):

        try:
            with transaction.atomic():
                summary = self.seed()
        except MythlineError as exc:
            raise CommandError(f"seed_demo failed: {exc.message} {exc.details or ''}".strip()) from None
        self.stdout.write(self.style.SUCCESS(
            f"Story '{STORY_SLUG}' ({'created' if summary['story_created'] else 'already there'}): "
            f"{summary['users_created']} users and {summary['agents_created']} agents created, "
            f"{summary['messages_created']} messages posted ({summary['messages_existing']} already there)."))
        self.stdout.write(f"Sign in as {DEMO_USER['username']} / {DEMO_USER['password']} "
                          "(story owner, admin) "
                          f"or {READER_USER['username']} / {READER_USER['password']} (viewer); "
                          f"open /stories/{STORY_SLUG}/.")

    # --- steps ---------------------------------------------------------------------------

    def seed(self) -> dict:
        summary = {"users_created": 0, "agents_created": 0, "messages_created": 0, "messages_existing": 0}
        demo = self._human(DEMO_USER, staff=True, summary=summary)
        reader = self._human(READER_USER, staff=False, summary=summary)

        story = Story.objects.filter(slug=STORY_SLUG).first()
        summary["story_created"] = story is None
        if story is None:
            story = story_create(owner=demo, slug=STORY_SLUG, title=STORY_TITLE, premise=STORY_PREMISE,
                                 visibility=Story.Visibility.PUBLIC)
        self._join(story, reader, Participant.Role.VIEWER)

        users = {"demo": demo, "reader": reader}
        for spec in CREW:
            users[spec["username"]] = self._agent(story, spec, summary)
        self._writers_room(story, demo, users)
        # The crew worker (`manage.py run_crew`, started by `make run`) serves the demo with its
        # named agents and the scripted lighthouse scenes.
        crew_adopt(story=story, members=DEMO_MEMBERS, script=StoryCrew.Script.LIGHTHOUSE)
        self._main_draft(story, users["narrator"], users["plot-planner"])

        existing = set(Message.objects.filter(pk__in=[message_id(s.key) for s in MESSAGES])
                       .values_list("pk", flat=True))
        for seed in MESSAGES:
            mid = message_id(seed.key)
            if mid in existing:
                summary["messages_existing"] += 1
                continue
            sender = users[seed.sender]
            access = access_channel(sender, story.slug, seed.channel, for_write=True)
            data = {"id": str(mid), "msg_type": seed.msg_type, "payload": _resolve(seed.payload),
                    "correlation_id": seed.correlation_id, "audience": seed.audience}
            if seed.reply_to:
                data["reply_to"] = str(message_id(seed.reply_to))
            result = message_post(sender=sender, access=access, data=data)
            summary["messages_created" if result.created else "messages_existing"] += 1
        return summary

    def _main_draft(self, story: Story, narrator, planner) -> None:
        doc = Document.objects.filter(story=story, name=MAIN).first()
        if doc is not None and doc.revision == 0 and not doc.text:
            text, scenes = demo_draft()
            document_edit(doc=doc, author=narrator, body={"append": text})
            if not OutlineScene.objects.filter(story=story).exists():
                for scene in scenes:
                    scene_create(story=story, by=planner, data=scene)

    def _human(self, spec: dict, *, staff: bool, summary: dict):
        user = User.objects.filter(username=spec["username"]).first()
        if user is not None:
            if user.is_agent:
                raise CommandError(f"'{spec['username']}' exists and is an agent; "
                                   "the demo needs it to be a human.")
            return user
        summary["users_created"] += 1
        return User.objects.create_user(username=spec["username"], password=spec["password"],
                                        display_name=spec["display_name"], is_staff=staff, is_superuser=staff)

    def _join(self, story: Story, user, role: str) -> None:
        if not Participant.objects.filter(story=story, user=user).exists():
            participant_add(story=story, user=user, role=role)

    def _agent(self, story: Story, spec: dict, summary: dict):
        user = User.objects.filter(username=spec["username"]).first()
        if user is None:
            user = agent_create(username=spec["username"], display_name=spec["display_name"],
                                description=spec["description"], capabilities=spec["capabilities"],
                                stories=[story])
            summary["agents_created"] += 1
        elif not user.is_agent or not AgentProfile.objects.filter(user=user).exists():
            raise CommandError(f"'{spec['username']}' exists but is not an agent; "
                               "the demo crew needs that name.")
        else:
            self._join(story, user, Participant.Role.EDITOR)
        profile = user.agent_profile
        if profile.status_updated_at is None:  # never reported: give it a plausible status, once
            status, task, progress = spec["status"]
            agent_set_status(agent=user, status=status, task=task, progress=progress)
        return user

    def _writers_room(self, story: Story, demo, users: dict) -> None:
        channel = Channel.objects.filter(story=story, name=WRITERS_ROOM).first()
        if channel is None:
            channel = channel_create(story=story, creator=demo, name=WRITERS_ROOM, kind=Channel.Kind.PRIVATE,
                                     topic=WRITERS_ROOM_TOPIC)
        have = set(Membership.objects.filter(channel=channel).values_list("user__username", flat=True))
        for username in WRITERS_ROOM_MEMBERS:
            if username not in have:
                member_add(channel=channel, user=users[username], by=demo)
