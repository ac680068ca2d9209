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
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from mythline_sdk import Participant

if TYPE_CHECKING:  # context.py imports Character from here
    from agents.crew.context import StoryContext

# --- the cast -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Character:
    name: str                 # what the others call them: "Mara"
    full_name: str            # "Mara Quill"
    voice: str                # the agent that speaks as them: "voice-mara"
    role: str = "a visitor"   # "the keeper"
    aliases: tuple[str, ...] = ()   # other names (a story bible's aliases)
    slug: str = ""            # the story bible entry it comes from, if any

    def answers_to(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.name, self.full_name, *self.aliases)))


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
    summary: str = ""                          # the planned scene's summary, when the outline has one
    place: str = ""                            # where the scene is set (a bible place), when known


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


def steer_from(text: str, cast: tuple[Character, ...], *, by: str = "", story: StoryContext | None = None) -> Focus:
    """What a human's words ask for: the characters they name and a motif (a known one, or the
    most telling word they used). With a story (not the lighthouse script) the characters and the
    motif come from its bible: the characters it names (by name or alias), and the first other
    entry it names."""
    if story is not None and not _scripted(story):
        return _steer_from_story(text, cast, story, by)
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


def _scripted(story) -> bool:
    return story is None or getattr(story, "script", "") == "lighthouse"


def _steer_from_story(text: str, cast: tuple[Character, ...], story: StoryContext, by: str) -> Focus:
    folded = text.casefold()
    mentioned: list[tuple[int, str]] = []
    motif = ""
    for entry in story.relevant(text):
        if entry.get("kind") == "character":
            c = story.character_named(entry.get("name") or "")
            if c is not None:
                mentioned.append((_first_mention(folded, c), c.name))
        elif not motif:
            motif = _running(entry.get("name") or "")
    for c in cast:  # characters that are not in the bible (generic roles)
        if not c.slug and story.character_named(c.name) is None:
            at = _first_mention(folded, c)
            if at >= 0:
                mentioned.append((at, c.name))
    characters = tuple(dict.fromkeys(name for _, name in sorted(mentioned)))
    if not motif:
        names = {w.casefold() for c in (*story.characters(), *cast) for n in c.answers_to() for w in n.split()}
        words = re.findall(r"[^\W\d_][\w'-]+", folded)
        candidates = [w for w in words if w not in STOPWORDS and w not in names and len(w) > 3]
        if candidates:
            motif = "the " + max(candidates, key=len)
    direction = " ".join(text.split())[:200].rstrip("?!. ")
    return Focus(characters, motif, direction, by)


def _first_mention(folded: str, c: Character) -> int:
    found = [m.start() for n in c.answers_to() if n
             for m in [re.search(rf"(?<!\w){re.escape(n.casefold())}(?!\w)", folded)] if m]
    return min(found) if found else -1


def _pick(*parts) -> int:
    return int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def _fill(template: str, a: Character, b: Character) -> str:
    return template.format(a=a.name, b=b.name, A=a.full_name, B=b.full_name)


# --- writing from the story itself (any story but the lighthouse script) -------------------------
# {a}/{b}: the two characters' short names, {A}/{B}: their full names; {place}, {thing}: a bible
# place and object (or words of the premise); {premise}: the premise's first sentence. Sentences
# are capitalised after filling, so a generic role ("the stranger") may open one.

_SMALL = {"the", "of", "a", "an", "and", "to", "at", "in", "on", "for", "from", "with", "over"}
_AGAIN = ("", "Again", "Once More", "Later Still", "Long After", "At the Last")
_LATER = ("", "Later, ", "Much later, ", "Long after, ", "In the end, ", "Last of all, ")
_GENERIC_THINGS = ("the secret", "the promise", "the debt", "the choice", "the silence", "the bargain")
_NOT_ROLES = set("""after other under over never ever water winter summer mirror door floor river silver paper
letter number power order center centre colour color honour honor answer matter corner border dinner
together whether rather either neither another later better however forever""".split())


@dataclass(frozen=True)
class _Plan:
    title: str
    beats: tuple[str, str, str, str]
    narration: tuple[str, str]
    lines: tuple[tuple[str, str], tuple[str, str]]
    revisions: tuple[tuple[str, str], tuple[str, str]]
    question: str
    answer: str


PLANS: tuple[_Plan, ...] = (
    _Plan("{Thing} at {Place}",
          ("{a} brings {thing} to {place}, with a question {a} has put off for too long.",
           "{b} is already at {place}, and does not want to see {thing} there.",
           "What {thing} means to {b} comes out in pieces, and it reaches the heart of it all: {premise}.",
           "{a} leaves {place} knowing more than before, and trusting {b} less."),
          ("{A} reached {place} as the day turned, {thing} held close. It had seemed a simple errand that "
           "morning; it no longer did.",
           "{B} was waiting, as if {b} had known all along. Neither of them spoke of {thing} at first, and the "
           "silence said most of it."),
          (("You knew I would bring {thing} here.", "setting it down between them"),
           ("I hoped you'd have more sense.", "without looking at it")),
          (("You knew. Say it.", "not letting go of it"),
           ("I hoped you wouldn't come at all.", "turning away")),
          "'{scene_title}' brings {thing} to {place}: has it been there before, or is this its first time?",
          "Its first time: until now {thing} stayed with {a}, so what {b} does at {place} is new."),
    _Plan("What {b} Kept",
          ("{b} has kept something from {a} since long before this began, and it concerns {thing}.",
           "At {place}, {a} notices what {b} is careful not to say.",
           "{a} presses; {b} gives a half-truth and a reason for it.",
           "They part with the half-truth standing between them, and {thing} still unexplained."),
          ("There are things one keeps for years without meaning to. {B} had kept one about {thing}, and at "
           "{place} that day it sat heavily.",
           "{A} said nothing for a long while. When the question finally came it was gentle, and that made it "
           "harder to answer."),
          (("You've been careful all day. Careful with me.", "watching {b}'s hands"),
           ("There are things I was asked to keep. I kept them.", "quietly")),
          (("Careful all day. Why?", "not unkindly"),
           ("I made a promise. It wasn't to you.", "meeting {a}'s eyes")),
          "'{scene_title}': who else knows what {b} is keeping about {thing}? Let's pin that down now.",
          "No one else, for now: {b} has kept it alone, and that is what makes the half-truth at {place} cost "
          "something."),
    _Plan("The Road to {Place}",
          ("{a} and {b} set out for {place}, each for a reason the other does not know.",
           "On the way the talk turns to {premise}, and neither of them likes where it goes.",
           "Something about {thing} makes {b} stop and reconsider.",
           "They reach {place} together, but no longer on the same side."),
          ("The way to {place} was longer than {A} remembered. {B} kept half a step behind, and for the first "
           "mile neither of them tried to fill the quiet.",
           "By the time {place} came into view they had said more than they meant to. {Thing_} was somewhere "
           "in all of it, like a stone in a shoe."),
          (("We could still turn back. No one would know.", "slowing"),
           ("I would know. So would you.", "walking on")),
          (("Turn back with me. Now, while we can.", "stopping in the road"),
           ("And never find out? No.", "not stopping")),
          "In '{scene_title}' they travel to {place}: how far is it, and does the distance match the other "
          "scenes?",
          "Far enough to take most of a day; keep it so, and reaching {place} always costs {a} and {b} "
          "something."),
    _Plan("{a} Alone",
          ("{a} is alone at {place} for once, with {thing} and too much time to think.",
           "A memory of {b} changes how {a} sees {thing}.",
           "{a} makes a choice about {thing} that cannot easily be undone.",
           "{b} arrives just too late to stop it, and understands at once."),
          ("For once nobody was watching. {A} sat at {place} with {thing} and let the hours pass, turning "
           "over everything {b} had said.",
           "When {B} came in at last, one look was enough. There was no need to ask what had been done; {b} "
           "only sat down, and waited to be told."),
          (("It's done. Don't ask me to undo it.", "not turning round"),
           ("I wasn't going to. I only wish you'd waited.", "sitting down slowly")),
          (("Done. Leave it be.", "very still"),
           ("You could have waited for me.", "more hurt than angry")),
          "'{scene_title}' leaves {a} alone with {thing}: what exactly is done to it, so the later scenes "
          "agree?",
          "{a} changes {thing} for good here; the later scenes treat that as fixed, whatever {b} hopes."),
    _Plan("A Bargain over {Thing}",
          ("{b} offers {a} a bargain: help with {thing}, for a price not yet named.",
           "{a} weighs it against what it has all cost so far: {premise}.",
           "At {place} the price turns out to be more than either of them expected.",
           "{a} accepts, and both of them pretend it was an easy choice."),
          ("{B} made the offer lightly, as if it were nothing, and {A} knew at once that it was not. Help "
           "with {thing}: that was the easy half.",
           "They shook on it at {place}. Afterwards neither could say exactly what had been agreed, only that "
           "it would have to be paid."),
          (("Name the price first. Then I'll say yes or no.", "arms folded"),
           ("You'll say yes. You always do, in the end.", "with a small, tired smile")),
          (("The price. Now.", "not moving"),
           ("Yes. You'll say yes.", "almost gently")),
          "The bargain in '{scene_title}': is the price named on the page, or does it stay hidden until "
          "later?",
          "It stays hidden: only {b} knows the price, and {thing} is the one clue {a} gets."),
    _Plan("Before Morning at {Place}",
          ("Late at night at {place}, {a} cannot sleep and finds {b} awake too.",
           "They talk about {thing} honestly for the first time.",
           "{b} admits a fear that has shaped everything so far.",
           "Before morning, {a} and {b} agree on what to do next, and on what never to say aloud."),
          ("It was the hour when everyone at {place} should have been asleep. {A} went looking for water and "
           "found {B} sitting in the dark, wide awake.",
           "They talked about {thing} as they never had by day. Somewhere in it {b} said the thing that had "
           "been hardest to say, and {a} let it stand."),
          (("You couldn't sleep either.", "sitting down beside {b}"),
           ("I haven't slept properly since all this started.", "staring at nothing")),
          (("Not sleeping either?", "softly"),
           ("Not since it began. Not once.", "almost a whisper")),
          "'{scene_title}' happens at night at {place}: does the timing fit the days of the scenes around it?",
          "It fits: it is the night after the scene before, which is why neither {a} nor {b} has slept."),
)

# For a scene the humans planned (title and beats from the outline): how its prose opens and closes.
_OPENINGS = ("{A} came to {place} with {thing} on {a}'s mind.",
             "At {place}, {A} and {B} could not avoid each other any longer.",
             "Nothing at {place} was quite as {A} had left it.")
_CLOSINGS = ("{B} watched it all and kept counsel.",
             "By the end of it, {thing} meant something different to both of them.",
             "Neither {a} nor {b} would tell it the same way afterwards.")
_PLANNED_LINES = (
    ((("We planned for this. We just never said it out loud.", "quietly"),
      ("Then say it now, before {thing} says it for us.", "stepping closer")),
     (("We planned for this. Say it.", "holding {b}'s gaze"),
      ("Then I'll say it first.", "stepping closer"))),
    ((("I know what {place} means to you.", "carefully"),
      ("You know what it meant. Not what it means now.", "looking away")),
     (("I know what this place is to you.", "more gently"),
      ("What it was. Not what it is.", "looking away"))),
    ((("Tell me the truth about {thing}.", "without raising a voice"),
      ("The truth is worse than anything you've guessed.", "after a long pause")),
     (("The truth about {thing}. All of it.", "very level"),
      ("Worse than you've guessed.", "barely audible"))),
)


def _running(name: str) -> str:
    """An entry's name inside a sentence: "The Furnace Room" -> "the Furnace Room"."""
    name = " ".join(name.split())
    return "the" + name[3:] if name[:4] == "The " else name


def _titled(text: str) -> str:
    words = text.split()
    return " ".join(w if (i and w.lower() in _SMALL) else w[:1].upper() + w[1:] for i, w in enumerate(words))


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _sentences(text: str) -> str:
    """Capitalise the first letter of each sentence (a role such as "the stranger" may open one)."""
    return re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


def premise_clause(premise: str, title: str) -> str:
    """The premise's first sentence, short, to go inside another sentence."""
    text = " ".join(premise.split())
    if not text:
        return f"what '{title}' is about" if title else "what the story is about"
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0].rstrip(".!? ")
    if len(first) > 140:
        first = first[:140].rsplit(" ", 1)[0].rstrip(",;:")
    head = first.split(" ", 1)[0]
    if head.lower() in STOPWORDS or head.lower() in {"after", "before", "during", "once", "while", "since"}:
        first = first[:1].lower() + first[1:]
    return first


def premise_words(premise: str, exclude=()) -> list[str]:
    """The premise's telling words, longest first: proper nouns as written, others with "the"."""
    exclude = {w.casefold() for w in exclude}
    out: dict[str, str] = {}
    for i, m in enumerate(re.finditer(r"[^\W\d_][\w'-]*", premise)):
        word = m.group(0).strip("'-")
        low = word.casefold()
        if len(low) <= 3 or low in STOPWORDS or low in exclude or low in out:
            continue
        sentence_start = i == 0 or re.search(r"[.!?:]\s*$", premise[:m.start()]) is not None
        out[low] = word if word[:1].isupper() and not sentence_start else "the " + low
    return sorted(out.values(), key=lambda w: -len(w.split()[-1]))


def _role_from_premise(premise: str, taken: set[str]) -> str:
    for m in re.finditer(r"[^\W\d_][\w'-]*", premise):
        word = m.group(0).casefold()
        if (len(word) > 4 and word not in _NOT_ROLES and word not in STOPWORDS and f"the {word}" not in taken
                and re.search(r"(er|or|ist|ess|ian|ant|smith|wright|man|woman)$", word)):
            return f"the {word}"
    return ""


class Writer:
    """Deterministic writing rules. Async methods, so a model-backed writer can share the shape."""

    name = "rules"

    def __init__(self, cast: tuple[Character, ...] = DEFAULT_CAST, *, story: StoryContext | None = None,
                 seed_offset: int = 0):
        """`cast`: the characters the crew's voice agents speak as (their `voice`s). Without a story, or
        for the lighthouse script, they are the cast. With a story, the cast is the story bible's
        characters; the first two take these voices (and in each scene's outline, `cast[i].voice`
        is the i-th of these voices: the agent that speaks whoever is i-th in that scene)."""
        self._given = tuple(cast[:2]) if len(cast) >= 2 else DEFAULT_CAST
        self.seed_offset = seed_offset
        self.voices = (self._given[0].voice, self._given[1].voice)
        self.story = story

    @property
    def story(self) -> StoryContext | None:
        return self._story

    @story.setter
    def story(self, story: StoryContext | None) -> None:
        """A story read again (its bible and outline changed): the cast follows it."""
        self._story = story
        self.scripted = _scripted(story)
        self.cast = self._given if self.scripted else self._story_cast()

    def character(self, name: str) -> Character:
        folded = " ".join(str(name).split()).casefold()
        for c in self.cast:
            if folded in {n.casefold() for n in c.answers_to()}:
                return c
        return self.cast[0]

    def steer(self, text: str, *, by: str = "") -> Focus:
        """What a human's words ask of this writer's story (`steer_from` with its cast and story)."""
        return steer_from(text, self.cast, by=by, story=self.story)

    def receipt(self, outline: Outline) -> dict:
        """The story bible entries this scene's writing draws on: {"bible": [{"slug", "name"}]}."""
        return {"bible": [{"slug": e.get("slug", ""), "name": e.get("name", "")}
                          for e in self.relevant_entries(outline)]}

    def relevant_entries(self, outline: Outline) -> list[dict]:
        """The bible entries the scene names: in its title, summary, beats, cast and the focus asked."""
        if self.story is None:
            return []
        return self.story.relevant(*scene_texts(outline))

    # --- planning (pure) -------------------------------------------------------------------
    def outline(self, scene: int, focus: Focus | None = None, version: int = 1) -> Outline:
        """The scene's plan. A focus from a human makes a scene of its own around what they asked
        for; a rejected plan (version 2, 3, ...) takes the next seed's shape instead. With a story,
        the outline's planned scene at this position (its title and beats) is the plan."""
        focus = focus or Focus()
        if not self.scripted:
            return self._story_outline(scene, focus, version)
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

    # --- the story's own plans -----------------------------------------------------------------
    def _story_cast(self) -> tuple[Character, ...]:
        story = self.story
        chars = list(story.characters())
        if len(chars) < 2:  # too few in the bible: unnamed roles, from the premise where it helps
            taken = {c.name.casefold() for c in chars}
            first = _role_from_premise(story.premise, taken)
            second = _role_from_premise(story.premise, taken | {first})
            for role in (first, second, "the stranger", "the other one"):
                if role and role.casefold() not in taken and len(chars) < 2:
                    chars.append(Character(role, role, "", "someone the bible does not name yet"))
                    taken.add(role.casefold())
        return tuple(replace(c, voice=self.voices[i]) if i < 2 else c for i, c in enumerate(chars))

    def _resolve(self, name: str) -> Character | None:
        name = " ".join(str(name or "").split())
        if not name:
            return None
        folded = name.casefold()
        for c in self.cast:
            if folded in {n.casefold() for n in c.answers_to()}:
                return c
        return Character(name.split()[0] if len(name.split()) == 2 else name, name, "", "someone the outline names")

    def _pair(self, scene: int, focus: Focus, planned: dict | None) -> tuple[Character, Character]:
        names = []
        if planned:
            names += [planned.get("pov") or "", *(planned.get("characters") or [])]
        names += list(focus.characters)
        picked: list[Character] = []
        for name in names:
            c = self._resolve(name) if isinstance(name, str) else None
            if c is not None and all(c.full_name != p.full_name for p in picked):
                picked.append(c)
        n = len(self.cast)
        start = 0 if picked else (scene - 1 + self.seed_offset) % n
        for i in range(n):
            c = self.cast[(start + i) % n]
            if len(picked) >= 2:
                break
            if all(c.full_name != p.full_name for p in picked):
                picked.append(c)
        return tuple(replace(c, voice=self.voices[i]) for i, c in enumerate(picked[:2]))  # type: ignore[return-value]

    def _things(self) -> tuple[str, ...]:
        story = self.story
        things = tuple(_running(e["name"]) for e in story.of_kind("object"))
        if things:
            return things
        names = [w for c in self.cast for n in c.answers_to() for w in n.split()]
        words = tuple(premise_words(story.premise, exclude=names + [w for w in story.title.split()]))
        return words[:6] or _GENERIC_THINGS

    def _places(self) -> tuple[str, ...]:
        places = tuple(_running(e["name"]) for e in self.story.places())
        return places or ("the place where it began",)

    def _values(self, a: Character, b: Character, place: str, thing: str, scene_title: str) -> dict:
        return {"a": a.name, "b": b.name, "A": a.full_name, "B": b.full_name, "place": place, "thing": thing,
                "Place": _titled(place), "Thing": _titled(thing), "Thing_": _upper_first(thing),
                "premise": premise_clause(self.story.premise, self.story.title), "scene_title": scene_title}

    def _story_outline(self, scene: int, focus: Focus, version: int) -> Outline:
        story = self.story
        planned = story.planned(scene)
        a, b = self._pair(scene, focus, planned)
        turn = scene - 1 + self.seed_offset
        if planned and planned.get("beats"):
            return self._planned(scene, focus, version, planned, a, b)
        if focus:
            return self._story_focused(scene, focus, version, a, b)
        things, places = self._things(), self._places()
        plan = PLANS[(turn + version - 1) % len(PLANS)]
        cycle = turn // len(PLANS)
        place, thing = places[turn % len(places)], things[(turn + cycle) % len(things)]
        values = self._values(a, b, place, thing, "")
        title = _titled(plan.title.format(**{**values, "Thing": thing, "Place": place}))
        title += f", {_AGAIN[cycle % len(_AGAIN)]}" if cycle else ""
        if planned and planned.get("title") and version == 1:
            title = " ".join(str(planned["title"]).split())
        values["scene_title"] = title
        def later(text: str) -> str:  # the templates come round again: their openings differ
            if not cycle:
                return text
            return _LATER[cycle % len(_LATER)] + (text if text[:1] == "{" else text[:1].lower() + text[1:])
        beats = (later(plan.beats[0]), *plan.beats[1:])
        return self._make(scene, title, beats, (later(plan.narration[0]), plan.narration[1]),
                          plan.lines, plan.revisions, plan.question, later(plan.answer), values, a, b,
                          motif=thing, focus=focus, version=version,
                          summary=str((planned or {}).get("summary") or ""), place=place)

    def _make(self, scene, title, beats, narration, lines, revisions, question, answer, values, a, b, *,
              motif, focus, version, summary="", place="", fill_beats=True) -> Outline:
        def fill(t: str) -> str:
            return _sentences(t.format(**values))

        def said(pair):
            return tuple((_upper_first(line.format(**values)), direction.format(**values)) for line, direction in pair)
        return Outline(scene=scene, title=title, heading=f"{roman(scene)}. {title}",
                       beats=tuple(fill(t) for t in beats) if fill_beats else tuple(beats),
                       narration=tuple(fill(t) for t in narration),  # type: ignore[arg-type]
                       cast=(a, b), lines=said(lines), revisions=said(revisions),  # type: ignore[arg-type]
                       question=fill(question), answer=fill(answer), motif=motif, focus=focus, version=version,
                       summary=summary, place=place)

    def _planned(self, scene: int, focus: Focus, version: int, planned: dict, a: Character,
                 b: Character) -> Outline:
        """The humans' plan for this scene: its title and beats, as they wrote them."""
        story = self.story
        title = " ".join(str(planned.get("title") or "").split()) or f"Scene {roman(scene)}"
        beats = [" ".join(str(x).split()) for x in planned.get("beats") or [] if str(x).strip()]
        summary = str(planned.get("summary") or "")
        texts = (title, summary, *beats, focus.direction)
        named = story.relevant(*texts)
        turn = scene - 1 + self.seed_offset
        place_entry = next((e for e in named if e.get("kind") == "place"), None)
        places = self._places()
        place = _running(place_entry["name"]) if place_entry else places[turn % len(places)]
        thing_entry = next((e for e in named if e.get("kind") not in ("character", "place", "style")), None)
        things = self._things()
        motif = focus.motif or (_running(thing_entry["name"]) if thing_entry else things[turn % len(things)])
        if version > 1:  # sent back: the same plan, the other character leads, and one more beat
            a, b = replace(b, voice=a.voice), replace(a, voice=b.voice)
            beats.append(f"Redrafted after the room's note (draft {roman(version)}): this time {a.name} leads, "
                         f"and {motif} stays in plain sight.")
        values = self._values(a, b, place, motif, title)
        half = (len(beats) + 1) // 2
        k = _pick(scene, title) % 3
        first = " ".join(_period(x) for x in beats[:half])
        second = " ".join(_period(x) for x in beats[half:])
        narration = (_OPENINGS[k] + " " + _escape(first), (_escape(second) + " " + _CLOSINGS[k]).strip())
        lines, revisions = _PLANNED_LINES[_pick(scene, title, "lines") % len(_PLANNED_LINES)]
        entry = next((e for e in named if (e.get("description") or "").strip()), None)
        if entry is not None:
            said = _short(entry["description"])
            question = (f"'{{scene_title}}' brings in {_escape(entry['name'])}, and the bible says "
                        f"“{_escape(said)}”: does the scene keep to that?")
            answer = (f"Keep to the bible: {_escape(entry['name'])} stays as written there, "
                      f"“{_escape(said)}”, all through '{{scene_title}}'.")
        else:
            question = "'{scene_title}' is set at {place}: is that where the outline wants it, with {a} and {b}?"
            answer = "Yes: {place}, with {a} and {b}, as the outline plans it; {thing} carries the scene."
        return self._make(scene, title, tuple(beats), narration, lines, revisions, question, answer, values,
                          a, b, motif=motif, focus=focus, version=version, summary=summary, place=place,
                          fill_beats=False)

    def _story_focused(self, scene: int, focus: Focus, version: int, lead: Character, other: Character) -> Outline:
        turn = scene - 1 + self.seed_offset
        things, places = self._things(), self._places()
        motif = focus.motif or things[(turn + version - 1) % len(things)]
        place = places[turn % len(places)]
        title = _titled(f"{lead.name} and {motif}") + (", Again" if version > 1 else "")
        asked = f"“{focus.direction}”" if focus.direction else f"more of {lead.name}"
        values = self._values(lead, other, place, motif, title)
        values.update(asked=_escape(asked), Motif=_upper_first(motif))
        beats = ("The room asked for this scene ({asked}): it belongs to {a} and {thing}.",
                 "{a} goes looking for {thing} at {place}, and {b} follows at a distance.",
                 "{b} sees what {a} is hiding and, for now, says nothing.",
                 "By the end of the scene, {a} has decided what to do about {thing}.")
        narration = ("Nobody at {place} had spoken of {thing} for a long time, and yet that day {A} could think "
                     "of nothing else.",
                     "{B} watched {a} and kept still. Whatever {a} meant to do about {thing}, it would be done "
                     "before the day was out.")
        lines = (("I have to see {thing} for myself. Today, before I lose my nerve.", "reaching for a coat"),
                 ("Then I'm coming with you. {Motif} won't wait for us.", "already at the door"))
        revisions = (("Today. {Motif} has waited long enough.", "already at the door"),
                     ("Not alone. Not with {thing} in it.", "blocking the way, gently"))
        question = "{a} goes after {thing} in '{scene_title}': where was it last seen, and who else knows of it?"
        answer = ("It stays where the room put it: {a} is the only one who knew of {thing} until now, so {b}'s "
                  "silence is the right call.")
        return self._make(scene, title, beats, narration, lines, revisions, question, answer, values, lead, other,
                          motif=motif, focus=focus, version=version, place=place)

    # --- prose (async: a model may write it) ---------------------------------------------------
    # recent: a few recent messages of the room ("name: text"); around: the draft's text around the
    # place being written. The rules ignore both; a model writer reads them.
    async def narration(self, outline: Outline, part: int, *, recent=(), around: str = "") -> str:
        return outline.narration[part - 1]

    async def line(self, outline: Outline, index: int, *, recent=(), around: str = "") -> tuple[str, str]:
        return outline.lines[index]

    async def revise(self, outline: Outline, index: int, note: str, *, recent=(),
                     around: str = "") -> tuple[str, str]:
        return outline.revisions[index]

    async def critique(self, outline: Outline, index: int, line: str, revise: bool, *, recent=(),
                       around: str = "") -> tuple[str, int]:
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


def scene_texts(outline: Outline) -> tuple[str, ...]:
    """The texts that say what a scene is about: what the bible entries it draws on are found in."""
    return (outline.title, outline.summary, *outline.beats,
            *(n for c in outline.cast for n in (c.full_name, c.name)), outline.focus.direction)


def _period(text: str) -> str:
    return text if text[-1:] in ".!?…”\"'" else text + "."


def _escape(text: str) -> str:
    return str(text).replace("{", "{{").replace("}", "}}")


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0].rstrip(".!? ")
    if len(first) > limit:
        first = first[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "…"
    return first


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
