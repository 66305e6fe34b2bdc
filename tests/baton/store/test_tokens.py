"""API tokens on SQLite and Postgres: hashed, found only while live, gone with their user."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from baton.db.engine import session_scope
from baton.db.models import ApiToken, User
from baton.store.tokens import TokensRepository, hash_token
from baton.store.users import UsersRepository


def _user(url: str, name: str = "ann", org: str = "acme") -> int:
    with session_scope(url) as s:
        return UsersRepository(s).upsert(organization=org, name=name, groups=["editors"]).id


def test_create_find_list_revoke(db_url: str) -> None:
    user_id = _user(db_url)
    with session_scope(db_url) as s:
        user = s.get(User, user_id)
        assert user is not None
        row, raw = TokensRepository(s).create(user, role="approver", name="laptop")
        token_id = row.id
    assert raw.startswith("bt_") and len(raw) == 46
    with session_scope(db_url) as s:
        stored = s.get(ApiToken, token_id)
        assert stored is not None
        assert stored.token_hash == hashlib.sha256(raw.encode()).hexdigest() == hash_token(raw)
        assert stored.prefix == raw[:8] and raw not in (stored.token_hash, stored.prefix)
        found = TokensRepository(s).find_live(raw)
        assert found is not None and found.user.name == "ann" and found.token.role == "approver"
        assert TokensRepository(s).find_live(raw + "x") is None
        assert [t.id for t, _ in TokensRepository(s).list("acme")] == [token_id]
        assert TokensRepository(s).list("other") == []
    with session_scope(db_url) as s:
        assert TokensRepository(s).revoke(token_id) is True
        assert TokensRepository(s).revoke(token_id) is False
    with session_scope(db_url) as s:
        assert TokensRepository(s).find_live(raw) is None


def test_role_is_checked_in_code_and_in_the_table(db_url: str) -> None:
    user_id = _user(db_url)
    with session_scope(db_url) as s:
        user = s.get(User, user_id)
        assert user is not None
        with pytest.raises(ValueError, match="role must be one of"):
            TokensRepository(s).create(user, role="root")
    with pytest.raises(IntegrityError), session_scope(db_url) as s:
        s.add(ApiToken(user_id=user_id, name="", role="root", token_hash="0" * 64, prefix="bt_"))
        s.flush()


def test_tokens_go_with_their_user_and_hashes_are_unique(db_url: str) -> None:
    user_id = _user(db_url)
    with session_scope(db_url) as s:
        user = s.get(User, user_id)
        assert user is not None
        row, _ = TokensRepository(s).create(user, role="viewer")
        duplicate_hash = row.token_hash
    with pytest.raises(IntegrityError), session_scope(db_url) as s:
        s.add(
            ApiToken(
                user_id=user_id, name="", role="viewer", token_hash=duplicate_hash, prefix="bt_"
            )
        )
        s.flush()
    with session_scope(db_url) as s:
        s.execute(delete(User).where(User.id == user_id))
    with session_scope(db_url) as s:
        assert s.scalars(select(ApiToken)).all() == []
