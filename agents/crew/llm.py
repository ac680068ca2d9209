"""Optional: the crew's prose from a model behind an OpenAI-compatible endpoint.

Set `MYTHLINE_LLM_URL` (the API base, e.g. `http://127.0.0.1:11434/v1` for Ollama, or
`https://api.openai.com/v1`), `MYTHLINE_LLM_MODEL` and, if the endpoint wants one,
`MYTHLINE_LLM_API_KEY`. The plan (titles, beats, who speaks when) stays with the deterministic
rules, so the crew's coordination never depends on the model; the model writes the narration, the
lines, the revisions and the critic's notes. Any failure (network, timeout, an odd answer) falls
back to the rules for that piece: the crew keeps working.
"""
from __future__ import annotations

import logging
import os

import httpx

from agents.crew.writing import DEFAULT_CAST, Character, Outline, Writer

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


class LLMWriter(Writer):
    name = "llm"

    def __init__(self, chat: ChatCompletions, cast: tuple[Character, ...] = DEFAULT_CAST, **kwargs):
        super().__init__(cast, **kwargs)
        self.chat = chat

    async def _ask(self, prompt: str, fallback):
        try:
            return await self.chat.complete(SYSTEM, prompt)
        except Exception as exc:  # noqa: BLE001 - any failure: the rules write this piece
            logger.warning("model unavailable (%s: %s); using the writing rules", type(exc).__name__, exc)
            return None

    async def narration(self, outline: Outline, part: int) -> str:
        beats = outline.beats[:2] if part == 1 else outline.beats[2:]
        text = await self._ask(f"Scene '{outline.title}'. In 60-90 words of past-tense prose, close on "
                               f"{outline.cast[0].full_name}, narrate these beats: {' '.join(beats)}", None)
        return text or await super().narration(outline, part)

    async def line(self, outline: Outline, index: int) -> tuple[str, str]:
        speaker = outline.cast[index]
        fallback = await super().line(outline, index)
        text = await self._ask(f"Scene '{outline.title}' ({' '.join(outline.beats)}). Write one spoken line, "
                               f"at most 20 words, for {speaker.full_name}, {speaker.role}.", None)
        return (_one_line(text), fallback[1]) if text else fallback

    async def revise(self, outline: Outline, index: int, note: str) -> tuple[str, str]:
        speaker = outline.cast[index]
        fallback = await super().revise(outline, index, note)
        original = outline.lines[index][0]
        text = await self._ask(f"Revise {speaker.full_name}'s line \"{original}\" following this note: {note} "
                               f"Answer with the new line only, at most 15 words.", None)
        return (_one_line(text), fallback[1]) if text else fallback

    async def critique(self, outline: Outline, index: int, line: str, revise: bool) -> tuple[str, int]:
        fallback = await super().critique(outline, index, line, revise)
        ask = "one concrete change" if revise else "why it works"
        text = await self._ask(f"As the critic, in one or two sentences, say {ask} for this line in scene "
                               f"'{outline.title}': \"{line}\"", None)
        return (text[:600], fallback[1]) if text else fallback


def _one_line(text: str) -> str:
    first = text.strip().splitlines()[0].strip()
    return first.strip('"“”') or text.strip()


def writer_from_env(cast: tuple[Character, ...] = DEFAULT_CAST, env=None) -> Writer:
    """The model-backed writer when MYTHLINE_LLM_URL and MYTHLINE_LLM_MODEL are set, else the rules."""
    env = os.environ if env is None else env
    url, model = env.get("MYTHLINE_LLM_URL", "").strip(), env.get("MYTHLINE_LLM_MODEL", "").strip()
    if not url:
        return Writer(cast)
    if not model:
        logger.warning("MYTHLINE_LLM_URL is set but MYTHLINE_LLM_MODEL is not: using the writing rules")
        return Writer(cast)
    return LLMWriter(ChatCompletions(url, model, env.get("MYTHLINE_LLM_API_KEY") or None), cast)
