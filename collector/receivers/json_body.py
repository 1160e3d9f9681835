"""A JSON CDR POST body, as the JSON value it carries: mod_json_cdr's three encodings.

The body is the document itself (`encode = false`, `application/json`), or
the form field `cdr=` holding it URL-encoded (`encode = true`,
`application/x-www-form-urlencoded`) or base64 (`encode = base64`,
`application/x-www-form-base64-encoded`). With `disable-100-continue` the
module's own headers are dropped and curl labels every body
form-urlencoded, so the body's shape, not its label, decides. What the
document means is `collector.vendors.freeswitch.json_cdr`'s. Pure: no I/O,
and never a value from the body in an error (JsonCdrError names the field).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any
from urllib.parse import unquote_to_bytes

from collector.vendors.freeswitch.json_cdr import JsonCdrError

_FORM_URLENCODED = "application/x-www-form-urlencoded"
_FORM_BASE64 = "application/x-www-form-base64-encoded"
#: a quote that ends a JSON string is followed by one of these (or the end)
_STRING_END = re.compile(r"\s*(?:[,:}\]]|\Z)")
_QUOTE_OR_BACKSLASH = re.compile(r'["\\]')
_JSON_ESCAPES = frozenset('"\\/bfnrt')
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")


def decode_body(body: bytes, content_type: str) -> Any:
    """The JSON value a POST body carries, in any of mod_json_cdr's encodings.

    The body's shape decides, not the Content-Type: with
    `disable-100-continue` mod_json_cdr replaces its header list, so curl
    labels every body `application/x-www-form-urlencoded`. A body that
    starts with `{` is the document itself (`encode = false`); otherwise the
    `cdr` form field holds it, URL-encoded (`encode = true`: starts with
    `%7B`) or base64 (`encode = base64`). Raises JsonCdrError.
    """
    text = body.strip()
    if text[:1] in (b"{", b"["):
        return _load_json(text)
    value = _cdr_field(text)
    if value is None:
        if content_type in (_FORM_URLENCODED, _FORM_BASE64):
            raise JsonCdrError("no cdr form field")
        return _load_json(text)
    if value[:1] == b"{" or value[:3].upper() == b"%7B":
        return _load_form_json(value)
    if b"%" in value:  # base64 that was form-encoded on its way
        value = unquote_to_bytes(value)
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise JsonCdrError("cdr is not valid base64") from None
    return _load_json(decoded)


def _cdr_field(text: bytes) -> bytes | None:
    """The raw (still encoded) value of the `cdr` form field, or None."""
    for part in text.split(b"&"):
        name, sep, value = part.partition(b"=")
        if sep and unquote_to_bytes(name.replace(b"+", b" ")).strip() == b"cdr":
            return value
    return None


def _load_form_json(value: bytes) -> Any:
    """The document of an `encode = true` body.

    switch_url_encode leaves a `%XX` that is already in its input alone, and
    with `encode-values` (the default) every variable value is itself
    URL-encoded: once the form is decoded, a value can hold a bare `"`, `\\`
    or line break (a display name, an SDP). Such a quote is one that does not
    end the string, and is escaped again before the JSON is read.
    """
    text = _utf8(unquote_to_bytes(value.replace(b"+", b" ")))
    try:
        return _parse(text)
    except (ValueError, RecursionError):
        pass
    try:
        return _parse(_escape_stray_quotes(text))
    except (ValueError, RecursionError):
        raise JsonCdrError("the body is not valid JSON") from None


def _escape_stray_quotes(text: str) -> str:
    """`text` with each quote and backslash inside a string that JSON cannot take escaped."""
    pieces: list[str] = []
    copied = resume = 0
    inside = False
    for match in _QUOTE_OR_BACKSLASH.finditer(text):
        at = match.start()
        if at < resume:  # the character after a valid escape
            continue
        resume = at + 1
        if not inside:
            inside = text[at] == '"'
            continue
        if text[at] == "\\":
            after = text[at + 1 : at + 2]
            if (after and after in _JSON_ESCAPES) or (
                after == "u" and _HEX4.fullmatch(text, at + 2, at + 6)
            ):
                resume = at + 2
                continue
            pieces += (text[copied:at], "\\\\")
        elif _STRING_END.match(text, at + 1):
            inside = False
            continue
        else:
            pieces += (text[copied:at], '\\"')
        copied = at + 1
    pieces.append(text[copied:])
    return "".join(pieces)


def _utf8(data: bytes) -> str:
    # a display name or user agent in Latin-1 must not cost the call its record
    return data.decode("utf-8", errors="replace").removeprefix("\ufeff")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object; a `callflow` key repeated (older mod_json_cdr) keeps every value."""
    result = dict(pairs)
    if len(result) < len(pairs) and "callflow" in result:
        flows = [value for key, value in pairs if key == "callflow"]
        if len(flows) > 1:
            result["callflow"] = flows
    return result


def _parse(text: str) -> Any:
    # strict=False: a control character inside a string (a decoded line break) is kept
    return json.loads(text, strict=False, object_pairs_hook=_object)


def _load_json(text: bytes) -> Any:
    try:
        return _parse(_utf8(text))
    except (ValueError, RecursionError):
        raise JsonCdrError("the body is not valid JSON") from None
