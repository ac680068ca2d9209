"""The export formats: a manuscript (title, premise, text, who wrote it) as Markdown, plain text or
EPUB. Pure functions of their input, no database (exports/selectors.py gathers the manuscript).

The text is prose, not Markdown: nothing in it is escaped or interpreted, except the scene
headings the crew writes ("IV. The Storm" on a line of its own, `SCENE_HEADING`), which become
`## ` headings in Markdown and chapters in EPUB. In EPUB every string is HTML-escaped, so a text
holding `<script>` or `&` reads as that text.
"""
import html
import io
import re
from dataclasses import dataclass

FORMATS = ("md", "txt", "epub")
CONTENT_TYPES = {"md": "text/markdown; charset=utf-8", "txt": "text/plain; charset=utf-8",
                 "epub": "application/epub+zip"}
SCENE_HEADING = re.compile(r"^[IVXLCDM]+\. .+$")
LANGUAGE = "en"

# Characters XML 1.0 does not allow (C0 controls but tab and line breaks, lone surrogates, U+FFFE/F):
# an EPUB is XHTML, so they are dropped there (Markdown and plain text keep the text as it is).
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_BLANK_LINES = re.compile(r"\n[ \t\r]*\n")


@dataclass(frozen=True)
class Manuscript:
    title: str
    text: str
    premise: str = ""
    author: str = ""
    identifier: str = ""  # mythline:<story>:<document>@<revision>


def one_line(value: str) -> str:
    return " ".join(value.split())


def paragraphs(text: str) -> list[str]:
    """Paragraphs split on blank lines, each without its outer blank space; empty ones dropped."""
    return [p.strip("\n\r\t ") for p in _BLANK_LINES.split(text.replace("\r\n", "\n")) if p.strip()]


def is_scene_heading(line: str) -> bool:
    return SCENE_HEADING.match(line) is not None


def to_markdown(m: Manuscript) -> str:
    out = [f"# {one_line(m.title)}", ""]
    for p in paragraphs(m.premise):
        out += [f"*{p}*", ""]
    out += [f"## {line}" if is_scene_heading(line) else line for line in m.text.split("\n")]
    return "\n".join(out).rstrip("\n") + "\n"


def to_text(m: Manuscript) -> str:
    title = one_line(m.title)
    out = [title, "=" * len(title), ""]
    for p in paragraphs(m.premise):
        out += [p, ""]
    return ("\n".join(out) + "\n" + m.text).rstrip("\n") + "\n"


def chapters(m: Manuscript) -> list[tuple[str, str]]:
    """(title, text) per scene heading; the text before the first heading, if any, is a chapter
    named after the manuscript; a text without headings is one chapter."""
    found: list[tuple[str, list[str]]] = [(one_line(m.title), [])]
    for line in m.text.split("\n"):
        if is_scene_heading(line):
            found.append((line.strip(), []))
        else:
            found[-1][1].append(line)
    result = [(title, "\n".join(lines)) for title, lines in found]
    if len(result) > 1 and not result[0][1].strip():
        result = result[1:]  # nothing before the first heading
    return result


def _xml(value: str) -> str:
    return html.escape(_NOT_XML.sub("", value), quote=True)


def _html_paragraphs(text: str) -> str:
    return "\n".join(f"<p>{'<br/>'.join(_xml(line) for line in p.split(chr(10)))}</p>" for p in paragraphs(text))


def to_epub(m: Manuscript) -> bytes:
    from ebooklib import epub  # imported when used: the other formats and the app load without it

    title = _NOT_XML.sub("", one_line(m.title)) or "Untitled"
    author = _NOT_XML.sub("", one_line(m.author))
    book = epub.EpubBook()
    book.set_identifier(_NOT_XML.sub("", m.identifier) or f"mythline:{title}")
    book.set_title(title)
    book.set_language(LANGUAGE)
    if author:
        book.add_author(author)
    if m.premise.strip():
        book.add_metadata("DC", "description", _NOT_XML.sub("", m.premise.strip()))

    cover = epub.EpubHtml(title=title, file_name="title.xhtml", lang=LANGUAGE)
    cover.content = (f"<h1>{_xml(title)}</h1>" + (f"<p>{_xml(author)}</p>" if author else "")
                     + "".join(f"<p><em>{_xml(p)}</em></p>" for p in paragraphs(m.premise)))
    book.add_item(cover)
    parts = []
    for i, (heading, text) in enumerate(chapters(m), start=1):
        heading = _NOT_XML.sub("", heading)
        part = epub.EpubHtml(title=heading, file_name=f"chapter-{i:03d}.xhtml", lang=LANGUAGE)
        part.content = f"<h2>{_xml(heading)}</h2>\n{_html_paragraphs(text)}"
        book.add_item(part)
        parts.append(part)
    book.toc = parts
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = [cover, "nav", *parts]
    out = io.BytesIO()
    epub.write_epub(out, book, {"raise_exceptions": True})
    return out.getvalue()


def render(m: Manuscript, fmt: str) -> bytes:
    if fmt == "epub":
        return to_epub(m)
    text = to_markdown(m) if fmt == "md" else to_text(m)
    return text.encode("utf-8", "replace")  # (a lone surrogate, which no database stores, becomes "?")
