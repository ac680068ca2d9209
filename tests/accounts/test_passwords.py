"""The password rules the sign-up page states are the rules enforced, on every way to set one."""
import html

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts.views import PASSWORD_RULES

PROMISE = "At least 8 characters, not too common, not all digits, not too like your username."


def signup(client, password, username="newwriter"):
    response = client.post("/accounts/signup/", {"username": username, "password1": password,
                                                 "password2": password})
    return response, html.unescape(response.content.decode())


def test_the_page_states_the_rules_and_the_validators_are_exactly_those(client, db):
    assert PASSWORD_RULES == PROMISE
    assert PROMISE in html.unescape(client.get("/accounts/signup/").content.decode())
    names = [v["NAME"].rsplit(".", 1)[1] for v in settings.AUTH_PASSWORD_VALIDATORS]
    assert sorted(names) == ["CommonPasswordValidator", "MinimumLengthValidator", "NumericPasswordValidator",
                             "UserAttributeSimilarityValidator"]
    assert settings.AUTH_PASSWORD_VALIDATORS[1]["OPTIONS"] == {"min_length": 8}


def test_an_all_digits_password_is_refused_with_the_stated_message(client, db):
    response, page = signup(client, "83920571")
    assert response.status_code == 200
    assert "This password is entirely numeric." in page
    # Shown under the password field, next to the rule it breaks.
    field = page.split('for="id_password1"', 1)[1].split('for="id_password2"', 1)[0]
    assert "This password is entirely numeric." in field and PROMISE in field
    assert not get_user_model().objects.filter(username="newwriter").exists()


def test_each_stated_rule_is_enforced(client, db):
    for password, message in [
        ("x7#kq2", "This password is too short. It must contain at least 8 characters."),
        ("password123", "This password is too common."),
        ("12345678901", "This password is entirely numeric."),
        ("newwriter1", "The password is too similar to the username."),
    ]:
        response, page = signup(client, password)
        assert response.status_code == 200 and message in page, password
    assert not get_user_model().objects.filter(username="newwriter").exists()
    response, _ = signup(client, "tide-lantern-brass")
    assert response.status_code == 302 and get_user_model().objects.filter(username="newwriter").exists()


def test_other_ways_to_set_a_password_apply_the_same_rules(client, db):
    # validate_password is what createsuperuser, changepassword and the password forms call.
    try:
        validate_password("83920571")
    except ValidationError as error:
        assert "This password is entirely numeric." in error.messages
    else:
        raise AssertionError("an all-digits password was accepted")
    boss = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-boss-123456")
    client.force_login(boss)
    response = client.post(reverse("admin:accounts_user_add"), {
        "username": "fromadmin", "usable_password": "true", "password1": "83920571", "password2": "83920571"})
    assert response.status_code == 200
    assert "This password is entirely numeric." in html.unescape(response.content.decode())
    assert not get_user_model().objects.filter(username="fromadmin").exists()
