"""Webhooks: inbound sources and their inbox, outbound subscriptions and deliveries."""
