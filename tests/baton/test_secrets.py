"""The masker knows Baton's own secret settings, each previous key of a list alone too."""

from __future__ import annotations

from cryptography.fernet import Fernet

from baton.secrets import masker_from_env


def test_the_secret_key_and_each_previous_key_are_masked() -> None:
    current, old, older = (Fernet.generate_key().decode() for _ in range(3))
    masker = masker_from_env(
        {"BATON_SECRET_KEY": current, "BATON_SECRET_KEY_PREVIOUS": f"{old}, {older},"}
    )
    text = masker.text(f"a={current} b={old} c={older}")
    assert text == "a=*** b=*** c=***"
