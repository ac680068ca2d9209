"""Sign-in and sign-up limits: the brakes on password guessing and mass sign-ups, after OWASP's
authentication cheat sheet (a lock per account would let anyone lock anyone out).

- Failed sign-ins are counted, on the site's sign-in page and the admin's together:
  - per (account, client address) pair: the tight lock (default 5 in 15 minutes). A guesser locks
    only themselves out: the owner, from another address, still signs in;
  - per client address, whatever the username (default 20 in 15 minutes);
  - per account (the username tried, whether or not it exists): a high ceiling (default 100 in 15
    minutes) against guessing spread over many addresses. A browser that presents the account's
    device cookie (issued at a successful sign-in, see `issue_device_cookie`) passes this ceiling:
    its failures are counted against the cookie instead, and a cookie with 5 failures in a window
    is treated as absent until the window ends (a stolen cookie is no unlimited pass).
  Each count lives in a window that opens at the first failure and lasts MYTHLINE_SIGNIN_LIMITS'
  window. At a limit, every further attempt that it covers, even with the right password, is
  refused with 429, `Retry-After` and a message on the page, until the window ends: no lock
  outlasts one window, however many attempts are made meanwhile.
- The old password on the admin's password-change page counts the same way (`throttle_password_change`).
- An attempt is counted before the password is checked (so parallel guesses are counted too) and
  given back when it signs in: successful sign-ins are not failures.
- Sign-up attempts (every POST) are counted per client address (default 10 an hour); password-reset
  requests, when the pages are enabled, per address and per e-mail address.

The client address is REMOTE_ADDR, which under `manage.py serve` is what uvicorn reports: the
`X-Forwarded-For` of a proxy listed in FORWARDED_ALLOW_IPS, else the connecting peer. Django never
reads the header itself. IPv6 addresses count per /64, the block one client usually holds.
Counts use the cache (Redis in production, so they hold across processes and hosts),
mythline_site/throttling.py `WindowCounter`.
"""
import functools
import hashlib
import ipaddress
import logging
import math
import secrets
import unicodedata

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in
from django.core import signing
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.dispatch import receiver
from django.forms.utils import ErrorDict
from django.views.decorators.debug import sensitive_post_parameters

from mythline_site.throttling import WindowCounter

logger = logging.getLogger("mythline.accounts")
_SIGNED_IN = "_mythline_signed_in"
REFUSAL_ATTR = "mythline_sign_in_refusal"
_PASSED = "_mythline_password_passed"
DEVICE_COOKIE = "mythline_device"
DEVICE_COOKIE_MAX_AGE = 365 * 24 * 3600  # a year, renewed at each sign-in
_DEVICE_SALT = "mythline.accounts.limits.device-cookie"
_SCOPES = {"signup": "signup", "reset": "password-reset", "reset-email": "password-reset-email"}


def counter(name: str) -> WindowCounter:
    """The WindowCounter of one limit; "device" (failures per device cookie) has the pair's limit."""
    limit, window = settings.MYTHLINE_SIGNIN_LIMITS["pair" if name == "device" else name]
    return WindowCounter(_SCOPES.get(name, f"signin-{name}"), limit, window)


def client_address(request) -> str:
    """The address a limit counts against: REMOTE_ADDR, IPv6 reduced to its /64."""
    raw = (request.META.get("REMOTE_ADDR") or "").strip()
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return "unknown"
    if address.version == 6:
        if address.ipv4_mapped is not None:  # ::ffff:1.2.3.4 is the IPv4 client 1.2.3.4
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False).network_address) + "/64"
    return str(address)


def account_key(username: str) -> str:
    """The username as Django would look it up (NFKC, stripped), case-folded and hashed: 'Demo'
    and 'demo ' count against the same account, and any text makes a short, safe cache key."""
    normalized = unicodedata.normalize("NFKC", username or "").strip().casefold()
    return hashlib.sha256(normalized.encode()).hexdigest()[:32]


def minutes_text(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"{minutes} minute" if minutes == 1 else f"{minutes} minutes"


def issue_device_cookie(response, username: str) -> None:
    """Give the browser a device cookie for `username`'s account (OWASP's "device cookies"): signed
    with SECRET_KEY, bound to the account, with a random nonce that its failures are counted by."""
    value = signing.dumps({"a": account_key(username), "n": secrets.token_urlsafe(12)}, salt=_DEVICE_SALT)
    response.set_cookie(DEVICE_COOKIE, value, max_age=DEVICE_COOKIE_MAX_AGE, httponly=True,
                        secure=settings.MYTHLINE_HTTPS, samesite="Lax")


def device_nonce(request, account: str) -> str | None:
    """The nonce of the request's device cookie if it is valid and issued for `account`."""
    raw = request.COOKIES.get(DEVICE_COOKIE)
    if not raw:
        return None
    try:
        data = signing.loads(raw, salt=_DEVICE_SALT, max_age=DEVICE_COOKIE_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("a") != account or not isinstance(data.get("n"), str):
        return None
    return data["n"]


MESSAGES = {
    "pair": "Too many failed sign-ins for this account from your network address; try again in {wait}.",
    "account": "Too many sign-in attempts for this account; try again in {wait}.",
    "address": "Too many sign-in attempts from your network address; try again in {wait}.",
    "signup": "Too many sign-ups from your network address; try again in {wait}.",
    "reset": "Too many password-reset requests from your network address; try again in {wait}.",
    "reset-email": "Too many password-reset requests for this e-mail address; try again in {wait}.",
}


class Refusal:
    """Which limit refuses a request, and for how long (whole seconds, for Retry-After)."""

    def __init__(self, limit: str, retry_after: float):
        self.limit = limit
        self.retry_after = max(1, math.ceil(retry_after))
        self.message = MESSAGES[limit].format(wait=minutes_text(self.retry_after))


def _longest(*refusals):
    refusals = [r for r in refusals if r is not None]
    return max(refusals, key=lambda r: r.retry_after) if refusals else None


def _refusal(limit, wait):
    return Refusal(limit, wait) if wait else None


def _log(refusal: Refusal, request) -> None:
    logger.warning("%s refused by the %s limit for address %s; retry after %ss", request.path, refusal.limit,
                   client_address(request), refusal.retry_after)


class RefusableFormMixin:
    """A form that, given a refusal, validates nothing (no password is checked, no user created)
    and shows the refusal as its one error."""

    refusal: Refusal | None = None
    refusal_field: str | None = None  # where the page shows it (None: the form's own errors)

    def full_clean(self):
        if self.refusal is None:
            return super().full_clean()
        self._errors = ErrorDict(renderer=self.renderer)
        self.cleaned_data = {}
        self.add_error(self.refusal_field, ValidationError(self.refusal.message, code="throttled"))


class RefusableLoginFormMixin(RefusableFormMixin):
    """For AuthenticationForm subclasses: the refusal comes from the request (set by
    `throttle_sign_in`)."""

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        self.refusal = getattr(request, REFUSAL_ATTR, None)


def refuse(response, refusal: Refusal):
    response.status_code = 429
    response["Retry-After"] = str(refusal.retry_after)
    return response


@receiver(user_logged_in, dispatch_uid="mythline-signin-limits")
def _mark_signed_in(sender, request, user, **kwargs):
    if request is not None:
        setattr(request, _SIGNED_IN, True)


def _attempt_keys(request, username: str) -> dict[str, str]:
    """The counts one attempt for `username` from this request goes into (see the module's doc)."""
    address = client_address(request)
    keys = {"address": address}
    if (username or "").strip():
        account = account_key(username)
        keys["pair"] = f"{account}:{address}"
        nonce = device_nonce(request, account)
        if nonce is not None and counter("device").retry_after(nonce) == 0:
            keys["device"] = nonce  # a trusted browser: the account's ceiling does not apply
        else:
            keys["account"] = account
    return keys


def _guarded(request, username: str, view, args, kwargs, passed_flag: str):
    """Run `view` for one password attempt under the limits: (response, passed). A refused attempt
    reaches the view with the refusal on the request (its form then checks no password) and is
    answered 429. `passed_flag`: the request attribute the view sets when the password was right."""
    keys = _attempt_keys(request, username)
    counters = {name: counter(name) for name in keys}
    refusal = _longest(*(_refusal(name, counters[name].retry_after(key))
                         for name, key in keys.items() if name != "device"))
    counted = []
    if refusal is None:  # count the attempt now; a right password gives it back below
        for name, key in keys.items():
            counted.append(name)
            wait = counters[name].hit(key)
            if name != "device":  # the cookie's own count only decides whether it is trusted
                refusal = _longest(refusal, _refusal(name, wait))
    if refusal is not None:
        _log(refusal, request)
        setattr(request, REFUSAL_ATTR, refusal)
        response = view(request, *args, **kwargs)
        if getattr(request, passed_flag, False):  # a form without the mixin: never let it through
            if passed_flag == _SIGNED_IN:
                logout(request)
            raise ImproperlyConfigured("a throttled view needs a form with a Refusable...FormMixin")
        return refuse(response, refusal), False

    response = view(request, *args, **kwargs)
    passed = getattr(request, passed_flag, False)
    if passed:
        for name in counted:
            counters[name].refund(keys[name])
    return response, passed


def throttle_sign_in(view):
    """Wrap a sign-in view whose form uses RefusableLoginFormMixin (the site's and the admin's).
    A successful sign-in gets (or renews) the account's device cookie."""

    @functools.wraps(view)
    @sensitive_post_parameters("password")  # it reads the form before the view's own decorator
    def wrapped(request, *args, **kwargs):
        if request.method != "POST":
            return view(request, *args, **kwargs)
        response, passed = _guarded(request, request.POST.get("username", ""), view, args, kwargs, _SIGNED_IN)
        if passed and request.user.is_authenticated:
            issue_device_cookie(response, request.user.get_username())
        return response

    return wrapped


class RefusablePasswordChangeFormMixin(RefusableFormMixin):
    """For PasswordChangeForm subclasses, built with `request=`: the refusal comes from the request
    (set by `throttle_password_change`), and a right old password is marked on it."""

    refusal_field = "old_password"  # the admin's page shows no form-wide errors

    def __init__(self, *args, request=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.request = request
        self.refusal = getattr(request, REFUSAL_ATTR, None)

    def clean_old_password(self):
        value = super().clean_old_password()  # raises unless it is right
        setattr(self.request, _PASSED, True)
        return value


def throttle_password_change(view):
    """Wrap a password-change view whose form uses RefusablePasswordChangeFormMixin: its old-password
    checks count like sign-ins of the signed-in account, in the same counts."""

    @functools.wraps(view)
    @sensitive_post_parameters("old_password", "new_password1", "new_password2")
    def wrapped(request, *args, **kwargs):
        if request.method != "POST" or not request.user.is_authenticated:
            return view(request, *args, **kwargs)
        return _guarded(request, request.user.get_username(), view, args, kwargs, _PASSED)[0]

    return wrapped


def signup_refusal(request) -> Refusal | None:
    """Count one sign-up attempt from this address; a Refusal if it is over the limit."""
    refusal = _refusal("signup", counter("signup").hit(client_address(request)))
    if refusal is not None:
        _log(refusal, request)
    return refusal


def password_reset_refusal(request, email: str) -> Refusal | None:
    """Count one password-reset request from this address and for this e-mail address; a Refusal
    if either is over its limit (mail bombing: the pages are off unless MYTHLINE_PASSWORD_RESET=1)."""
    refusal = _refusal("reset", counter("reset").hit(client_address(request)))
    if refusal is None and (email or "").strip():
        refusal = _refusal("reset-email", counter("reset-email").hit(account_key(email)))
    if refusal is not None:
        _log(refusal, request)
    return refusal
