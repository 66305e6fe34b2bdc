"""``resolve_slug``: slugs, Dagster job names and near misses."""

from __future__ import annotations

import pytest

from baton.slugs import UnknownSlug, resolve_slug

LIBRARY = ["content-pipeline", "content-review", "hello", "kpi-tracking", "etl_nightly"]


@pytest.mark.parametrize(
    ("given", "slug"),
    [
        ("content-review", "content-review"),
        ("content_review", "content-review"),
        ("content_review__v1", "content-review"),
        ("content-review__v12", "content-review"),
        ("Content_Review", "content-review"),
        ("hello", "hello"),
        ("etl_nightly", "etl_nightly"),
        ("etl-nightly", "etl_nightly"),
        (" kpi_tracking ", "kpi-tracking"),
    ],
)
def test_a_slug_or_its_job_name_is_accepted(given: str, slug: str) -> None:
    assert resolve_slug(given, LIBRARY) == slug


def test_an_exact_slug_that_looks_pinned_is_itself() -> None:
    assert resolve_slug("report__v2", ["report", "report__v2"]) == "report__v2"


def test_a_typo_is_answered_with_the_closest_slug() -> None:
    with pytest.raises(UnknownSlug) as caught:
        resolve_slug("content-reveiw", LIBRARY)
    assert caught.value.message == (
        "no orchestration 'content-reveiw' in the library; did you mean 'content-review'?"
    )
    assert str(caught.value) == caught.value.message
    assert caught.value.suggestions[0] == "content-review"
    assert caught.value.given == "content-reveiw"


def test_a_typo_in_a_job_name_suggests_the_slug() -> None:
    with pytest.raises(UnknownSlug, match="did you mean 'content-review'"):
        resolve_slug("content_reviw", LIBRARY)


def test_several_close_slugs_are_all_offered() -> None:
    with pytest.raises(UnknownSlug) as caught:
        resolve_slug("content", LIBRARY)
    assert set(caught.value.suggestions) == {"content-pipeline", "content-review"}
    assert " or " in caught.value.message


def test_a_prefix_is_offered_what_it_starts() -> None:
    with pytest.raises(UnknownSlug, match="did you mean 'kpi-tracking'"):
        resolve_slug("kpi", LIBRARY)


def test_nothing_close_says_only_that_it_is_missing() -> None:
    with pytest.raises(UnknownSlug) as caught:
        resolve_slug("zzz", LIBRARY)
    assert caught.value.message == "no orchestration 'zzz' in the library"
    assert caught.value.suggestions == []


def test_an_empty_library_knows_nothing() -> None:
    with pytest.raises(UnknownSlug, match=r"^no orchestration 'hello' in the library$"):
        resolve_slug("hello", [])


def test_unknown_slug_is_a_lookup_error() -> None:
    assert issubclass(UnknownSlug, LookupError)
