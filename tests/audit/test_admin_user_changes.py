"""The largest rights changes on the site are made on the admin's user page: staff and superuser
status, groups, a user's own permissions, and deleting the user. Each writes one audit row in the
form's transaction, naming the staff member; an unchanged form writes none."""
import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from accounts.models import User
from audit.models import RightsEvent


def url(view, *args):
    return reverse(f"admin:accounts_user_{view}", args=args)


@pytest.fixture
def boss(db, client):
    boss = User.objects.create_superuser("boss", "boss@example.com", "pw-boss-123456")
    client.force_login(boss)
    return boss


class Log:
    def __init__(self):
        self.mark = RightsEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0

    def rows(self):
        rows = list(RightsEvent.objects.filter(id__gt=self.mark).select_related("actor", "subject").order_by("id"))
        if rows:
            self.mark = rows[-1].pk
        return rows


def change_form(client, user, **changes):
    """The user's change page submitted as the staff member sees it, with `changes` applied."""
    page = client.get(url("change", user.pk))
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        if field.disabled or name == "password":
            continue
        value = form.initial.get(name)
        if name in ("groups", "user_permissions"):
            data[name] = [str(getattr(v, "pk", v)) for v in (value or [])]
        elif isinstance(value, bool):
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = value
    for formset in page.context["inline_admin_formsets"]:
        management = formset.formset.management_form
        data.update({management.add_prefix(k): v for k, v in management.initial.items()})
        for i, inline in enumerate(formset.formset.forms):
            data[inline.add_prefix("id")] = inline.instance.pk
    for name, value in changes.items():
        if value is True:
            data[name] = "on"
        elif value is False:
            data.pop(name, None)
        else:
            data[name] = value
    return data


def save(client, user, **changes):
    response = client.post(url("change", user.pk), change_form(client, user, **changes))
    assert response.status_code == 302, response.content.decode()[:3000]


def test_staff_and_superuser_status_are_recorded(client, boss, make_user):
    bob = make_user("bob")
    log = Log()
    save(client, bob, is_staff=True)
    [row] = log.rows()
    assert (row.event_type, row.actor, row.subject) == ("user.staff_changed", boss, bob)
    assert (row.before, row.after) == ({"is_staff": False}, {"is_staff": True})

    save(client, bob, is_superuser=True, is_active=False)
    assert [(r.event_type, r.actor.username, r.subject.username, r.before, r.after) for r in log.rows()] == [
        ("user.deactivated", "boss", "bob", None, None),
        ("user.superuser_changed", "boss", "bob", {"is_superuser": False}, {"is_superuser": True})]
    bob.refresh_from_db()
    assert bob.is_staff and bob.is_superuser and not bob.is_active

    save(client, bob, is_staff=False, is_superuser=False)
    assert [(r.event_type, r.after) for r in log.rows()] == [
        ("user.staff_changed", {"is_staff": False}), ("user.superuser_changed", {"is_superuser": False})]

    save(client, bob, display_name="Bob")  # no rights changed: no row
    assert log.rows() == []


def test_groups_and_permissions_are_recorded(client, boss, make_user):
    bob = make_user("bob")
    editors, auditors = Group.objects.create(name="editors"), Group.objects.create(name="auditors")
    bob.groups.add(auditors)
    change_story = Permission.objects.get(content_type__app_label="stories", codename="change_story")
    view_message = Permission.objects.get(content_type__app_label="messaging", codename="view_message")
    log = Log()
    save(client, bob, groups=[str(editors.pk), str(auditors.pk)], user_permissions=[str(change_story.pk)])
    rows = log.rows()
    assert [(r.event_type, r.actor.username, r.subject.username) for r in rows] == [
        ("user.groups_changed", "boss", "bob"), ("user.permissions_changed", "boss", "bob")]
    assert (rows[0].before, rows[0].after, rows[0].extra) == (
        {"groups": ["auditors"]}, {"groups": ["auditors", "editors"]}, {"added": ["editors"], "removed": []})
    assert (rows[1].before, rows[1].after) == ({"user_permissions": []}, {"user_permissions": ["stories.change_story"]})

    save(client, bob, groups=[str(editors.pk)], user_permissions=[str(view_message.pk)])
    rows = log.rows()
    assert [(r.event_type, r.extra) for r in rows] == [
        ("user.groups_changed", {"added": [], "removed": ["auditors"]}),
        ("user.permissions_changed", {"added": ["messaging.view_message"], "removed": ["stories.change_story"]})]
    assert set(bob.get_all_permissions()) >= {"messaging.view_message"}

    save(client, bob)  # the same groups and permissions again: no row
    assert log.rows() == []


def test_deleting_a_user_is_recorded_with_who_they_were(client, boss, make_user):
    bob, carol, dave = make_user("bob", is_staff=True), make_user("carol"), make_user("dave")
    bob.groups.add(Group.objects.create(name="editors"))
    log = Log()
    response = client.post(url("delete", bob.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not User.objects.filter(username="bob").exists()
    [row] = log.rows()
    assert (row.event_type, row.actor, row.subject) == ("user.deleted", boss, None)  # the subject went with bob
    assert row.before == {"username": "bob", "is_agent": False, "is_active": True, "is_staff": True,
                          "is_superuser": False, "groups": ["editors"], "user_permissions": []}
    assert row.extra == {"user_id": bob.pk}

    # The changelist's bulk delete: one row per user.
    response = client.post(url("changelist"), {"action": "delete_selected", "post": "yes",
                                               "_selected_action": [str(carol.pk), str(dave.pk)]})
    assert response.status_code == 302
    assert sorted((r.event_type, r.actor.username, r.before["username"]) for r in log.rows()) == [
        ("user.deleted", "boss", "carol"), ("user.deleted", "boss", "dave")]
    assert not User.objects.filter(username__in=["carol", "dave"]).exists()
