"""Entity tags and ``If-Match`` evaluation (RFC 9110 section 13.1.1)."""

from __future__ import annotations


def etag_for(version: int) -> str:
    """The strong ETag of a resource at a version."""
    return f'"{version}"'


def if_match_satisfied(header: str | None, current: str) -> bool:
    """True when there is no ``If-Match`` or it lists ``*`` or the current tag.

    If-Match uses the strong comparison: weak tags (``W/"..."``) never match.
    """
    if header is None:
        return True
    tags = [t.strip() for t in header.split(",") if t.strip()]
    if "*" in tags:
        return True
    return current in tags
