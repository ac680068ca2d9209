"""The story bible in the admin: staff list, filter, search, add, change and delete entries through
the services (the same checks, version bumps), and delete progressions."""
import pytest
from django.urls import reverse

from accounts.models import User
from bible.models import BibleEntry, BibleProgression
from bible.services import entry_create, progression_add

pytestmark = pytest.mark.django_db


def url(model, view, *args):
    return reverse(f"admin:bible_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def world(make_user, make_story, client):
    boss = User.objects.create_superuser("boss", "boss@example.com", "pw-boss-123456")
    alice = make_user("alice")
    tale, other = make_story(alice, slug="tale"), make_story(alice, slug="other")
    mara = entry_create(story=tale, by=alice, kind="character", name="Mara", aliases=["the keeper's daughter"])
    entry_create(story=tale, by=alice, kind="place", name="Skerry Rock")
    entry_create(story=other, by=alice, kind="character", name="Elias")
    progression_add(entry=mara, by=alice, from_scene=3, fields={"age": "20"})
    client.force_login(boss)
    return {"client": client, "tale": tale, "mara": mara, "boss": boss}


def names(page: str):
    return {name for name in ("Mara", "Skerry Rock", "Elias") if f">{name}<" in page}


def test_list_filter_search_and_change_page(world):
    client = world["client"]
    assert names(client.get(url(BibleEntry, "changelist")).content.decode()) == {"Mara", "Skerry Rock", "Elias"}
    assert names(client.get(url(BibleEntry, "changelist") + "?kind__exact=place").content.decode()) == {"Skerry Rock"}
    page = client.get(url(BibleEntry, "changelist") + f"?story__id__exact={world['tale'].pk}").content.decode()
    assert names(page) == {"Mara", "Skerry Rock"}
    assert names(client.get(url(BibleEntry, "changelist") + "?q=KEEPER").content.decode()) == {"Mara"}
    page = client.get(url(BibleEntry, "change", world["mara"].pk)).content.decode()
    assert "the keeper" in page and "age" in page
    assert client.get(url(BibleEntry, "add")).status_code == 200
    assert ">Bible entries<" in client.get("/admin/").content.decode()


def form(story, **values):
    return {"story": story.pk, "kind": "character", "name": "Mara", "aliases": '["the keeper\'s daughter"]',
            "description": "", "fields": "{}", "progressions-TOTAL_FORMS": "0", "progressions-INITIAL_FORMS": "0",
            "progressions-MIN_NUM_FORMS": "0", "progressions-MAX_NUM_FORMS": "1000", **values}


def test_add_change_and_delete_go_through_the_services(world):
    client, tale, mara = world["client"], world["tale"], world["mara"]
    r = client.post(url(BibleEntry, "add"), form(tale, name="Old Eli", aliases='["Eli"]'))
    assert r.status_code == 302, r.content.decode()[:3000]
    eli = BibleEntry.objects.get(story=tale, slug="old-eli")
    assert eli.created_by == world["boss"] and eli.aliases == ["Eli"] and eli.version == 1
    # the service's refusal, in its words: a taken name (any case), an alias that is not text
    for values in ({"name": "MARA"}, {"aliases": '[3]'}, {"kind": "lore", "fields": '{"a": 1}'}):
        r = client.post(url(BibleEntry, "add"), form(tale, **values))
        assert r.status_code == 200 and "errornote" in r.content.decode(), values
    assert BibleEntry.objects.filter(story=tale).count() == 3

    p = BibleProgression.objects.get(entry=mara)
    data = form(tale, description="Keeps the light.", **{
        "progressions-TOTAL_FORMS": "1", "progressions-INITIAL_FORMS": "1", "progressions-0-id": str(p.pk),
        "progressions-0-entry": str(mara.pk), "progressions-0-DELETE": "on"})
    r = client.post(url(BibleEntry, "change", mara.pk), data)
    assert r.status_code == 302, r.content.decode()[:3000]
    mara.refresh_from_db()
    assert mara.description == "Keeps the light." and mara.updated_by == world["boss"]
    assert not BibleProgression.objects.filter(entry=mara).exists() and mara.version == 4  # +1 change, +1 deletion
    r = client.post(url(BibleEntry, "delete", eli.pk), {"post": "yes"})
    assert r.status_code == 302 and not BibleEntry.objects.filter(pk=eli.pk).exists()
