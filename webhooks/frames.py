"""The socket frames of webhooks (registered in messaging/consumers.py)."""

FRAMES = {}
