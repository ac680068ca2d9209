"""Reads for the exports: a document (at its current or an older revision) or the whole story
(title, premise, then `main`) as a file in one of exports.formats.FORMATS. The caller has checked
that the user may read the story (stories.policies.access_story); REST and MCP both do.
"""
import re
from dataclasses import dataclass

from messaging.selectors import parse_int
from mythline_site.errors import Invalid, one_of
from stories import documents
from stories.models import Story
from stories.selectors import get_document
from stories.services import MAIN

from exports.formats import CONTENT_TYPES, FORMATS, Manuscript, render

DEFAULT_FORMAT = "md"


@dataclass(frozen=True)
class Export:
    content: bytes
    content_type: str
    filename: str
    format: str
    revision: int


def parse_format(value) -> str:
    """md (the default), txt or epub; anything else is `invalid` naming `format`."""
    if value is None or value == "":
        return DEFAULT_FORMAT
    if value not in FORMATS:
        raise Invalid(f"'format' must be one of: {', '.join(FORMATS)}.", details={"format": one_of(FORMATS)})
    return value


def safe_filename(*parts: str) -> str:
    """Slug and document names are already [a-z0-9._-]; anything else becomes '-' all the same."""
    stem = "-".join(parts)
    return re.sub(r"[^A-Za-z0-9._-]", "-", stem).strip(".-") or "export"


def _export(manuscript: Manuscript, fmt: str, filename: str, revision: int) -> Export:
    return Export(content=render(manuscript, fmt), content_type=CONTENT_TYPES[fmt],
                  filename=f"{filename}.{fmt}", format=fmt, revision=revision)


def document_export(story: Story, name: str, fmt, revision=None) -> Export:
    """One document: its title (or name) as the title, then its text, at `revision` if given
    (0 to the current revision; else `invalid` naming `revision`)."""
    fmt = parse_format(fmt)
    revision = parse_int(revision, "revision")
    doc = get_document(story, name, text=revision is None)
    if revision is None:
        revision, text, stem = doc.revision, doc.text, safe_filename(story.slug, doc.name)
    else:
        text, stem = documents.text_at(doc, revision), safe_filename(story.slug, doc.name, f"r{revision}")
    manuscript = Manuscript(title=doc.title or doc.name, text=text, author=story.owner.shown_name,
                            identifier=f"mythline:{story.slug}:{doc.name}@{revision}")
    return _export(manuscript, fmt, stem, revision)


def book_export(story: Story, fmt) -> Export:
    """The whole story: its title, its premise, then the current text of `main`."""
    fmt = parse_format(fmt)
    doc = get_document(story, MAIN, text=True)
    manuscript = Manuscript(title=story.title, premise=story.premise, text=doc.text, author=story.owner.shown_name,
                            identifier=f"mythline:{story.slug}:{doc.name}@{doc.revision}")
    return _export(manuscript, fmt, safe_filename(story.slug), doc.revision)
