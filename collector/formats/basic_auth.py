"""The JSON receiver's basic-auth file: "USER:PASSWORD" per line.

Blank lines and lines starting with '#' are ignored; the password is
everything after the first colon. Problems name the line, never its content:
the file holds passwords.
"""

from __future__ import annotations

from collections.abc import Iterable


def parse_basic_auth(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """The (user, password) pairs of a basic-auth file, and what is wrong with it:
    each bad line, or that it holds none (an empty list when it is fine)."""
    credentials: list[tuple[str, str]] = []
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user or not password:
            problems.append(f"line {number}: expected USER:PASSWORD")
            continue
        credentials.append((user, password))
    if not credentials:
        problems.append("holds no USER:PASSWORD line")
    return credentials, problems


def format_basic_auth(credentials: Iterable[tuple[str, str]]) -> str:
    """A basic-auth file for (user, password) pairs; ValueError for a pair it cannot hold
    (a user with ':' or starting with '#', a line break, spaces around the line)."""
    lines = []
    for user, password in credentials:
        line = f"{user}:{password}"
        if (
            not user
            or not password
            or ":" in user
            or user.startswith("#")
            or line.strip() != line
            or line.splitlines() != [line]
        ):
            raise ValueError("a user needs a name without ':' and a password, on one line")
        lines.append(f"{user}:{password}\n")
    return "".join(lines)
