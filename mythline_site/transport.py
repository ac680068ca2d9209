"""How many bytes a WebSocket still has to write to a client that is not reading.

ASGI has no backpressure signal. Under Daphne the send callable is `partial(server.handle_reply,
protocol)`, and the protocol's Twisted transport holds the unsent bytes; we read its buffer so a
client that stops reading is closed before it grows the server's memory. Under servers whose
`send` awaits the socket's drain (uvicorn), the send itself blocks and the caller's own bound
applies; this then answers None.
"""


def pending_bytes(send) -> int | None:
    protocol = getattr(send, "args", (None,))[0] if getattr(send, "args", None) else None
    transport = getattr(protocol, "transport", None)
    if transport is None:
        return None
    # twisted.internet.abstract.FileDescriptor keeps unsent data in these three fields.
    buffered = getattr(transport, "dataBuffer", None)
    if buffered is None:
        return None
    return len(buffered) - getattr(transport, "offset", 0) + getattr(transport, "_tempDataLen", 0)


def _daphne_protocol(send):
    args = getattr(send, "args", None)
    protocol = args[0] if args else None
    return protocol if hasattr(protocol, "sendCloseFrame") else None


def close_with_protocol_code(send, code: int, reason: str = "") -> bool:
    """Close with a protocol-level code (1008 policy, 1009 too big) under Daphne.

    Autobahn refuses application closes outside 1000 and 3000-4999, yet RFC 6455 gives these
    codes for exactly our cases; its close-frame primitive sends them. Returns False where the
    server is not Daphne: the caller then closes through ASGI, which passes any code on.
    """
    protocol = _daphne_protocol(send)
    if protocol is None:
        return False
    protocol.sendCloseFrame(code=code, reasonUtf8=reason.encode()[:120] or None, isReply=False)
    return True
