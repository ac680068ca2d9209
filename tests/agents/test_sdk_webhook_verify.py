"""`mythline_sdk.webhooks.verify`, the receiver's side of Standard Webhooks, as pure functions.

The expected signatures are computed here, with hmac and base64 alone, from the scheme
(standardwebhooks.com): HMAC-SHA256 keyed with the base64-decoded secret after "whsec_", over
f"{webhook-id}.{webhook-timestamp}.{body}", sent as "v1,<base64>", several separated by spaces.
Nothing here calls the SDK's own `sign`, except to check that it agrees with these vectors.
"""
import base64
import hashlib
import hmac
import json
import time

import pytest

from mythline_sdk.webhooks import WebhookVerificationError, sign, verify

KEY = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(KEY).decode()
MSG_ID = "0b6c7f7e-5d1a-4f51-9a51-8f2a3c1d9e10"
BODY = json.dumps({"type": "message.created", "timestamp": "2026-12-06T10:00:00Z",
                   "data": {"story": "tale", "channel": "inbox.echo",
                            "message": {"id": MSG_ID, "msg_type": "query", "payload": {"text": "Lamp? ☂"}}}},
                  ensure_ascii=False).encode()


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(timestamp: int, sig: str, msg_id: str = MSG_ID) -> dict:
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": sig}


def test_a_known_vector():
    """A fixed vector: anyone's implementation of the scheme gets this value."""
    ts = 1_700_000_000
    expected = signature(KEY, MSG_ID, ts, b'{"a":1}')
    assert sign(SECRET, MSG_ID, ts, b'{"a":1}') == expected
    assert verify(SECRET, headers(ts, expected), b'{"a":1}', now=ts + 10) == {"a": 1}


def test_a_genuine_delivery_is_accepted_and_its_body_answered():
    now = int(time.time())
    sig = signature(KEY, MSG_ID, now, BODY)
    event = verify(SECRET, headers(now, sig), BODY)
    assert event["data"]["message"]["id"] == MSG_ID and event["data"]["message"]["payload"]["text"] == "Lamp? ☂"
    # The body as text (UTF-8), headers in any case, as frameworks hand them over.
    upper = {k.upper(): v for k, v in headers(now, sig).items()}
    assert verify(SECRET, upper, BODY.decode()) == event
    # The raw key works as the secret too.
    assert verify(KEY, headers(now, sig), BODY) == event


def test_several_signatures_one_of_which_matches_while_a_secret_rotates():
    now = int(time.time())
    old_key = b"an older key, being rotated out!"
    ours = signature(KEY, MSG_ID, now, BODY)
    theirs = signature(old_key, MSG_ID, now, BODY)
    assert verify(SECRET, headers(now, f"{theirs} {ours}"), BODY)
    assert verify(SECRET, headers(now, f"v2,abc {ours}"), BODY)  # another scheme's entry is passed over
    with pytest.raises(WebhookVerificationError) as caught:
        verify(SECRET, headers(now, f"{theirs} v1,{base64.b64encode(b'x' * 32).decode()}"), BODY)
    assert caught.value.reason == "signature"


def test_a_tampered_body_is_refused():
    now = int(time.time())
    sig = signature(KEY, MSG_ID, now, BODY)
    tampered = BODY.replace(b"inbox.echo", b"inbox.evil")
    with pytest.raises(WebhookVerificationError) as caught:
        verify(SECRET, headers(now, sig), tampered)
    assert caught.value.reason == "signature" and "signature" in str(caught.value)
    # ... and so is the same body under another id (the id is signed: dedup cannot be dodged).
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, headers(now, sig, msg_id="another-id"), BODY)
    # ... or a re-encoded body (a parsed-and-dumped JSON is not the bytes signed).
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, headers(now, sig), json.dumps(json.loads(BODY)).encode())


def test_the_wrong_secret_is_refused():
    now = int(time.time())
    sig = signature(KEY, MSG_ID, now, BODY)
    other = "whsec_" + base64.b64encode(b"k" * 32).decode()
    with pytest.raises(WebhookVerificationError) as caught:
        verify(other, headers(now, sig), BODY)
    assert caught.value.reason == "signature"
    with pytest.raises(WebhookVerificationError) as caught:
        verify("whsec_not base64!", headers(now, sig), BODY)
    assert caught.value.reason == "secret"


def test_an_old_or_future_timestamp_is_refused_even_when_signed():
    now = int(time.time())
    for ts in (now - 301, now - 86_400, now + 301):
        sig = signature(KEY, MSG_ID, ts, BODY)  # a genuine signature: only the time is wrong
        with pytest.raises(WebhookVerificationError) as caught:
            verify(SECRET, headers(ts, sig), BODY)
        assert caught.value.reason == "timestamp", ts
    # Inside the tolerance, either way; a wider tolerance takes an older one.
    for ts in (now - 290, now + 290):
        assert verify(SECRET, headers(ts, signature(KEY, MSG_ID, ts, BODY)), BODY)
    old = now - 1000
    assert verify(SECRET, headers(old, signature(KEY, MSG_ID, old, BODY)), BODY, tolerance=1200)
    # A timestamp is part of what is signed: moving it forward breaks the signature.
    with pytest.raises(WebhookVerificationError) as caught:
        verify(SECRET, headers(now, signature(KEY, MSG_ID, old, BODY)), BODY)
    assert caught.value.reason == "signature"


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_or_malformed_headers_are_refused(missing):
    now = int(time.time())
    h = headers(now, signature(KEY, MSG_ID, now, BODY))
    del h[missing]
    with pytest.raises(WebhookVerificationError) as caught:
        verify(SECRET, h, BODY)
    assert caught.value.reason == "headers" and missing in str(caught.value)
    bad = headers(now, signature(KEY, MSG_ID, now, BODY))
    bad["webhook-timestamp"] = "yesterday"
    with pytest.raises(WebhookVerificationError) as caught:
        verify(SECRET, bad, BODY)
    assert caught.value.reason == "headers"


def test_a_signed_body_that_is_not_json_is_refused_and_the_error_is_a_value_error():
    now = int(time.time())
    body = b"not json"
    with pytest.raises(ValueError) as caught:
        verify(SECRET, headers(now, signature(KEY, MSG_ID, now, body)), body)
    assert isinstance(caught.value, WebhookVerificationError) and caught.value.reason == "body"
