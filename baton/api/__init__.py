"""Baton's HTTP API: approvals, webhooks, live progress, status, the approvals page, metrics."""
