"""Full-text search over the messages a user may read.

Access is part of the ranking query itself: each candidate row of the full-text index must have a
message that passes the same rule as every other read (`messaging.policies.readable_channels` for
the story and channel, `messaging.selectors.reader_q` for the audience), written as a correlated
EXISTS built by the ORM from those functions. Nothing is filtered in Python afterwards.

Three queries: (1) the page of ranked ids, access and filters applied; (2) the highlights of that
page only; (3) the page's messages, rendered as every read renders them.

The query language is the same on both databases: words (every one must occur, in any order) and
"quoted phrases". Anything else is text: no operator of FTS5 or tsquery reaches the database
(each term is quoted), so no input is a syntax error.
"""
import html
import re
from dataclasses import dataclass
from datetime import datetime, timezone as dt_timezone

from django.db import connection
from django.db.models.expressions import RawSQL
from django.utils.dateparse import parse_datetime

from messaging import relations
from messaging.models import Message
from messaging.policies import access_channel, readable_channels
from messaging.selectors import parse_int, reader_q
from messaging.serializers import message_json_full
from mythline_site.errors import Invalid
from search.extract import MARK_END, MARK_START
from search.models import MessageText
from stories.policies import access_story

MAX_QUERY_CHARS = 200
MAX_TERMS = 16
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_OFFSET = 1000
SNIPPET_WORDS = 24
_TERM_RE = re.compile(r'"([^"]*)"?|([^\s"]+)')
_WORD_RE = re.compile(r"\w")
_T = MessageText._meta.db_table
_FTS = f"{_T}_fts"
_PG_FROM, _PG_TO = "‹›<>", "  ‹›"
_PG_BACK = {ord("‹"): "<", ord("›"): ">"}


@dataclass(frozen=True)
class SearchParams:
    q: str
    terms: tuple[str, ...]
    story: str | None = None
    channel: str | None = None
    sender: str | None = None
    types: tuple[str, ...] = ()
    after: datetime | None = None
    before: datetime | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0


def query_terms(q: str) -> tuple[str, ...]:
    """Words and "quoted phrases" of `q`, without quotes; terms with no letter or digit dropped
    (they match nothing on either database); at most MAX_TERMS."""
    terms = []
    for phrase, word in _TERM_RE.findall(q):
        term = " ".join((phrase or word).split())
        if term and _WORD_RE.search(term):
            terms.append(term)
    return tuple(terms[:MAX_TERMS])


def _time(value, name):
    if value is None or value == "":
        return None
    parsed = None
    if isinstance(value, str):
        try:
            parsed = parse_datetime(value.strip())
        except ValueError:
            parsed = None
    if parsed is None:
        raise Invalid(f"'{name}' must be an ISO-8601 time, e.g. 2026-01-31T12:00:00Z.",
                      details={name: "must be an ISO-8601 time"})
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt_timezone.utc)


def parse_params(*, q, story=None, channel=None, sender=None, type=None, after=None, before=None, limit=None,
                 offset=None) -> SearchParams:
    """Check the arguments (REST query or MCP); raise Invalid naming each bad one."""
    if not isinstance(q, str) or not q.strip() or len(q) > MAX_QUERY_CHARS:
        raise Invalid(f"'q' must be 1-{MAX_QUERY_CHARS} characters, not only spaces.",
                      details={"q": f"must be 1-{MAX_QUERY_CHARS} characters"})
    if "\x00" in q:
        raise Invalid("'q' must not contain NUL.", details={"q": "must not contain NUL"})
    if channel and not story:
        raise Invalid("'channel' needs 'story'.", details={"channel": "needs 'story'"})
    types = tuple(t for t in (type or "").split(",") if t) if isinstance(type, str) else ()
    after_time, before_time = _time(after, "after"), _time(before, "before")
    limit = min(parse_int(limit, "limit", minimum=1, default=DEFAULT_LIMIT), MAX_LIMIT)
    offset = parse_int(offset, "offset", minimum=0, default=0)
    if offset > MAX_OFFSET:
        raise Invalid(f"'offset' must be at most {MAX_OFFSET}; narrow the search instead.",
                      details={"offset": f"must be at most {MAX_OFFSET}"})
    return SearchParams(q=q, terms=query_terms(q), story=story or None, channel=channel or None,
                        sender=sender or None, types=types, after=after_time, before=before_time,
                        limit=limit, offset=offset)


def _readable(user, params: SearchParams):
    """The messages `user` may read that match the filters, one of them `t.message_id`: the
    correlated EXISTS body, built from the rules every read uses. Raises NotFound/Forbidden for a
    story or channel the caller may not read, as every read does."""
    qs = Message.objects.filter(pk=RawSQL("t.message_id", ()))
    if params.channel:
        access = access_channel(user, params.story, params.channel)
        qs = qs.filter(channel_id=access.channel.pk)
        story = access.channel.story
    elif params.story:
        story = access_story(user, params.story).story
    else:
        story = None
    qs = qs.filter(channel_id__in=readable_channels(user, story=story).values("pk")).filter(reader_q(user))
    if story is not None:
        qs = qs.filter(story_id=story.pk)
    if params.sender:
        qs = qs.filter(sender__username=params.sender)
    if params.types:
        qs = qs.filter(msg_type__in=params.types)
    if params.after:
        qs = qs.filter(created_at__gt=params.after)
    if params.before:
        qs = qs.filter(created_at__lt=params.before)
    return qs.order_by().values("pk").query.sql_with_params()


def fts5_query(terms) -> str:
    """Each term an FTS5 string (a phrase), quotes doubled; all of them must match."""
    return " ".join('"' + term.replace('"', '""') + '"' for term in terms)


def tsquery_text(terms) -> str:
    """websearch_to_tsquery input: each term quoted (a phrase), so no word is an operator."""
    return " ".join(f'"{term}"' for term in terms)


# PostgreSQL's text search configuration, as the index's: `mythline_search` (`simple` with
# diacritics folded by `unaccent`) where migration 0003 could create it, else `simple`.
PG_CONFIG = ("COALESCE((SELECT c.oid::regconfig FROM pg_ts_config c WHERE c.cfgname = 'mythline_search' LIMIT 1), "
             "'simple'::regconfig)")


def _ranked(user, params: SearchParams) -> list[tuple]:
    """[(message_id, rank, index row id)], best first: one page."""
    where, where_params = _readable(user, params)
    page = [params.limit + 1, params.offset]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"SELECT t.message_id, ts_rank(t.tsv, query) AS rank, t.id FROM {_T} t, "
                f"websearch_to_tsquery({PG_CONFIG}, %s) query WHERE t.tsv @@ query AND EXISTS ({where}) "
                f"ORDER BY rank DESC, t.id DESC LIMIT %s OFFSET %s",
                [tsquery_text(params.terms), *where_params, *page])
        else:
            # The FTS5 table drives (CROSS JOIN keeps that order); bm25 is lower for better matches.
            cursor.execute(
                f"SELECT t.message_id, -bm25({_FTS}) AS rank, t.id FROM {_FTS} CROSS JOIN {_T} t "
                f"ON t.id = {_FTS}.rowid WHERE {_FTS} MATCH %s AND EXISTS ({where}) "
                f"ORDER BY rank DESC, t.id DESC LIMIT %s OFFSET %s",
                [fts5_query(params.terms), *where_params, *page])
        return cursor.fetchall()


def _highlights(params: SearchParams, row_ids: list[int]) -> dict[int, str]:
    """Index row id -> snippet with MARK_START/MARK_END around each hit, for one page's rows."""
    if not row_ids:
        return {}
    marks = [MARK_START, MARK_END]
    holders = ", ".join(["%s"] * len(row_ids))
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # ts_headline drops what its parser takes for HTML tags (`<lamp>`): it is given `<` and
            # `>` as `‹` and `›` (the text's own `‹›` as spaces), turned back below.
            options = f'StartSel="{MARK_START}", StopSel="{MARK_END}", MaxWords={SNIPPET_WORDS}, MinWords=8'
            cursor.execute(
                f"SELECT t.id, ts_headline({PG_CONFIG}, translate(t.text, %s, %s), "
                f"websearch_to_tsquery({PG_CONFIG}, %s), %s) FROM {_T} t WHERE t.id IN ({holders})",
                [_PG_FROM, _PG_TO, tsquery_text(params.terms), options, *row_ids])
            return {row_id: text.translate(_PG_BACK) for row_id, text in cursor.fetchall()}
        else:
            cursor.execute(
                f"SELECT rowid, snippet({_FTS}, 0, %s, %s, '…', {SNIPPET_WORDS}) FROM {_FTS} "
                f"WHERE {_FTS} MATCH %s AND rowid IN ({holders})", [*marks, fts5_query(params.terms), *row_ids])
        return dict(cursor.fetchall())


def highlight_html(snippet: str) -> str:
    """The snippet as HTML: every character escaped, each hit in <mark>…</mark>."""
    return html.escape(snippet, quote=True).replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")


def search_messages(user, params: SearchParams) -> dict:
    """{"results": [{"message", "story", "channel", "rank", "highlight"}], "next_offset"}, best first."""
    if not params.terms:
        _readable(user, params)  # the story and channel are still checked: 404 stays 404
        return {"results": [], "next_offset": None}
    rows = _ranked(user, params)
    more = len(rows) > params.limit
    rows = rows[:params.limit]
    ids = [Message._meta.pk.to_python(message_id) for message_id, _, _ in rows]
    messages = Message.objects.select_related("story", "channel", "sender").in_bulk(ids)
    highlights = _highlights(params, [row_id for _, _, row_id in rows])
    views = relations.views_for(list(messages.values()), user)  # as every read shows them: edited, reactions
    results = []
    for (_, rank, row_id), pk in zip(rows, ids):
        message = messages.get(pk)
        if message is None:  # deleted between the two queries
            continue
        results.append({"message": message_json_full(message, view=views[pk]), "story": message.story.slug,
                        "channel": message.channel.name, "rank": round(float(rank), 6),
                        "highlight": highlight_html(highlights.get(row_id, ""))})
    return {"results": results, "next_offset": params.offset + params.limit if more else None}
