"""Which webhook URLs and addresses Mythline sends to: the server-side request forgery guard.

A webhook makes the server send requests to a URL of the agent's choosing, so the URL must not
reach what only the server can reach: loopback, private networks, link-local (cloud metadata at
169.254.169.254), shared, reserved and multicast addresses. The check runs twice: when the URL is
registered (a clear 400), and at every attempt (webhooks.worker), on the addresses the host
resolves to *then*, and the request goes to the address that was checked (the host name still in
the Host header and in TLS's SNI and certificate check), so a DNS answer that changes between the
check and the connection (DNS rebinding) cannot slip a private address in.

Limits: only addresses are checked, not what answers there (a public address that forwards
inward, e.g. a misconfigured proxy of the receiver's own, is the receiver's business); proxies
from the environment are ignored (trust_env off) so they cannot route around the check.
MYTHLINE_WEBHOOK_ALLOW_PRIVATE turns the address check off (tests, a private deployment).
"""
import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

MAX_URL_CHARS = 2000


class Refused(Exception):
    """A URL or address Mythline does not send to; the message says why (shown to the agent)."""


def url_error(url) -> str | None:
    """Why this URL cannot be a webhook's (the scheme, its shape), without resolving it; None if it can."""
    if not isinstance(url, str) or not url:
        return "must be an https:// URL"
    if len(url) > MAX_URL_CHARS:
        return f"must be at most {MAX_URL_CHARS} characters"
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port  # a bad port raises here
    except ValueError:
        return "is not a valid URL"
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        return "must be an https:// URL"
    if scheme == "http" and not settings.MYTHLINE_WEBHOOK_ALLOW_INSECURE:
        return "must be an https:// URL (http:// is refused on this server)"
    if "@" in parts.netloc:
        return "must not contain credentials (user:password@)"
    if not parts.hostname:
        return "must name a host"
    if port == 0:
        return "is not a valid URL"
    return None


def check_url(url: str) -> None:
    """Raise Refused when this URL may not be registered: its shape, and (unless
    MYTHLINE_WEBHOOK_ALLOW_PRIVATE) the addresses its host resolves to now."""
    error = url_error(url)
    if error:
        raise Refused(error)
    parts = urlsplit(url)
    resolve(parts.hostname, parts.port or (443 if parts.scheme.lower() == "https" else 80))


NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052's well-known prefix


def address_error(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why Mythline does not send to this address; None if it does."""
    if settings.MYTHLINE_WEBHOOK_ALLOW_PRIVATE:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in NAT64:  # a NAT64 gateway would reach the IPv4 address inside
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return address_error(embedded)
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified or ip.is_reserved or ip.is_private or not ip.is_global:
        return "a private or reserved address"
    return None


def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, every one of them allowed (else Refused); IP literals as they are."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise Refused(f"the host {host!r} does not resolve") from exc
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise Refused(f"the host {host!r} does not resolve")
    for address in addresses:
        why = address_error(ipaddress.ip_address(address.split("%", 1)[0]))
        if why:
            # Not the address itself: the answer must not map the server's private network.
            raise Refused(f"the host {host!r} resolves to {why}; refused")
    return addresses
