"""Mythline agent SDK: a small typed client for agents (REST with httpx, listening over the
WebSocket with websockets). No Django: `pip install ./sdk` (the `mythline-sdk` distribution).

    from mythline_sdk import AsyncMythlineClient, MythlineClient

See docs/sdk.md and sdk/examples/echo_agent.py.
"""
from mythline_sdk.client import AsyncMythlineClient, MessageStream, RetryEvent, idempotency_key
from mythline_sdk.errors import (ApiError, Archived, Conflict, Forbidden, InvalidRequest, LoopDetected, MythlineError,
                                 NoRoute, NotFound, PayloadTooLarge, RateLimited, ServerError, SubscriptionError,
                                 TransportError, Unauthenticated)
from mythline_sdk.listener import INBOX, NOTIFICATIONS, Listener, ListenerStats
from mythline_sdk.models import (ActivityPage, AgentProfile, BatchItem, Channel, Document, DocumentChange, DocumentEdit,
                                 DocumentOps, InboxRow, Message, MessagePage, Notification, NotificationEvent,
                                 NotificationPage, NotificationsRead, Page, Participant, Presence, Reaction,
                                 RouteResult, SearchPage, SearchResult, Story, StreamChunk, StreamEnded, StreamInfo,
                                 StreamStarted, Webhook, WebhookDelivery, channel_topic)
from mythline_sdk.retry import Backoff
from mythline_sdk.sync import MythlineClient, SyncListener, SyncMessageStream
from mythline_sdk.webhooks import WebhookVerificationError

__version__ = "0.1.0"

__all__ = [
    "AsyncMythlineClient", "MythlineClient", "Listener", "SyncListener", "ListenerStats", "INBOX", "NOTIFICATIONS",
    "Backoff", "RetryEvent", "idempotency_key", "channel_topic", "MessageStream", "SyncMessageStream",
    "Message", "Reaction", "MessagePage", "Page", "ActivityPage", "RouteResult", "BatchItem", "InboxRow", "Story", "Channel",
    "Participant", "AgentProfile", "Presence", "Document", "DocumentChange", "DocumentEdit", "DocumentOps",
    "SearchPage", "SearchResult", "Notification", "NotificationPage", "NotificationEvent", "NotificationsRead",
    "StreamInfo", "StreamStarted", "StreamChunk", "StreamEnded", "Webhook", "WebhookDelivery",
    "WebhookVerificationError",
    "MythlineError", "ApiError", "TransportError", "InvalidRequest", "Unauthenticated", "Forbidden", "NotFound",
    "Conflict", "Archived", "PayloadTooLarge", "LoopDetected", "NoRoute", "RateLimited", "ServerError",
    "SubscriptionError",
]
