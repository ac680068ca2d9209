"""What the crew knows of the story it writes: its title and premise, its bible and its outline.

`load_context` reads them once over the REST API (any SDK client); `StoryContext` answers the
questions the writers ask: who the characters are, which places there are, which entries a text
names (as `find_bible_mentions` does: a name or an alias as a whole word, in any case), and what
the humans planned for a scene.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import parse_qsl, urlsplit

from agents.crew.writing import Character

LIGHTHOUSE = "lighthouse"
# Words that open a name without being what people call the character ("Captain Ahab": "Ahab").
_TITLES = set("""mr mrs ms miss mx dr doctor captain capt sir dame lady lord old young the a an father mother
sister brother saint st master mistress madame madam signor signora signore don donna herr frau monsieur
king queen prince princess uncle aunt professor prof general colonel major lieutenant sergeant""".split())


def _terms(entry: dict) -> list[str]:
    terms = [entry.get("name") or "", *(entry.get("aliases") or [])]
    return list(dict.fromkeys(t.strip() for t in terms if isinstance(t, str) and t.strip()))


def short_name(entry: dict) -> str:
    """What the others call a character: an alias that is one of the words of its name ("Lucia"
    for "Lucia Barovier"), else the name's first word unless it is a title, else the name."""
    name = " ".join(str(entry.get("name") or "").split())
    words = name.split()
    if len(words) < 2:
        return name
    for alias in entry.get("aliases") or []:
        if isinstance(alias, str) and alias.strip() in words:
            return alias.strip()
    return words[0] if words[0].casefold().rstrip(".") not in _TITLES else name


def _role(entry: dict) -> str:
    fields = entry.get("fields") if isinstance(entry.get("fields"), dict) else {}
    role = str(fields.get("role") or "").strip()
    if not role:
        description = " ".join(str(entry.get("description") or "").split())
        role = re.split(r"(?<=[.;:!?])\s|\s[-–—]\s", description, maxsplit=1)[0].rstrip(".;:!? ")
        if len(role) > 80:
            role = role[:80].rsplit(" ", 1)[0]
        if role[:1].isupper() and role.split(" ", 1)[0].casefold() in {"a", "an", "the", "his", "her", "their"}:
            role = role[:1].lower() + role[1:]
    return role or "a character"


def character_of(entry: dict) -> Character:
    return Character(short_name(entry), " ".join(str(entry.get("name") or "").split()), "", _role(entry),
                     aliases=tuple(_terms(entry)[1:]), slug=str(entry.get("slug") or ""))


@dataclass(frozen=True)
class StoryContext:
    slug: str
    title: str
    premise: str = ""
    entries: tuple[dict, ...] = ()   # bible entries as the REST list returns them (results)
    outline: tuple[dict, ...] = ()   # outline scenes as the REST outline returns them (results)
    script: str = ""                 # "lighthouse": the demo's scripted seeds; "": from the story

    @property
    def scripted(self) -> bool:
        return self.script == LIGHTHOUSE

    @cached_property
    def _characters(self) -> tuple[Character, ...]:
        return tuple(character_of(e) for e in self.entries if e.get("kind") == "character" and e.get("name"))

    def characters(self) -> tuple[Character, ...]:
        """The bible's characters, in bible order (`voice` empty: the crew decides who speaks)."""
        return self._characters

    def places(self) -> tuple[dict, ...]:
        return tuple(e for e in self.entries if e.get("kind") == "place" and e.get("name"))

    def of_kind(self, *kinds: str) -> tuple[dict, ...]:
        return tuple(e for e in self.entries if e.get("kind") in kinds and e.get("name"))

    def entry(self, slug: str) -> dict | None:
        return next((e for e in self.entries if e.get("slug") == slug), None)

    @cached_property
    def _patterns(self) -> tuple[tuple[dict, re.Pattern], ...]:
        out = []
        for e in self.entries:
            terms = sorted((t.casefold() for t in _terms(e)), key=len, reverse=True)
            if terms:
                out.append((e, re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, terms)) + r")(?!\w)")))
        return tuple(out)

    def relevant(self, *texts: str) -> list[dict]:
        """The entries whose name or an alias occurs in the texts (casefold, whole words), in the
        order of their first mention (bible order for a tie)."""
        joined = "\n".join(t for t in texts if isinstance(t, str)).casefold()
        if not joined.strip():
            return []
        found = []
        for order, (entry, pattern) in enumerate(self._patterns):
            match = pattern.search(joined)
            if match:
                found.append((match.start(), order, entry))
        return [entry for _, _, entry in sorted(found, key=lambda f: (f[0], f[1]))]

    def character_named(self, name: str) -> Character | None:
        """The bible character called `name` (its name, short name or an alias, any case)."""
        wanted = " ".join(str(name).split()).casefold()
        for c in self._characters:
            if wanted in {c.name.casefold(), c.full_name.casefold(), *(a.casefold() for a in c.aliases)}:
                return c
        return None

    def planned(self, scene: int) -> dict | None:
        """The outline's scene at position `scene`, if the humans planned one."""
        return next((s for s in self.outline if s.get("position") == scene), None)


# What the crew keeps of a story each time it reads it: the first entries of the bible and of the
# outline, each entry's description and fields cut to a size a prompt can use. A story may hold far
# more (MYTHLINE_BIBLE_MAX_ENTRIES, 100 KB an entry); one worker serves every story's crew.
MAX_ENTRIES = 300
MAX_ENTRY_TEXT = 2000
MAX_SCENES = 200
MAX_BEAT_CHARS = 500


def _trimmed_entry(entry: dict) -> dict:
    fields = entry.get("fields") if isinstance(entry.get("fields"), dict) else {}
    return {**entry, "description": str(entry.get("description") or "")[:MAX_ENTRY_TEXT],
            "fields": {str(k)[:100]: str(v)[:MAX_ENTRY_TEXT // 4] for k, v in list(fields.items())[:20]},
            "progressions": []}


def _trimmed_scene(scene: dict) -> dict:
    beats = scene.get("beats") if isinstance(scene.get("beats"), list) else []
    return {**scene, "summary": str(scene.get("summary") or "")[:MAX_ENTRY_TEXT],
            "beats": [str(b)[:MAX_BEAT_CHARS] for b in beats[:20]]}


async def load_context(client, story: str, *, script: str = "", page_size: int = 200) -> StoryContext:
    """The story, its bible (up to MAX_ENTRIES entries, page by page) and its outline (up to
    MAX_SCENES scenes), read with the SDK client's generic `get`, each entry and scene cut to a
    prompt's size: what one crew holds of a story stays small whatever the story holds."""
    info = await client.get(f"/api/stories/{story}")
    entries: list[dict] = []
    path, params = f"/api/stories/{story}/bible", {"limit": page_size}
    seen = set()
    while path:
        page = await client.get(path, **params)
        entries.extend(_trimmed_entry(e) for e in (page.get("results") or []) if isinstance(e, dict))
        following = page.get("next")
        if not following or following in seen or len(entries) >= MAX_ENTRIES:
            break
        seen.add(following)
        parts = urlsplit(following)
        path, params = parts.path, dict(parse_qsl(parts.query, keep_blank_values=True))
    outline = await client.get(f"/api/stories/{story}/outline")
    results = outline.get("results") if isinstance(outline, dict) else outline
    scenes = sorted((s for s in results or [] if isinstance(s, dict)), key=lambda s: s.get("position") or 0)
    return StoryContext(slug=info.get("slug") or story, title=info.get("title") or story,
                        premise=str(info.get("premise") or "")[:MAX_ENTRY_TEXT * 2], entries=tuple(entries[:MAX_ENTRIES]),
                        outline=tuple(_trimmed_scene(s) for s in scenes[:MAX_SCENES]), script=script)
