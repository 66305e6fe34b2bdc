"""The function-agent sandbox: ``process`` (the watching parent) and ``runner`` (the child)."""
