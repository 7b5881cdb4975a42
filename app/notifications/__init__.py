"""Webhooks to callers: an outbox of signed events, delivered by background work."""
