"""The socket frames of streaming (registered in messaging/consumers.py)."""

FRAMES = {}
