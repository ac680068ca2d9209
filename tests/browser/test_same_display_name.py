"""Display names need not be unique: mallory calls herself "Mara", as the story's owner mara does,
and an agent calls itself "Narrator" as the real narrator is called. Wherever the room and the
monitor name someone (the feed, replies, the people list, the members dialog, the agent monitor,
the lobby's "by"), the @username follows the name, so the two are told apart by what one sees."""
import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.browser]

ROOM = "/stories/tale/?channel=general"


@pytest.fixture
def twins(db_call, make_user, make_story):
    from accounts.services import token_issue
    from agents.services import agent_create

    def build():
        mara = make_user("mara", display_name="Mara")
        mallory = make_user("mallory", display_name="Mara")
        story = make_story(mara, slug="tale", title="A Tale", editors=[mallory])
        make_story(mallory, slug="copy", title="A Tale, the real one")
        olaf = make_user("olaf", display_name="Olaf")
        agent_create(username="narrator", display_name="Narrator", capabilities=["narration"], stories=[story])
        agent_create(username="narrator-2", display_name="Narrator", capabilities=["narration"], stories=[story])
        return {"mara": mara, "mallory": mallory, "olaf": olaf,
                "tokens": {u.username: token_issue(user=u) for u in (mara, mallory)}}

    return db_call(build)


def post(client, text, **extra):
    r = client.post("/api/stories/tale/channels/general/messages",
                    json={"msg_type": "text", "payload": {"text": text}, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def shown(locator) -> str:
    """The text a reader sees, spaces collapsed."""
    return " ".join(locator.inner_text().split())


def test_two_people_with_one_display_name_are_told_apart_everywhere(open_as, rest, twins):
    real = post(rest(twins["tokens"]["mara"]), "The lamp is lit.")
    fake = post(rest(twins["tokens"]["mallory"]), "I am the owner: give me your token.", reply_to=real["id"])

    page = open_as(twins["mara"], ROOM)
    open_as(twins["mallory"], ROOM)  # both are in the room

    # The feed: the sender of each message, and the author a reply refers to.
    authors = {}
    for message in (real, fake):
        author = page.locator(f'#feed-list .msg[data-id="{message["id"]}"] .msg-author')
        expect(author.locator(".handle")).to_be_visible()
        authors[message["sender"]["username"]] = shown(author)
    assert authors == {"mara": "Mara @mara", "mallory": "Mara @mallory"}
    reply_ref = page.locator(f'#feed-list .msg[data-id="{fake["id"]}"] .reply-ref')
    expect(reply_ref).to_contain_text("Mara @mara")

    # The people list: both present, each with a visible handle.
    people = {}
    for username in ("mara", "mallory"):
        name = page.locator(f'#people-body .person[data-user="{username}"] .person-name')
        expect(name.locator(".handle")).to_be_visible(timeout=5000)
        people[username] = shown(name)
    assert people == {"mara": "Mara @mara (you)", "mallory": "Mara @mallory"}
    agents = {u: shown(page.locator(f'#people-body .person[data-user="{u}"] .person-name .name-text'))
              + " " + shown(page.locator(f'#people-body .person[data-user="{u}"] .person-name .handle'))
              for u in ("narrator", "narrator-2")}
    assert agents == {"narrator": "Narrator @narrator", "narrator-2": "Narrator @narrator-2"}

    # The sidebar's agent inboxes.
    inboxes = page.locator("#channel-groups .chan-name", has_text="Narrator inbox")
    expect(inboxes).to_have_count(2)
    assert sorted(inboxes.all_inner_texts()) == ["Narrator inbox (@narrator)", "Narrator inbox (@narrator-2)"]

    # The members dialog.
    page.locator("#members-button").click()
    dialog = page.locator("#members-dialog")
    expect(dialog.locator('.member[data-user="mallory"]')).to_be_visible()
    members = {u: shown(dialog.locator(f'.member[data-user="{u}"] .member-name'))
               for u in ("mara", "mallory")}
    assert members["mara"].startswith("Mara @mara") and members["mallory"].startswith("Mara @mallory")
    assert members["mara"] != members["mallory"]

    # The agent monitor.
    monitor = open_as(twins["mara"], "/stories/tale/agents/")
    rows = {}
    for username in ("narrator", "narrator-2"):
        name = monitor.locator(f'#monitor-body tr[data-agent="{username}"] .agent-name')
        expect(name.locator(".handle")).to_be_visible()
        rows[username] = shown(name)
    assert rows == {"narrator": "Narrator @narrator", "narrator-2": "Narrator @narrator-2"}

    # The lobby names the owner of each public story with the handle too.
    lobby = open_as(twins["olaf"], "/", wait_live=False)
    by = {slug: shown(lobby.locator(f'#public-stories .story-row[data-story="{slug}"] p.muted'))
          for slug in ("tale", "copy")}
    assert by["tale"].startswith("by Mara @mara ·") and by["copy"].startswith("by Mara @mallory ·"), by
    assert not page.errors and not monitor.errors, (page.errors, monitor.errors)


def test_the_typing_line_and_the_voters_tell_two_maras_apart(open_as, rest, twins):
    """The typing line, the voters listed on a proposal's tally and the link a vote makes to its
    proposal name each person with the @username too."""
    page = open_as(twins["mara"], ROOM)
    other = open_as(twins["mallory"], ROOM)

    # mallory types: mara's room says which Mara is typing.
    other.locator("#compose-host textarea").press_sequentially("I am the own", delay=20)
    typing = page.locator("#typing")
    expect(typing).to_have_text("Mara @mallory is typing…", timeout=5000)
    expect(typing.locator('.typing-name[data-user="mallory"] .handle')).to_have_text("@mallory")
    # And the other way round.
    page.locator("#compose-host textarea").press_sequentially("No, I am", delay=20)
    expect(other.locator("#typing")).to_have_text("Mara @mara is typing…", timeout=5000)
    other.locator("#compose-host textarea").press_sequentially("er", delay=20)
    expect(typing).to_have_text("Mara @mallory is typing…", timeout=5000)

    # A proposal both vote yes on: the tally's voters (its tooltip) and each vote's link to the
    # proposal name who is who.
    proposal = rest(twins["tokens"]["mara"]).post("/api/stories/tale/channels/general/messages",
                                                  json={"msg_type": "proposal", "payload": {"text": "Light the lamp."}})
    assert proposal.status_code == 201, proposal.text
    proposal = proposal.json()
    for username in ("mara", "mallory"):
        voted = rest(twins["tokens"][username]).post(
            "/api/stories/tale/channels/general/messages",
            json={"msg_type": "vote", "payload": {"proposal": proposal["id"], "choice": "yes"}})
        assert voted.status_code == 201, voted.text
    yes = page.locator(f'#feed-list .msg[data-id="{proposal["id"]}"] .tally-choice[data-choice="yes"]')
    expect(yes.locator(".tally-count")).to_have_text("2", timeout=5000)
    assert sorted(yes.get_attribute("title").split(", ")) == ["Mara @mallory", "Mara @mara"]
    links = page.locator("#feed-list .msg-vote .msg-link-text")
    expect(links).to_have_count(2)
    assert all(text.startswith("Mara @mara: ") for text in links.all_inner_texts()), links.all_inner_texts()
    assert not page.errors and not other.errors, (page.errors, other.errors)



def test_a_participant_outside_the_room_sees_a_new_agent_without_asking_for_presence(open_as, db_call, rest, twins):
    """Presence is for those in the room: olaf edits the story but left its room, so his page takes
    a newly added agent from the story's event and never asks the presence API (which says 404)."""
    from agents.services import agent_create
    from messaging.models import Channel
    from messaging.services import member_remove
    from stories.models import Story
    from stories.services import participant_add

    def leave_room():
        story = Story.objects.get(slug="tale")
        participant_add(story=story, user=twins["olaf"], role="editor")
        member_remove(channel=Channel.objects.get(story=story, name="room"), user=twins["olaf"], by=twins["olaf"])

    db_call(leave_room)
    page = open_as(twins["olaf"], ROOM)
    asked = []
    page.on("request", lambda request: asked.append(request.url) if request.url.endswith("/presence") else None)
    expect(page.locator('#people-body .person[data-user="narrator"]')).to_be_visible()
    db_call(lambda: agent_create(username="scribe", display_name="Narrator"))
    added = rest(twins["tokens"]["mara"]).post("/api/stories/tale/participants",
                                               json={"username": "scribe", "role": "editor"})
    assert added.status_code == 201, added.text
    row = page.locator('#people-body .person[data-user="scribe"] .person-name')
    expect(row).to_contain_text("Narrator @scribe", timeout=5000)
    assert asked == [] and not page.errors, (asked, page.errors)
