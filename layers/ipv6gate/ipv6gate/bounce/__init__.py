"""Bounces: the pure policy (send, suppress, defer), the queued request, proving a sender, pacing and sending."""
