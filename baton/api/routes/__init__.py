"""One router per resource; ``baton.api.app`` includes them."""
