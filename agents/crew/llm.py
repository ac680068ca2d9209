"""Optional: the crew's prose from a model behind an OpenAI-compatible endpoint.

Set `MYTHLINE_LLM_URL` (the API base, e.g. `http://127.0.0.1:11434/v1` for Ollama, or
`https://api.openai.com/v1`), `MYTHLINE_LLM_MODEL` and, if the endpoint wants one,
`MYTHLINE_LLM_API_KEY`; `MYTHLINE_LLM_TIMEOUT` (seconds, default 30) bounds each request and
`MYTHLINE_LLM_BUDGET` (tokens, default 3000, estimated as characters / 4) each prompt.

Prompts come from the story: its title and premise, the scene's title and beats, the bible
entries the scene names (never the others), the outline's other scenes, the room's recent messages
and the draft around the place being written, trimmed to the budget in that order of priority. The plan (titles, beats, who speaks when) stays with the deterministic
rules, so the crew's coordination never depends on the model; the model writes the narration, the
lines, the revisions and the critic's notes. Any failure (network, timeout, an odd answer) falls
back to the rules for that piece: the crew keeps working.
"""
from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import httpx

from agents.crew.writing import DEFAULT_CAST, Character, Outline, Writer, scene_texts

if TYPE_CHECKING:
    from agents.crew.context import StoryContext

logger = logging.getLogger("mythline.crew.llm")


class ChatCompletions:
    """`POST {url}/chat/completions` with a system and a user message; answers the text."""

    def __init__(self, url: str, model: str, api_key: str | None = None, *, timeout: float = 30.0,
                 temperature: float = 0.8, max_tokens: int = 300):
        url = url.rstrip("/")
        self.endpoint = url if url.endswith("/chat/completions") else f"{url}/chat/completions"
        self.model = model
        self.temperature, self.max_tokens = temperature, max_tokens
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(timeout=timeout, headers=headers, trust_env=False)

    async def complete(self, system: str, prompt: str) -> str:
        response = await self._http.post(self.endpoint, json={
            "model": self.model, "temperature": self.temperature, "max_tokens": self.max_tokens,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": prompt}]})
        response.raise_for_status()
        text = response.json()["choices"][0]["message"]["content"]
        if not isinstance(text, str) or not text.strip():
            raise ValueError("the model answered no text")
        return text.strip()

    async def aclose(self) -> None:
        await self._http.aclose()


SYSTEM = ("You are one member of a writers' room drafting a short radio drama, 'The Lighthouse': 1958, a "
          "tower light on Skerry Rock, a storm. Write only what is asked, in plain text, no preamble, "
          "no quotation marks around the whole answer.")
RULES = "Write only what is asked, in plain text, no preamble, no quotation marks around the whole answer."
DEFAULT_BUDGET = 3000
DEFAULT_TIMEOUT = 30.0
PREMISE_CHARS = 1500  # at most this much of the premise goes into the system prompt


def _env_number(env, name: str, default, cast=float):
    raw = str(env.get(name, "") or "").strip()
    try:
        value = cast(raw) if raw else default
    except ValueError:
        logger.warning("%s=%r is not a number: using %s", name, raw, default)
        return default
    return value if value > 0 else default


def _clip(text: str, chars: int, *, keep: str = "head") -> str:
    text = text.strip()
    if len(text) <= chars:
        return text
    if chars <= 1:
        return ""
    return ("…" + text[-(chars - 1):]) if keep == "tail" else (text[:chars - 1] + "…")


def system_prompt(story: StoryContext | None) -> str:
    if story is None or story.script == "lighthouse":
        return SYSTEM
    title = " ".join(story.title.split()) or story.slug
    premise = _clip(" ".join(story.premise.split()), PREMISE_CHARS)
    return (f"You are one member of a writers' room drafting the story '{title}'."
            + (f" Its premise: {premise}" if premise else "") + " " + RULES)


def entry_text(entry: dict) -> str:
    """One bible entry for a prompt: name (kind; also called ...): description. field: value."""
    aliases = [a for a in entry.get("aliases") or [] if isinstance(a, str)]
    head = f"- {entry.get('name', '')} ({entry.get('kind', '')}" + (
        f"; also called {', '.join(aliases)})" if aliases else ")")
    description = " ".join(str(entry.get("description") or "").split())
    fields = entry.get("fields") if isinstance(entry.get("fields"), dict) else {}
    extra = "; ".join(f"{k}: {' '.join(str(v).split())}" for k, v in fields.items() if str(v).strip())
    return head + (f": {description}" if description else "") + (f" [{extra}]" if extra else "")


def build_prompt(story: StoryContext | None, outline: Outline, task: str, *, recent=(), around: str = "",
                 budget_tokens: int | None = None) -> tuple[str, str, list[dict]]:
    """(system, user, the bible entries used) for one piece of writing.

    The user message holds, by priority: the task and the scene (title, summary, beats, who is in
    it), the bible entries the scene names, the outline's other scenes, the room's recent messages
    and the draft around the place. Whatever passes the budget (tokens estimated as characters / 4,
    the system prompt included) is cut from the lowest priority up; the task and the scene never are."""
    if budget_tokens is None:
        budget_tokens = int(_env_number(os.environ, "MYTHLINE_LLM_BUDGET", DEFAULT_BUDGET, int))
    system = system_prompt(story)
    cast = ", ".join(f"{c.full_name} ({c.role})" if c.role else c.full_name for c in outline.cast)
    scene = [f"Task: {task.strip()}", "", f"Scene {outline.scene}: {outline.title}"]
    if outline.summary.strip():
        scene.append(f"Summary: {' '.join(outline.summary.split())}")
    scene += [f"In it: {cast}"] + (["Beats:"] + [f"- {b}" for b in outline.beats] if outline.beats else [])
    if outline.place:
        scene.append(f"Where: {outline.place}")
    user = "\n".join(scene)
    left = budget_tokens * 4 - len(system) - len(user)

    def section(title: str, lines: list[str], *, partial_last: bool = True) -> tuple[str, int]:
        """As many of `lines` as fit in what is left, under a heading; the count used."""
        nonlocal left
        out, used = [], 0
        cost = len(title) + 3
        for line in lines:
            if left - cost - len(line) - 1 >= 0:
                out.append(line)
                cost += len(line) + 1
                used += 1
                continue
            room = left - cost - 1
            if partial_last and room > 40:
                out.append(_clip(line, room))
                cost += room + 1
                used += 1
            break
        if not out:
            return "", 0
        left -= cost
        return f"\n\n{title}\n" + "\n".join(out), used

    entries: list[dict] = []
    if story is not None:
        entries = story.relevant(*scene_texts(outline))
    text, used = section("Story bible (only what this scene names):", [entry_text(e) for e in entries])
    user += text
    entries = entries[:used]
    if story is not None:
        others = [f"- Scene {s.get('position')}: {' '.join(str(s.get('title') or '').split())}"
                  for s in story.outline if s.get("position") != outline.scene]
        text, _ = section("The outline's other scenes:", others, partial_last=False)
        user += text
    notes = [" ".join(str(m).split()) for m in list(recent)[-8:] if str(m).strip()]
    header = "Recent messages in the room:"
    room, kept = left - len(header) - 3, []
    for note in reversed(notes):  # the newest first when the budget is short
        if len(note) + 1 > room:
            break
        kept.insert(0, note)
        room -= len(note) + 1
    if kept:
        user += f"\n\n{header}\n" + "\n".join(kept)
        left = room
    if around.strip():
        room = left - len("The draft around this place:") - 4
        if room > 40:
            user += "\n\nThe draft around this place:\n" + _clip(around, room, keep="tail")
    return system, user, entries


class LLMWriter(Writer):
    name = "llm"

    def __init__(self, chat: ChatCompletions, cast: tuple[Character, ...] = DEFAULT_CAST, *,
                 story: StoryContext | None = None, budget_tokens: int | None = None, seed_offset: int = 0):
        super().__init__(cast, story=story, seed_offset=seed_offset)
        self.chat = chat
        self.budget_tokens = budget_tokens
        self.last_entries: list[dict] = []   # the bible entries the last prompt carried

    async def _ask(self, outline: Outline, task: str, recent=(), around: str = "") -> str | None:
        try:
            system, user, entries = build_prompt(self.story, outline, task, recent=recent, around=around,
                                                 budget_tokens=self.budget_tokens)
            self.last_entries = entries
            return await self.chat.complete(system, user)
        except Exception as exc:  # noqa: BLE001 - any failure: the rules write this piece
            logger.warning("model unavailable (%s: %s); using the writing rules", type(exc).__name__, exc)
            return None

    async def narration(self, outline: Outline, part: int, *, recent=(), around: str = "") -> str:
        half = (len(outline.beats) + 1) // 2
        beats = outline.beats[:half] if part == 1 else outline.beats[half:]
        text = await self._ask(outline, f"In 60-90 words of past-tense prose, close on "
                                        f"{outline.cast[0].full_name}, narrate these beats of scene "
                                        f"'{outline.title}': {' '.join(beats)}", recent, around)
        return text or await super().narration(outline, part)

    async def line(self, outline: Outline, index: int, *, recent=(), around: str = "") -> tuple[str, str]:
        speaker, other = outline.cast[index], outline.cast[1 - index]
        fallback = await super().line(outline, index)
        text = await self._ask(outline, f"Write one spoken line, at most 20 words, for {speaker.full_name}"
                                        f" ({speaker.role}), speaking to {other.full_name}, in scene "
                                        f"'{outline.title}'. Answer with the line only.", recent, around)
        return (_one_line(text), fallback[1]) if text else fallback

    async def revise(self, outline: Outline, index: int, note: str, *, recent=(),
                     around: str = "") -> tuple[str, str]:
        speaker = outline.cast[index]
        fallback = await super().revise(outline, index, note)
        original = outline.lines[index][0]
        text = await self._ask(outline, f"Revise {speaker.full_name}'s line \"{original}\" following this note: "
                                        f"{note} Answer with the new line only, at most 15 words.", recent, around)
        return (_one_line(text), fallback[1]) if text else fallback

    async def critique(self, outline: Outline, index: int, line: str, revise: bool, *, recent=(),
                       around: str = "") -> tuple[str, int]:
        fallback = await super().critique(outline, index, line, revise)
        ask = "one concrete change" if revise else "why it works"
        text = await self._ask(outline, f"As the critic, in one or two sentences, say {ask} for this line of "
                                        f"{outline.cast[index].full_name} in scene '{outline.title}': \"{line}\"",
                               recent, around)
        return (text[:600], fallback[1]) if text else fallback


def _one_line(text: str) -> str:
    first = text.strip().splitlines()[0].strip()
    return first.strip('"“”') or text.strip()


def writer_from_env(cast: tuple[Character, ...] = DEFAULT_CAST, env=None, *,
                    story: StoryContext | None = None) -> Writer:
    """The model-backed writer when MYTHLINE_LLM_URL and MYTHLINE_LLM_MODEL are set, else the rules."""
    env = os.environ if env is None else env
    url, model = env.get("MYTHLINE_LLM_URL", "").strip(), env.get("MYTHLINE_LLM_MODEL", "").strip()
    if not url:
        return Writer(cast, story=story)
    if not model:
        logger.warning("MYTHLINE_LLM_URL is set but MYTHLINE_LLM_MODEL is not: using the writing rules")
        return Writer(cast, story=story)
    chat = ChatCompletions(url, model, env.get("MYTHLINE_LLM_API_KEY") or None,
                           timeout=_env_number(env, "MYTHLINE_LLM_TIMEOUT", DEFAULT_TIMEOUT))
    return LLMWriter(chat, cast, story=story,
                     budget_tokens=int(_env_number(env, "MYTHLINE_LLM_BUDGET", DEFAULT_BUDGET, int)))
