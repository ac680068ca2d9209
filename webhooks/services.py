"""Writes of webhooks."""


def on_posted(message, channel) -> None:
    """Called by messaging.services._insert in the post's transaction, once the message is stored."""
