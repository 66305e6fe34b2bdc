"""Repositories over Baton's tables and the transactional service the ops use."""
