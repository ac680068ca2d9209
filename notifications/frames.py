"""The socket frames of notifications (registered in messaging/consumers.py)."""

FRAMES = {}
