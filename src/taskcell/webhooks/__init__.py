"""Webhooks: signing (Standard Webhooks), URL safety, sending, and the dispatcher that sends
the outbox's deliveries (the stores write them with the events; see
:mod:`taskcell.domain.webhooks`)."""
