"""Exports over REST: a document or the whole story as Markdown, plain text and EPUB, with the
story's access rules, old revisions, hostile text, and the EPUB opened by a reader library
(ebooklib), not searched as a zip."""
import pytest
from ebooklib import ITEM_DOCUMENT, epub
from lxml import html as lxml_html

from stories.documents import document_create, document_edit
from stories.models import Document
from tests.conftest import error_code

pytestmark = pytest.mark.django_db

TEXT = ("The lamp guttered.\n\n"
        "I. The Storm\n"
        "Rain came sideways off the sea.\nMara held the rail.\n\n"
        "She did not let go.\n"
        "II. The Calm\n"
        "Morning. Nothing moved.")
HOSTILE = 'A <script>alert("x")</script> & a "quote" & \'another\' <b>bold</b> &amp;\n\nIII. <i>Tags</i> & more\nEnd.'


def url(story, doc=None, **query):
    base = f"/api/stories/{story}/documents/{doc}/export" if doc else f"/api/stories/{story}/export/book"
    return base + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def append(doc_name, story, user, text):
    doc = Document.objects.get(story=story, name=doc_name)
    return document_edit(doc=doc, author=user, body={"append": text}).revision


@pytest.fixture
def tale(make_user, make_story, make_agent):
    owner = make_user("owner", display_name="Alice Keeper")
    editor, viewer, outsider = make_user("ed"), make_user("vera"), make_user("olga")
    public = make_story(owner, slug="tale", title="The Lighthouse", premise="A keeper's daughter keeps the light.",
                        editors=[editor], viewers=[viewer])
    private = make_story(owner, slug="hush", title="Hush", visibility="private", viewers=[viewer])
    agent = make_agent("scribe", stories=[public, private])
    append("main", public, owner, TEXT)
    append("main", private, owner, "Secret words.")
    return {"owner": owner, "ed": editor, "vera": viewer, "olga": outsider, "scribe": agent,
            "public": public, "private": private}


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def read_epub(data: bytes, tmp_path):
    path = tmp_path / "book.epub"
    path.write_bytes(data)
    return epub.read_epub(str(path))


def chapter_texts(book) -> list[tuple[str, str, str]]:
    """(toc title, the chapter's <h2>, the chapter's paragraphs as text) in reading order."""
    out = []
    for link in book.toc:
        item = book.get_item_with_href(link.href)
        tree = lxml_html.fromstring(item.get_content())
        out.append((link.title, tree.findtext(".//h2"), "\n\n".join(p.text_content() for p in tree.iter("p"))))
    return out


def test_a_document_as_markdown(tale, api):
    r = api(tale["vera"]).get(url("tale", "main", format="md"))
    assert r.status_code == 200
    assert r["Content-Type"] == "text/markdown; charset=utf-8"
    assert r["Content-Disposition"] == 'attachment; filename="tale-main.md"'
    assert r["X-Mythline-Revision"] == "1"
    assert body(r).decode() == (
        "# The Lighthouse\n\n"  # the document's title (main's is the story's)
        "The lamp guttered.\n\n"
        "## I. The Storm\n"
        "Rain came sideways off the sea.\nMara held the rail.\n\n"
        "She did not let go.\n"
        "## II. The Calm\n"
        "Morning. Nothing moved.\n")
    # md is the default
    assert body(api(tale["vera"]).get(url("tale", "main"))) == body(r)


def test_a_document_as_plain_text(tale, api):
    r = api(tale["owner"]).get(url("tale", "main", format="txt"))
    assert r.status_code == 200
    assert r["Content-Type"] == "text/plain; charset=utf-8"
    assert r["Content-Disposition"] == 'attachment; filename="tale-main.txt"'
    assert body(r).decode() == "The Lighthouse\n==============\n\n" + TEXT + "\n"


def test_the_whole_story_as_markdown_and_text(tale, api):
    client = api(tale["scribe"])  # an agent reads it as anyone who may read the story
    r = client.get(url("tale", format="md"))
    assert r.status_code == 200 and r["Content-Type"] == "text/markdown; charset=utf-8"
    assert r["Content-Disposition"] == 'attachment; filename="tale.md"'
    text = body(r).decode()
    assert text.startswith("# The Lighthouse\n\n*A keeper's daughter keeps the light.*\n\nThe lamp guttered.\n\n"
                           "## I. The Storm\n")
    assert text.endswith("## II. The Calm\nMorning. Nothing moved.\n")
    r = client.get(url("tale", format="txt"))
    assert r["Content-Disposition"] == 'attachment; filename="tale.txt"'
    assert body(r).decode() == ("The Lighthouse\n==============\n\nA keeper's daughter keeps the light.\n\n"
                                + TEXT + "\n")
    # the owner's JSON audit export is unchanged: the owner's only
    assert api(tale["owner"]).get("/api/stories/tale/export")["Content-Type"] == "application/json"
    assert error_code(client.get("/api/stories/tale/export")) == "forbidden"


def test_a_document_as_epub_opened_by_a_reader(tale, api, tmp_path):
    r = api(tale["ed"]).get(url("tale", "main", format="epub"))
    assert r.status_code == 200
    assert r["Content-Type"] == "application/epub+zip"
    assert r["Content-Disposition"] == 'attachment; filename="tale-main.epub"'
    book = read_epub(body(r), tmp_path)
    assert book.title == "The Lighthouse"
    assert book.get_metadata("DC", "language")[0][0] == "en"
    assert book.get_metadata("DC", "identifier")[0][0] == "mythline:tale:main@1"
    assert book.get_metadata("DC", "creator")[0][0] == "Alice Keeper"
    assert chapter_texts(book) == [
        ("The Lighthouse", "The Lighthouse", "The lamp guttered."),  # the text before the first heading
        ("I. The Storm", "I. The Storm", "Rain came sideways off the sea.Mara held the rail.\n\nShe did not let go."),
        ("II. The Calm", "II. The Calm", "Morning. Nothing moved."),
    ]
    storm = lxml_html.fromstring(book.get_item_with_href(book.toc[1].href).get_content())
    assert len(storm.findall(".//br")) == 1  # a line break inside a paragraph stays one
    # Every chapter is in the reading order, after the title page.
    spine = [book.get_item_with_id(item_id).file_name for item_id, _ in book.spine if item_id != "nav"]
    assert spine == ["title.xhtml", *(link.href for link in book.toc)]


def test_the_whole_story_as_epub(tale, api, tmp_path):
    r = api(tale["olga"]).get(url("tale", format="epub"))  # a public story: an outsider reads it
    assert r.status_code == 200 and r["Content-Disposition"] == 'attachment; filename="tale.epub"'
    book = read_epub(body(r), tmp_path)
    assert book.title == "The Lighthouse"
    assert book.get_metadata("DC", "description")[0][0] == "A keeper's daughter keeps the light."
    title_page = lxml_html.fromstring(book.get_item_with_href("title.xhtml").get_content())
    assert title_page.findtext(".//h1") == "The Lighthouse"
    assert [p.text_content().strip() for p in title_page.iter("p")] == ["Alice Keeper", "A keeper's daughter keeps the light."]
    assert [t for t, _, _ in chapter_texts(book)] == ["The Lighthouse", "I. The Storm", "II. The Calm"]


def test_a_text_without_scene_headings_is_one_chapter(tale, api, tmp_path):
    document_create(story=tale["public"], creator=tale["owner"], name="notes", title="Notes",
                    text="Just one thought.\n\nAnd another.")
    book = read_epub(body(api(tale["owner"]).get(url("tale", "notes", format="epub"))), tmp_path)
    assert chapter_texts(book) == [("Notes", "Notes", "Just one thought.\n\nAnd another.")]
    # an empty document still makes a readable book, of one chapter
    document_create(story=tale["public"], creator=tale["owner"], name="empty")
    book = read_epub(body(api(tale["owner"]).get(url("tale", "empty", format="epub"))), tmp_path)
    assert chapter_texts(book) == [("empty", "empty", "")]  # no title: the document's name


def test_hostile_text_comes_out_as_text(tale, api, tmp_path):
    document_create(story=tale["public"], creator=tale["owner"], name="evil", title='<img src=x onerror="y"> & Co',
                    text=HOSTILE + "\x01\x0b")  # control characters XML refuses
    client = api(tale["vera"])
    md = body(client.get(url("tale", "evil", format="md"))).decode()
    assert md == '# <img src=x onerror="y"> & Co\n\n' + HOSTILE.replace("III.", "## III.") + "\x01\x0b\n"  # prose: as is
    txt = body(client.get(url("tale", "evil", format="txt"))).decode()
    assert HOSTILE in txt
    r = client.get(url("tale", "evil", format="epub"))
    assert r.status_code == 200
    book = read_epub(body(r), tmp_path)
    assert book.title == '<img src=x onerror="y"> & Co'
    chapters = chapter_texts(book)
    assert chapters == [
        ('<img src=x onerror="y"> & Co', '<img src=x onerror="y"> & Co',
         'A <script>alert("x")</script> & a "quote" & \'another\' <b>bold</b> &amp;'),
        ("III. <i>Tags</i> & more", "III. <i>Tags</i> & more", "End."),
    ]
    for item in book.get_items_of_type(ITEM_DOCUMENT):
        tree = lxml_html.fromstring(item.get_content())
        assert not tree.findall(".//script") and not tree.findall(".//img") and not tree.findall(".//b")
        assert not tree.findall(".//i")


def test_an_older_revision(tale, api, tmp_path):
    client = api(tale["vera"])
    rev = append("main", tale["public"], tale["owner"], "\nIII. The End\nThe light went out.")
    assert rev == 2
    now = body(client.get(url("tale", "main", format="txt"))).decode()
    assert "III. The End" in now
    r = client.get(url("tale", "main", format="txt", revision=1))
    assert r.status_code == 200 and r["X-Mythline-Revision"] == "1"
    assert r["Content-Disposition"] == 'attachment; filename="tale-main-r1.txt"'
    assert body(r).decode() == "The Lighthouse\n==============\n\n" + TEXT + "\n"
    assert body(client.get(url("tale", "main", format="md", revision=0))).decode() == "# The Lighthouse\n"
    book = read_epub(body(client.get(url("tale", "main", format="epub", revision=1))), tmp_path)
    assert book.get_metadata("DC", "identifier")[0][0] == "mythline:tale:main@1"
    assert [t for t, _, _ in chapter_texts(book)] == ["The Lighthouse", "I. The Storm", "II. The Calm"]
    # the current revision named explicitly is the current text
    assert body(client.get(url("tale", "main", format="txt", revision=2))).decode() == now
    for bad in ("3", "99", "-1", "one", "1.5"):
        r = client.get(url("tale", "main", format="md", revision=bad))
        assert r.status_code == 400 and error_code(r) == "invalid", bad
        assert "revision" in r.json()["error"]["details"], bad


@pytest.mark.parametrize("fmt", ["pdf", "MD", "json", "html", "epub3", "md%20", "txt,md"])
def test_an_unknown_format_is_invalid(tale, api, fmt):
    client = api(tale["owner"])
    for path in (url("tale", "main", format=fmt), url("tale", format=fmt)):
        r = client.get(path)
        assert r.status_code == 400, (path, r.content[:200])
        assert error_code(r) == "invalid"
        assert r.json()["error"]["details"] == {"format": "must be one of: md, txt, epub"}
        assert r["Content-Type"] == "application/json"


def test_who_may_export(tale, api):
    readers = {"tale": ("owner", "ed", "vera", "scribe", "olga"), "hush": ("owner", "vera", "scribe")}
    for story, names in readers.items():  # participants, agents too; a public story's outsider
        for name in names:
            for path in (url(story, "main", format="txt"), url(story, format="txt")):
                assert api(tale[name]).get(path).status_code == 200, (name, path)
    for name in ("olga", "ed"):  # outsiders of the private story (ed edits the public one)
        for path in (url("hush", "main", format="md"), url("hush", format="epub"), url("hush", "main", format="pdf"),
                     url("hush", "main", format="md", revision=99), url("nowhere", format="md")):
            r = api(tale[name]).get(path)
            assert r.status_code == 404 and error_code(r) == "not_found", path
            assert b"Secret" not in r.content and b"Hush" not in r.content
    anonymous = api(None)
    for path in (url("tale", "main", format="md"), url("hush", format="md")):
        r = anonymous.get(path)
        assert r.status_code == 401 and error_code(r) == "unauthenticated"
    r = api(tale["vera"]).get(url("tale", "nope", format="md"))
    assert r.status_code == 404 and error_code(r) == "not_found"


def test_a_fork_exports_under_its_own_name(tale, api):
    main = Document.objects.get(story=tale["public"], name="main")
    document_create(story=tale["public"], creator=tale["ed"], name="draft.2", fork_of=main, at_revision=1)
    r = api(tale["ed"]).get(url("tale", "draft.2", format="md"))
    assert r["Content-Disposition"] == 'attachment; filename="tale-draft.2.md"'
    assert body(r).decode().startswith("# The Lighthouse (fork at r1)\n\nThe lamp guttered.")
