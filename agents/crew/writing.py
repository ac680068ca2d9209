"""The crew's default writing rules: deterministic, offline, and good enough to read.

Every text is a function of the scene (its number, its outline seed, the focus a human asked for,
the plan version) and of who writes it, so an agent that handles the same request twice writes
the same words (and its idempotent post is recognised as a repeat). Texts differ from scene to
scene in their words, not just their numbers, so the server's loop prevention (which ignores
digits and punctuation) never mistakes a new scene for an agent repeating itself.

`Writer` is the interface; `agents.crew.llm.LLMWriter` replaces the prose with a model's when an
OpenAI-compatible endpoint is configured, and falls back to these rules when it fails.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from mythline_sdk import Participant

# --- the cast -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Character:
    name: str                 # what the others call them: "Mara"
    full_name: str            # "Mara Quill"
    voice: str                # the agent that speaks as them: "voice-mara"
    role: str = "a visitor"   # "the keeper"


DEFAULT_CAST = (
    Character("Mara", "Mara Quill", "voice-mara", "the keeper"),
    Character("Elias", "Elias Brand", "voice-elias", "the stranger"),
)


def cast_from_participants(participants: list[Participant]) -> tuple[Character, ...]:
    """Characters from the story's `voice-<name>` agents (display name "Mara Quill (voice)");
    the lighthouse pair when the story has fewer than two voices."""
    known = {c.voice: c for c in DEFAULT_CAST}
    cast = []
    for p in participants:
        username = p.username
        if p.kind != "agent" or not username.startswith("voice-"):
            continue
        if username in known:
            cast.append(known[username])
            continue
        full = re.sub(r"\s*\(voice\)\s*$", "", p.display_name or "").strip() or username[6:].title()
        cast.append(Character(full.split()[0], full, username))
    return tuple(cast[:2]) if len(cast) >= 2 else DEFAULT_CAST


# --- outlines -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    title: str
    motif: str
    beats: tuple[str, ...]
    narration: tuple[str, str]
    lines: tuple[tuple[str, str], tuple[str, str]]       # (line, direction) for cast[0], cast[1]
    revisions: tuple[tuple[str, str], tuple[str, str]]
    question: str
    answer: str


# {a}/{b}: the two characters' names; {A}/{B}: their full names.
SEEDS: tuple[Seed, ...] = (
    Seed("The Clockwork Slips", "the clockwork",
         ("Dusk on Skerry Rock: {a} winds the lamp's clockwork while the barometer falls.",
          "The weight chain slips a link and the great lens stutters in its turning.",
          "{b} climbs the gallery stair out of the rain and offers to take a turn at the crank.",
          "They agree to keep the light turning by hand until the relief boat can land."),
         ("The barometer had been falling since noon. {A} climbed to the lamp room with the oil can and the "
          "log, and set her shoulder to the winding crank: twelve turns, a breath, twelve more.",
          "At the ninth turn the weight chain lurched and slipped a link, and the great lens stuttered. "
          "Below, on the gallery stair, a man's boots rang on the iron, slow and patient as a clock."),
         (("Hold on for me tonight, old girl. Just tonight.", "patting the brass housing"),
          ("Let me take the crank. You've been at it since dusk.", "shrugging off his wet coat")),
         (("Twelve turns, a breath, twelve more. Hold on, old girl.", "counting under her breath"),
          ("Give me the crank. Your hands are shaking.", "already reaching for it")),
         "Is the lamp still a paraffin burner on clockwork here, or has the story given the rock mains power?",
         "Paraffin vapour burner on clockwork rotation, and a battery radio: no mains power on the rock."),
    Seed("The Torn Page", "the logbook",
         ("Near midnight {a} finds her father's last logbook under a loose board.",
          "Its final page has been torn out; the stub is stained with lamp oil.",
          "{b} recognises the handwriting before {a} says whose it is.",
          "{a} locks the logbook in the desk and keeps the key on her wrist."),
         ("The spanner was not under the loose board where {A} kept it. Her hand closed on oilcloth "
          "instead, and inside the oilcloth was her father's last logbook, the one the inquiry never found.",
          "The final page had been torn out close to the spine. {B} stood in the doorway with his cap in "
          "his hands and read the first line upside down before she could close the cover."),
         (("Nobody has touched this since nineteen thirty-eight. Nobody but him.", "not looking up"),
          ("That's a keeper's hand. Small letters, pressed hard, like he was afraid of the page.",
           "quietly, from the doorway")),
         (("Eleven winters I've swept this floor. And it was here.", "her thumb on the torn edge"),
          ("He pressed so hard the next page still holds the words.", "tilting it toward the lamp")),
         "The logbook is from 1938 but the inquiry papers say it was lost at sea: which is true?",
         "The inquiry believed it lost with the Corran; her father hid it. Both stay true until scene six."),
    Seed("North-North-East", "the lens",
         ("The lens sticks again at north-north-east; {b} taps the pedestal with his heel.",
          "{a} asks how a relief keeper knows a quirk only her family knew.",
          "{b} says the Board's notes mention it; there are no such notes.",
          "The beam sweeps the Teeth, and for a moment both of them look for a ship."),
         ("At north-north-east the lens hesitated, as it always did, and before {A} could move {B} had "
          "crossed the room and tapped the pedestal with his heel. The beam swung free.",
          "She did not thank him. She watched the light go out over the Teeth, the black reef that had "
          "taken the Corran, and counted the seconds until it came round again."),
         (("Who told you about the lens, Mr Brand?", "the boathook within reach"),
          ("It's in the Board's notes. Every keeper reads them.", "too quickly")),
         (("The Board never wrote that down. My father never told them.", "very still"),
          ("Someone wrote it down once. It just wasn't the Board.", "meeting her eyes at last")),
         "The lens sticks at north-north-east here; scene two of the seed had it too. Are we keeping that bearing?",
         "Keep north-north-east everywhere: it points at the Teeth, where the Corran went down."),
    Seed("What the Corran Carried", "the wreck",
         ("The radio brings word of a coaster in trouble off the Teeth, as in 1938.",
          "{b} admits he was a boy aboard the Corran the night the light went dark.",
          "{a} learns that her father let the light go out to signal someone, not from drink.",
          "Neither of them leaves the lamp room; the storm reaches its height."),
         ("The radio hissed and spoke: a coaster was labouring off the Teeth, her engine failing. {A} "
          "wrote the time in the log, and her pen stopped, because she had written that sentence before, "
          "in her father's hand, in a book under the floor.",
          "{B} had gone white. He told it plainly, the way men tell things they have rehearsed for years: "
          "the Corran, the dark tower, the cold, the boy they pulled from the water at dawn."),
         (("You were on her. You were the boy.", "the pen still in her hand"),
          ("Your father put the light out for a reason. I came to find out what it was.",
           "steadying himself on the desk")),
         (("You were the boy they found at dawn. And you came back.", "so quietly the storm nearly takes it"),
          ("He didn't drink, Mara. He was signalling. I saw the lamp go out three times.",
           "his voice breaking on the number")),
         "Elias was a boy in 1938: is he old enough now, in 1958, to be a relief keeper? Let's pin his age.",
         "He was twelve in 1938, so thirty-two now: old enough, and young enough to row a gale."),
    Seed("The Light Held by Hand", "the lamp",
         ("The clockwork fails for good; the lens must be turned by hand all night.",
          "{a} and {b} take turns at the crank, talking in the dark between turns.",
          "The torn page turns up in {b}'s coat: he took it years ago.",
          "{a} reads her father's last words aloud while {b} keeps the light turning."),
         ("Just after two the spring gave with a sound like a shot, and the lens stopped dead. {A} "
          "took the crank without a word. Twelve turns, a breath. The light went round.",
          "They changed every half hour. Between turns {B} took a folded, yellowed page from inside his "
          "coat and laid it on the desk, and neither of them spoke until the light came round again."),
         (("You had it all along. Twenty years in your pocket.", "not letting go of the crank"),
          ("I wanted to give it back to him. I was too late for that.", "smoothing the page flat")),
         (("Twenty years. You carried him across the sea in your coat.", "her grip easing on the crank"),
          ("Read it to me. I never could, not all the way through.", "taking the crank from her")),
         "If the clockwork fails for good here, how does the light turn in the final scene? Same crank?",
         "Same crank, by hand, until the relief boat comes at noon: the clockwork is never repaired."),
    Seed("Dawn on the Gallery", "the dawn",
         ("The storm blows itself out; the coaster rounds the Teeth safely under the light.",
          "{a} writes a new last page in her father's logbook.",
          "{b} asks whether he may stay on as keeper.",
          "The relief boat is sighted; {a} lets the light go out at sunrise, on purpose."),
         ("Dawn came up grey and then gold. The coaster's lights rounded the Teeth and went on south, and "
          "{A} stood on the gallery with the logbook open on the rail and wrote, in her own hand, a new "
          "last page.",
          "{B} came out beside her with two cups of tea. The relief boat was a dark mark on the water. "
          "When the sun cleared the sea, {A} went in and turned down the lamp herself."),
         (("He kept the light. Whatever they said, he kept it.", "closing the logbook"),
          ("They'll want a keeper here come spring. I could learn the rest.", "handing her the tea")),
         (("He kept it. So did we.", "her hand flat on the closed book"),
          ("I know the lens already. Teach me the rest.", "not quite smiling")),
         "At dawn the relief boat arrives: is that the same Board that never sent Elias? Who is on it?",
         "The real relief keeper, a month early because of the storm: Elias's story is told before it lands."),
)

ROMAN = ((1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"), (50, "L"), (40, "XL"),
         (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I"))
WATCHES = ("", "Second Watch", "Third Watch", "Fourth Watch", "Fifth Watch", "Sixth Watch")


def roman(n: int) -> str:
    out = ""
    for value, numeral in ROMAN:
        while n >= value:
            out, n = out + numeral, n - value
    return out


@dataclass(frozen=True)
class Focus:
    """What a human asked the crew to follow: characters, a motif, their words."""
    characters: tuple[str, ...] = ()
    motif: str = ""
    direction: str = ""
    by: str = ""

    def as_json(self) -> dict:
        return {"characters": list(self.characters), "motif": self.motif, "direction": self.direction, "by": self.by}

    @classmethod
    def from_json(cls, data) -> "Focus":
        if not isinstance(data, dict):
            return cls()
        return cls(tuple(data.get("characters") or ()), data.get("motif") or "", data.get("direction") or "",
                   data.get("by") or "")

    def __bool__(self) -> bool:
        return bool(self.characters or self.motif)


@dataclass(frozen=True)
class Outline:
    scene: int
    title: str
    heading: str
    beats: tuple[str, ...]
    narration: tuple[str, str]
    cast: tuple[Character, Character]          # cast[0] opens the dialogue
    lines: tuple[tuple[str, str], tuple[str, str]]
    revisions: tuple[tuple[str, str], tuple[str, str]]
    question: str
    answer: str
    motif: str
    focus: Focus = field(default_factory=Focus)
    version: int = 1


# Motifs a human may ask for, by the words they would use.
MOTIFS = {
    "storm": "the storm", "gale": "the storm", "wind": "the storm", "lamp": "the lamp", "light": "the lamp",
    "clockwork": "the clockwork", "crank": "the clockwork", "log": "the logbook", "logbook": "the logbook",
    "page": "the torn page", "father": "her father's secret", "secret": "her father's secret",
    "wreck": "the wreck of the Corran", "corran": "the wreck of the Corran", "ship": "the wreck of the Corran",
    "radio": "the radio", "lens": "the lens", "sea": "the sea", "dawn": "the dawn", "boat": "the relief boat",
    "truth": "the truth", "lie": "the lie", "confession": "a confession", "confess": "a confession",
}
STOPWORDS = set("""a an the and or but if then so to of in on at by for with about into onto from up down out over
under again what when where which who whom why how is are was were be been being do does did have has had
can could should would will shall may might must let lets let's me my we our you your he she they them his her
their it its this that these those there here not no yes please maybe just more less next scene story crew
write writes writing make want wants like think really very some any go goes going get gets tell tells
finally hello hi hey thanks thank takes take taking down""".split())


def steer_from(text: str, cast: tuple[Character, ...], *, by: str = "") -> Focus:
    """What a human's words ask for: the characters they name and a motif (a known one, or the
    most telling word they used)."""
    lowered = text.lower()
    words = re.findall(r"[a-z][a-z'-]+", lowered)
    mentioned = []
    for c in cast:
        found = re.search(rf"\b({re.escape(c.name.lower())}|{re.escape(c.full_name.lower())})\b", lowered)
        if found:
            mentioned.append((found.start(), c.name))
    characters = tuple(name for _, name in sorted(mentioned))  # in the order the human named them
    motif = next((MOTIFS[w] for w in words if w in MOTIFS), "")
    if not motif:
        names = {n.lower() for c in cast for n in c.full_name.split()}
        candidates = [w for w in words if w not in STOPWORDS and w not in names and len(w) > 3]
        if candidates:
            motif = "the " + max(candidates, key=len)
    direction = " ".join(text.split())[:200].rstrip("?!. ")
    return Focus(characters, motif, direction, by)


def _pick(*parts) -> int:
    return int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def _fill(template: str, a: Character, b: Character) -> str:
    return template.format(a=a.name, b=b.name, A=a.full_name, B=b.full_name)


class Writer:
    """Deterministic writing rules. Async methods, so a model-backed writer can share the shape."""

    name = "rules"

    def __init__(self, cast: tuple[Character, ...] = DEFAULT_CAST, *, seed_offset: int = 0):
        self.cast = tuple(cast[:2]) if len(cast) >= 2 else DEFAULT_CAST
        self.seed_offset = seed_offset

    def character(self, name: str) -> Character:
        return next((c for c in self.cast if c.name == name), self.cast[0])

    # --- planning (pure) -------------------------------------------------------------------
    def outline(self, scene: int, focus: Focus | None = None, version: int = 1) -> Outline:
        """The scene's plan. A focus from a human makes a scene of its own around what they asked
        for; a rejected plan (version 2, 3, ...) takes the next seed's shape instead."""
        focus = focus or Focus()
        index = (scene - 1 + self.seed_offset + version - 1) % len(SEEDS)
        watch = (scene - 1 + self.seed_offset) // len(SEEDS)
        a, b = self.cast
        if focus:
            return self._focused(scene, focus, version, index)
        seed = SEEDS[index]
        title = seed.title + (f", {WATCHES[watch % len(WATCHES)]}" if watch else "")
        return Outline(scene=scene, title=title, heading=f"{roman(scene)}. {title}",
                       beats=tuple(_fill(t, a, b) for t in seed.beats),
                       narration=tuple(_fill(t, a, b) for t in seed.narration),  # type: ignore[arg-type]
                       cast=(a, b), lines=seed.lines, revisions=seed.revisions,
                       question=_fill(seed.question, a, b), answer=_fill(seed.answer, a, b),
                       motif=seed.motif, focus=focus, version=version)

    def _focused(self, scene: int, focus: Focus, version: int, index: int) -> Outline:
        lead = self.character(focus.characters[0]) if focus.characters else self.cast[0]
        other = next(c for c in self.cast if c is not lead) if lead in self.cast else self.cast[1]
        motif = focus.motif or SEEDS[index].motif
        small = {"the", "of", "a", "an", "and", "to"}
        title = f"{lead.name} and " + " ".join(w if w in small else w[:1].upper() + w[1:] for w in motif.split())
        if version > 1:
            title += ", Again"
        asked = f"“{focus.direction}”" if focus.direction else f"more of {lead.name}"
        beats = (
            f"The room asked for this scene ({asked}): it belongs to {lead.name} and {motif}.",
            f"{lead.name} goes looking for {motif} while the storm pins them both to the rock.",
            f"{other.name} sees what {lead.name} is hiding and, for now, says nothing.",
            f"By the time the light comes round again, {lead.name} has decided what to do about {motif}.",
        )
        narration = (
            f"Nobody on Skerry Rock had spoken of {motif} for years, and yet that night {lead.full_name} "
            f"could think of nothing else. The lamp went round; the storm leaned on the glass.",
            f"{other.full_name} watched {lead.name} from the stair and kept still. Whatever {lead.name} "
            f"meant to do about {motif}, it would be done before the light came round again.",
        )
        lead_line = (f"I have to see {motif} for myself. Tonight, before I lose my nerve.", "pulling on oilskins")
        other_line = (f"Then I'm coming with you. {motif.capitalize()} won't wait for the storm to end.",
                      "taking the lantern down from its hook")
        lines = (lead_line, other_line)
        revisions = ((f"Tonight. {motif.capitalize()} has waited long enough.", "already at the door"),
                     (f"Not alone. Not with {motif} out there.", "blocking the stair, gently"))
        return Outline(scene=scene, title=title, heading=f"{roman(scene)}. {title}", beats=beats,
                       narration=narration, cast=(lead, other), lines=lines, revisions=revisions,
                       question=f"{lead.name} goes after {motif} in scene {scene}: where was it last seen, "
                                f"and does anyone else know of it?",
                       answer=f"It stays where the room put it: {lead.name} is the only one who knew of "
                              f"{motif} until tonight, so {other.name}'s silence is the right call.",
                       motif=motif, focus=focus, version=version)

    # --- prose (async: a model may write it) ---------------------------------------------------
    async def narration(self, outline: Outline, part: int) -> str:
        return outline.narration[part - 1]

    async def line(self, outline: Outline, index: int) -> tuple[str, str]:
        return outline.lines[index]

    async def revise(self, outline: Outline, index: int, note: str) -> tuple[str, str]:
        return outline.revisions[index]

    async def critique(self, outline: Outline, index: int, line: str, revise: bool) -> tuple[str, int]:
        speaker = outline.cast[index]
        opening = " ".join(line.split()[:5])
        if revise:
            notes = (f"'{opening}...' tells us what {speaker.name} feels; in '{outline.title}' let "
                     f"{speaker.name} show it with {outline.motif} instead. Tighter, please.",
                     f"{speaker.name}'s line ('{opening}...') explains too much for the middle of "
                     f"'{outline.title}'. Cut it back and let the action carry it.",
                     f"Right beat, wrong size: '{opening}...' is a speech where '{outline.title}' "
                     f"needs a breath. Give {speaker.name} fewer words and one gesture.")
            return notes[_pick(outline.scene, outline.title, index) % len(notes)], 3
        notes = (f"'{opening}...' lands: {speaker.name} sounds like {speaker.name}, and it moves "
                 f"'{outline.title}' toward {outline.motif}. Keep it.",
                 f"Good: {speaker.name}'s '{opening}...' does two jobs at once in '{outline.title}'. No change.")
        return notes[_pick(outline.scene, outline.title, index, "keep") % len(notes)], 4


def dialogue_block(character: Character, line: str, direction: str) -> str:
    """How a spoken line goes into the draft."""
    return f"{character.name} ({direction}): “{line}”" if direction else f"{character.name}: “{line}”"


def verdict(text: str) -> bool | None:
    """A human's yes or no in a vote's `choice` or a decision's text; None when it is neither."""
    lowered = " " + re.sub(r"[^a-z0-9+\-👍👎' ]+", " ", text.lower()) + " "
    no = (" no ", " nope ", " reject", " declin", " nay ", " -1 ", "👎", " don't ", " do not ", " not ", " redo",
          " revise", " stop ", " veto")
    yes = (" yes ", " y ", " yeah ", " approve", " accept", " ok ", " okay ", " go ", " aye ", " +1 ", "👍",
           " agree", " lgtm ", " sure ", " fine ")
    if any(word in lowered for word in no):
        return False
    if any(word in lowered for word in yes):
        return True
    return None
