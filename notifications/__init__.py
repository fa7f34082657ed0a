"""Outbox, e-mail, webhooks, event feed."""
