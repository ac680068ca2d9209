"""Mythline agent SDK: a small typed client for agents (REST with httpx, listening over the
WebSocket with websockets). Importable without Django.

    from agents.sdk import AsyncMythlineClient, MythlineClient

See docs/sdk.md and agents/sdk/examples/echo_agent.py.
"""
from agents.sdk.client import AsyncMythlineClient, RetryEvent, idempotency_key
from agents.sdk.errors import (ApiError, Archived, Conflict, Forbidden, InvalidRequest, LoopDetected, MythlineError,
                               NoRoute, NotFound, PayloadTooLarge, RateLimited, ServerError, SubscriptionError,
                               TransportError, Unauthenticated)
from agents.sdk.listener import INBOX, Listener, ListenerStats
from agents.sdk.models import Document, InboxRow, Message, MessagePage, channel_topic
from agents.sdk.retry import Backoff
from agents.sdk.sync import MythlineClient

__all__ = [
    "AsyncMythlineClient", "MythlineClient", "Listener", "ListenerStats", "INBOX", "Backoff", "RetryEvent",
    "idempotency_key", "Message", "MessagePage", "InboxRow", "Document", "channel_topic",
    "MythlineError", "ApiError", "TransportError", "InvalidRequest", "Unauthenticated", "Forbidden", "NotFound",
    "Conflict", "Archived", "PayloadTooLarge", "LoopDetected", "NoRoute", "RateLimited", "ServerError",
    "SubscriptionError",
]
