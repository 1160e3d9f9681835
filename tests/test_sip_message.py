"""parse_sip: the header fields accounting needs, from real-looking and hostile input."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.receivers.sip.message import (
    SIP_ERROR_REASONS,
    SipError,
    SipMessage,
    parse_sip,
    uri_user,
)

DATA = Path(__file__).parent / "data" / "sip"


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def message(*lines: str, body: str = "") -> bytes:
    """A SIP message from header lines, CRLF-terminated, with an optional body."""
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("latin-1")


BASE = (
    "From: <sip:alice@example.org>;tag=f1",
    "To: <sip:bob@example.net>",
    "Call-ID: c1@example.org",
    "CSeq: 1 INVITE",
)


def parse_error(data: bytes) -> str:
    with pytest.raises(SipError) as caught:
        parse_sip(data)
    assert caught.value.reason in SIP_ERROR_REASONS
    return caught.value.reason


# -- whole messages ---------------------------------------------------------


def test_invite_with_sdp_body() -> None:
    msg = parse_sip(load("invite.sip"), correlation_header="X-CID")
    assert msg.is_request
    assert msg.method == "INVITE"
    assert msg.status == 0
    assert msg.ruri_user == "+4940555012"
    assert msg.call_id == "a84b4c76e66710@pc33.example.org"
    assert (msg.cseq, msg.cseq_method) == (314159, "INVITE")
    assert msg.from_tag == "1928301774"
    assert msg.from_user == "+4930111222"
    assert msg.to_tag is None
    assert msg.to_user == "+4940555012"
    assert msg.pai_user == "+4930111999"
    assert msg.reason_cause is None
    assert msg.correlation == "corr-7f3a9e"


def test_correlation_header_only_when_configured() -> None:
    assert parse_sip(load("invite.sip")).correlation is None
    assert parse_sip(load("invite.sip"), correlation_header="x-cid").correlation == "corr-7f3a9e"
    assert parse_sip(load("invite.sip"), correlation_header="X-Other").correlation is None
    spaced = message("INVITE sip:1@example.net SIP/2.0", *BASE, "x-Cid\t :  corr-2 ")
    assert parse_sip(spaced, correlation_header="X-CID").correlation == "corr-2"


def test_provisional_response() -> None:
    msg = parse_sip(load("ringing.sip"))
    assert not msg.is_request
    assert (msg.status, msg.method) == (180, "")
    assert msg.to_tag == "a6c85cf"
    assert msg.from_tag == "1928301774"
    assert (msg.cseq, msg.cseq_method) == (314159, "INVITE")
    assert msg.ruri_user is None


def test_busy_response_takes_the_q850_reason_not_the_sip_one() -> None:
    msg = parse_sip(load("busy_reason.sip"))
    assert msg.status == 486
    assert msg.reason_cause == 17


def test_compact_lowercase_folded_bare_lf() -> None:
    msg = parse_sip(load("bye_compact_folded.sip"))
    assert msg.method == "BYE"
    assert msg.ruri_user == "+4930111222"
    assert msg.call_id == "a84b4c76e66710@pc33.example.org"
    assert (msg.cseq, msg.cseq_method) == (231, "BYE")
    # Swapped: the callee hangs up, so From carries the callee's tag.
    assert msg.from_tag == "a6c85cf"
    assert msg.from_user == "+4940555012"
    assert msg.to_tag == "1928301774"
    assert msg.to_user == "+4930111222"
    assert msg.reason_cause == 16


def test_body_is_never_read() -> None:
    # The only Call-ID line is in the body: the parser must stop at the blank line.
    data = message(
        "BYE sip:bob@example.net SIP/2.0",
        "From: <sip:alice@example.org>;tag=f1",
        "To: <sip:bob@example.net>;tag=t1",
        "CSeq: 2 BYE",
        body="Call-ID: smuggled@body\r\nCSeq: 9 INVITE\r\n",
    )
    assert parse_error(data) == "no_call_id"


def test_bare_lf_blank_line_ends_headers() -> None:
    data = (
        b"SIP/2.0 200 OK\nFrom: <sip:a@x>;tag=1\nTo: <sip:b@y>;tag=2\nCall-ID: z\n"
        b"CSeq: 5 INVITE\n\nReason: Q.850;cause=17\n"
    )
    msg = parse_sip(data)
    assert msg.status == 200
    assert msg.reason_cause is None


def test_leading_crlf_is_ignored_and_no_blank_line_is_tolerated() -> None:
    data = (
        b"\r\n\r\nSIP/2.0 200 OK\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\n"
        b"i: z\r\nCSeq: 5 INVITE"
    )
    msg = parse_sip(data)
    assert (msg.status, msg.call_id, msg.cseq) == (200, "z", 5)


def test_header_names_any_case_and_space_before_colon() -> None:
    data = message(
        "INVITE sip:+15551234@example.net SIP/2.0",
        "FROM : <sip:alice@example.org>;TAG=AbC",
        "tO: <sip:bob@example.net>",
        "CALL-id:   spaced-id  ",
        "cseq\t: 7 INVITE",
    )
    msg = parse_sip(data)
    assert msg.from_tag == "AbC"  # tag values keep their case
    assert msg.call_id == "spaced-id"
    assert (msg.cseq, msg.cseq_method) == (7, "INVITE")


@pytest.mark.parametrize(
    "method", ["invite", "Invite", "IN%56ITE", "RE%47IST%45R", "X.y-Z!%*_+`'~"]
)
def test_any_token_is_a_method_as_written(method: str) -> None:
    # RFC 3261 7.1 and 25.1: a method is a case-sensitive token; "invite" is an
    # extension method, not INVITE, and % is no escape in it (RFC 4475 3.1.1.2, 3.1.1.5).
    data = message(f"{method} sip:bob@example.net SIP/2.0", *BASE[:3], f"CSeq: 1 {method}")
    msg = parse_sip(data)
    assert (msg.method, msg.cseq_method) == (method, method)
    assert msg.method != "INVITE"


def test_repeated_headers_must_agree() -> None:
    """A second Call-ID, From, To or CSeq is refused unless it repeats the first."""
    again = message(
        "INVITE sip:1@example.net SIP/2.0",
        *BASE,
        "i: c1@example.org",
        "from : <sip:alice@example.org>;tag=f1",
    )
    msg = parse_sip(again)
    assert (msg.from_user, msg.from_tag, msg.call_id) == ("alice", "f1", "c1@example.org")
    for repeated in (
        "From: <sip:mallory@example.org>;tag=f2",
        "f: <sip:alice@example.org>;tag=f2",
        "Call-ID: second",
        "t: <sip:carol@example.net>",
        "CSeq: 2 INVITE",
    ):
        data = message("INVITE sip:1@example.net SIP/2.0", *BASE, repeated)
        assert parse_error(data) == "repeated_header", repeated


def test_repr_and_errors_hold_no_header_value() -> None:
    msg = parse_sip(load("invite.sip"), correlation_header="X-CID")
    text = repr(msg)
    for secret in ("4930111", "4940555012", "a84b4c76e66710", "198.51.100.7", "corr-7f3a9e"):
        assert secret not in text
    assert "INVITE" in text
    with pytest.raises(SipError) as caught:
        parse_sip(
            b"INVITE sip:+4930111222@example.net SIP/2.0\r\nFrom: <sip:+4930111222@x>\r\n\r\n"
        )
    assert str(caught.value) == "no_call_id"


# -- any spelling RFC 3261 allows reads the same --------------------------------


def _spelled(draw: st.DrawFn, name: str, compact: str | None = None) -> str:
    """A header name in any case (or its compact form), then optional SP/HTAB and the colon."""
    if compact is not None and draw(st.booleans()):
        name = compact
    name = "".join(c.upper() if draw(st.booleans()) else c.lower() for c in name)
    return name + draw(st.sampled_from(["", " ", "\t", "  "])) + ":"


def _lws(draw: st.DrawFn) -> str:
    """The grammar's LWS, or none: spaces or tabs, or a line end folded onto the next line."""
    return draw(st.sampled_from(["", " ", "\t ", "   ", "\r\n ", "\r\n\t"]))


@st.composite
def spellings(draw: st.DrawFn) -> bytes:
    """One INVITE in a spelling RFC 3261 allows: names, case, spacing, folding, order."""

    def sp() -> str:
        return _lws(draw)

    tag_name = draw(st.sampled_from(["tag", "TAG", "Tag"]))
    headers = [
        f"{_spelled(draw, 'Call-ID', 'i')}{sp()}c-77@pbx.example.org",
        f"{_spelled(draw, 'From', 'f')}{sp()}"
        + draw(st.sampled_from(['"Alice \\"A\\"" ', "Alice ", ""]))
        + f"<sip:+4930111222@pbx.example.org>{sp()};{sp()}{tag_name}{sp()}={sp()}f-9'~x",
        f"{_spelled(draw, 'To', 't')}{sp()}sip:bob@example.net",
        f"{_spelled(draw, 'CSeq')}{sp()}{'0' * draw(st.integers(0, 12))}42{sp() or ' '}INVITE",
        f"{_spelled(draw, 'Via', 'v')}{sp()}SIP/2.0/UDP a;branch=z9hG4bK1{sp()},{sp()}"
        "SIP / 2.0 / TCP b",
        f"{_spelled(draw, 'Reason')}{sp()}SIP;cause=480{sp()},{sp()}Q.850{sp()};cause=18",
        f"{_spelled(draw, 'P-Asserted-Identity')}{sp()}<tel:+4930111999>",
        f"{_spelled(draw, 'X-CID')}{sp()}corr-1",
        "Max-Forwards: 70",
    ]
    headers = draw(st.permutations(headers))
    start = "INVITE sip:+4940555012@gw.example.net " + draw(st.sampled_from(["SIP/2.0", "sip/2.0"]))
    eol = draw(st.sampled_from(["\r\n", "\n"]))
    text = eol.join([start, *headers]) + eol + eol
    return text.replace("\r\n", "\n").replace("\n", eol).encode("latin-1")


@settings(max_examples=400)
@given(spellings())
def test_any_spelling_the_grammar_allows_reads_the_same(data: bytes) -> None:
    msg = parse_sip(data, correlation_header="x-cid")
    assert (msg.method, msg.status) == ("INVITE", 0)
    assert msg.call_id == "c-77@pbx.example.org"
    assert (msg.cseq, msg.cseq_method) == (42, "INVITE")
    assert (msg.from_tag, msg.to_tag) == ("f-9'~x", None)
    assert (msg.from_user, msg.to_user, msg.ruri_user) == ("+4930111222", "bob", "+4940555012")
    assert msg.via_count == 2
    assert msg.reason_cause == 18
    assert msg.pai_user == "+4930111999"
    assert msg.correlation == "corr-1"


# -- From / To / P-Asserted-Identity ------------------------------------------


@pytest.mark.parametrize(
    ("value", "user", "tag"),
    [
        ('"Doe, John <boss>" <sip:+4930123@example.org>;tag=9x', "+4930123", "9x"),
        ("Anonymous <sip:anonymous@anonymous.invalid>;tag=a1", "anonymous", "a1"),
        ("sip:5551234@example.org;tag=bare", "5551234", "bare"),
        ("<sip:5551234@example.org;user=phone>;tag=t2", "5551234", "t2"),
        ("<sip:5551234@example.org;tag=inside>", "5551234", None),
        ("<tel:+1-201-555-0123;phone-context=+1>;tag=tel", "+1-201-555-0123", "tel"),
        ("<sip:example.org>;tag=nouser", None, "nouser"),
        ('"quoted \\" quote" <sips:bob@example.net>;foo=bar;tag=q;x=y', "bob", "q"),
        ("<sip:bob@example.net>; tag=spaced", "bob", "spaced"),
        ("<sip:bob@example.net>;tag=a1, <sip:other@example.net>;tag=b2", "bob", "a1"),
        ("<urn:service:sos>;tag=u", None, "u"),
        # Quoted display names: an escaped quote does not end them, an escaped
        # backslash before the quote does; '<', ';' and "tag=" inside are text.
        (r'"a \" <sip:no@x>;tag=no" <sip:+4930111@x>;tag=yes', "+4930111", "yes"),
        (r'"a \\" <sip:+4930111@x>;tag=yes', "+4930111", "yes"),
        ('"<sip:no@x>;tag=no" <sip:+4930111@x>;tag=yes', "+4930111", "yes"),
        ('"BEL:\\\x07 NUL:\\\x00" <sip:+4930111@x>;tag=ctl', "+4930111", "ctl"),
        # Tokens as display name, with or without space before '<' (RFC 4475 3.1.1.6).
        ("caller<sip:+4930111@x>;tag=t", "+4930111", "t"),
        ("Bell, Alexander <sip:+4930111@x>;tag=43", "+4930111", "43"),
        # Spaces inside the brackets (RFC 4475 3.1.2.14) and around ';' and '='.
        ("< sip:+4930111@x > ; TAG = sp ; q=1", "+4930111", "sp"),
        ("sip:+4930111@x ;   tag    = 1918181833n", "+4930111", "1918181833n"),
        # A quoted parameter value before the tag may hold ";tag=".
        ('<sip:+4930111@x>;p="a;tag=no";tag=yes', "+4930111", "yes"),
        ('sip:+4930111@x;p="<b>";tag=yes', "+4930111", "yes"),
        # A "tag" spelled otherwise before the usual one comes first.
        ("<sip:+4930111@x>; Tag=first;tag=second", "+4930111", "first"),
        ("<sip:+4930111@x>;xtag=no;tag=yes", "+4930111", "yes"),
        ("<sip:+4930111@x>;tag=_token~1'+`*%!-.", "+4930111", "_token~1'+`*%!-."),
    ],
)
def test_from_header_forms(value: str, user: str | None, tag: str | None) -> None:
    data = message(
        "INVITE sip:1@example.net SIP/2.0",
        f"From: {value}",
        "To: <sip:bob@example.net>",
        "Call-ID: c1",
        "CSeq: 1 INVITE",
    )
    msg = parse_sip(data)
    assert msg.from_user == user
    assert msg.from_tag == tag


@pytest.mark.parametrize(
    ("value", "tags"),
    [
        ("<sip:b@y>", ()),
        ("<sip:b@y>;tag=a", ("a",)),
        ("<sip:b@y>;tag=a;tag=b", ("a", "b")),
        ("<sip:b@y>;tag=a ; TAG = b;x=1", ("a", "b")),
        ('<sip:b@y>;x="tag=no";tag=a', ("a",)),
    ],
)
def test_every_to_tag(value: str, tags: tuple[str, ...]) -> None:
    data = message("SIP/2.0 200 OK", "From: <sip:a@x>;tag=f;tag=g", f"To: {value}", *BASE[2:])
    msg = parse_sip(data)
    assert msg.to_tags == tags
    assert msg.to_tag == (tags[0] if tags else None)
    assert (msg.from_tag, msg.from_tags) == ("f", ("f", "g"))


@pytest.mark.parametrize(
    ("uri", "user"),
    [
        ("sip:+4930123@example.org", "+4930123"),
        ("SIP:Bob@Example.org", "Bob"),
        ("sips:+4930123@example.org:5061;transport=tls", "+4930123"),
        ("tel:+1-201-555-0123;phone-context=+1", "+1-201-555-0123"),
        ("sip:alice:secret@example.org", "alice"),
        ("sip:+4930123;npdi;rn=+4930999@example.org;user=phone", "+4930123"),
        ("sip:%2B4930123@example.org", "+4930123"),
        ("sip:example.org", None),
        ("sip:@example.org", None),
        # RFC 3966 5.1.5: a global-number context prefixes a local number.
        ("tel:5550101;phone-context=+1-212", "+12125550101"),
        ("tel:555-0101;phone-context=+1-212;ext=7", "+1212555-0101"),
        ("sip:5550101;phone-context=+1212@h.example.net;user=phone", "+12125550101"),
        ("sip:5550101;npdi;phone-context=%2B1.212@h;user=phone", "+12125550101"),
        ("tel:5550101;phone-context=example.com", "5550101"),
        ("sip:5550101;phone-context=+1-2x2@h", "5550101"),
        ("tel:5550101;phone-context=+", "5550101"),
        ("tel:5550101;xphone-context=+1212", "5550101"),
        # Semicolons in a user part that is no number belong to it (RFC 4475 3.1.1.9).
        ("sip:user;par=u%40example.net@example.com", "user;par=u@example.net"),
        ("sip:%2B4930123;npdi@example.org", "+4930123"),
        # Escapes are decoded once (RFC 4475 3.1.1.3, 3.1.1.4).
        ("sip:sips%3Auser%40example.com@example.net", "sips:user@example.com"),
        ("sip:%75se%72@example.com", "user"),
        ("sip:null-%00-null@example.com", "null-\x00-null"),
        ("http://example.org/", None),
        ("", None),
    ],
)
def test_uri_user(uri: str, user: str | None) -> None:
    assert uri_user(uri) == user


def test_pai_falls_back_to_the_second_identity() -> None:
    data = message(
        "INVITE sip:1@example.net SIP/2.0",
        *BASE,
        "P-Asserted-Identity: <sip:gateway.example.org>, <tel:+4930111999>",
    )
    assert parse_sip(data).pai_user == "+4930111999"


@pytest.mark.parametrize(
    ("headers", "number"),
    [
        # A name in the first identity, the number in a second header.
        (
            [
                "P-Asserted-Identity: <sip:alice@pbx.example.org>",
                "P-Asserted-Identity: <tel:+4930111999>",
            ],
            "+4930111999",
        ),
        # A display name with a comma does not split the identity.
        (['P-Asserted-Identity: "Doe, John" <sip:+4930111999@pbx.example.org>'], "+4930111999"),
        (
            ['P-Asserted-Identity: "Doe, J" <sip:john@x.example>, <sip:+4930111998@x.example>'],
            "+4930111998",
        ),
        # No number in P-Asserted-Identity: Remote-Party-ID.
        (
            [
                "P-Asserted-Identity: <sip:alice@pbx.example.org>",
                'Remote-Party-ID: "Bob" <sip:+4930111997@gw.example.org>;party=calling',
            ],
            "+4930111997",
        ),
        (
            ["Remote-Party-ID: <sip:4930111996@gw.example.org;user=phone>;party=calling"],
            "4930111996",
        ),
        # P-Asserted-Identity wins over Remote-Party-ID.
        (
            [
                "Remote-Party-ID: <sip:+4930111996@gw.example.org>;party=calling",
                "P-Asserted-Identity: <sip:+4930111995@pbx.example.org>",
            ],
            "+4930111995",
        ),
        # Only names: no asserted number, the From user is the caller.
        (["P-Asserted-Identity: <sip:alice@pbx.example.org>"], None),
        ([], None),
    ],
)
def test_asserted_number_reads_every_identity(headers: list[str], number: str | None) -> None:
    data = message("INVITE sip:1@example.net SIP/2.0", *BASE, *headers)
    assert parse_sip(data).pai_user == number
    # The same with "Name :" spacing, which takes the line-by-line reader.
    spaced = message(
        "INVITE sip:1@example.net SIP/2.0",
        "From : <sip:alice@example.org>;tag=f1",
        *BASE[1:],
        *(header.replace(":", " :", 1) for header in headers),
    )
    assert parse_sip(spaced).pai_user == number


@pytest.mark.parametrize(
    ("vias", "count"),
    [
        ([], 0),
        (["Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"], 1),
        (["Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1", "v: SIP/2.0/UDP [2001:db8::1]:5060"], 2),
        (["Via: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/TCP b;branch=z9hG4bK2", "VIA: x/y/z"], 3),
        # Folded, and spaced around the slashes (RFC 4475 3.1.1.1).
        (["v:  SIP  / 2.0  / TCP     a   ;\r\n  branch  =   z9hG4bK1  ,\r\n SIP / 2.0 / UDP b"], 2),
        # Empty elements are no hops (RFC 4475 3.1.2.1).
        (["Via: SIP/2.0/UDP 192.0.2.15;;,;,,"], 1),
        (['Via: SIP/2.0/UDP a;x="1,2", SIP/2.0/UDP b'], 2),
    ],
)
def test_via_count(vias: list[str], count: int) -> None:
    data = message("SIP/2.0 486 Busy Here", *vias, *BASE)
    assert parse_sip(data).via_count == count
    spaced = message("SIP/2.0 486 Busy Here", *(v.replace(":", " :", 1) for v in vias), *BASE)
    assert parse_sip(spaced).via_count == count


def test_request_uri_user() -> None:
    data = message("INVITE sip:0049301234;phone-context=x@gw.example.net SIP/2.0", *BASE)
    assert parse_sip(data).ruri_user == "0049301234"


# -- Reason ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reasons", "cause"),
    [
        (['Q.850;cause=17;text="User busy"'], 17),
        (["q.850 ; cause = 18"], 18),
        (['SIP;cause=200;text="Call completed elsewhere"'], None),
        (["SIP;cause=487, Q.850;cause=16"], 16),
        (['SIP;cause=480;text="a, b"', "Q.850;cause=19"], 19),
        (["Q.850;cause=999"], None),
        (["Q.850;cause=abc"], None),
        (["Q.850;text=no-cause"], None),
        (["Q.850;cause=31", "Q.850;cause=16"], 31),
        # Parameters in any order, a quoted text holding commas and semicolons.
        (['Q.850;text="Normal, cleared";cause=16'], 16),
        (['Q.850 ;text="a;cause=3, b" ; cause=17'], 17),
        (['Q.850;text="say \\"hi, there\\"";cause=18'], 18),
        # Q.850 causes are 1-127: 0 is no cause (the RFC 3398 mapping applies).
        (["Q.850;cause=0"], None),
        (["Q.850;cause=0, Q.850;cause=21"], 21),
        # Both a SIP and a Q.850 value: the Q.850 one, in one header or two, either order.
        (['SIP;cause=600;text="Busy, everywhere", Q.850;cause=17'], 17),
        (['Q.850;cause=17;text="x", SIP;cause=600'], 17),
        (["SIP;cause=600", 'Q.850;text="User, busy";cause=17'], 17),
    ],
)
def test_reason_q850_cause(reasons: list[str], cause: int | None) -> None:
    data = message(
        "BYE sip:1@example.net SIP/2.0",
        *BASE[:3],
        "CSeq: 2 BYE",
        *(f"Reason: {r}" for r in reasons),
    )
    assert parse_sip(data).reason_cause == cause


# -- garbage -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"\r\n\r\n", "empty"),
        (b"hello world\r\n\r\n", "bad_start_line"),
        (message("SIP/2.0 99 Odd", *BASE), "bad_start_line"),
        (message("SIP/2.0 700 Odd", *BASE), "bad_start_line"),
        (message("SIP/2.0", *BASE), "bad_start_line"),
        (message("INVITE sip:a@b HTTP/1.1", *BASE), "bad_start_line"),
        (message("INV<TE sip:a@b SIP/2.0", *BASE), "bad_start_line"),
        (message("INVITE\tsip:a@b SIP/2.0", *BASE), "bad_start_line"),
        (message("INVITE <sip:a@b> SIP/2.0", *BASE), "bad_start_line"),
        (message("INVITE sip:a@b; lr SIP/2.0", *BASE), "bad_start_line"),
        (message("INVITE a@b SIP/2.0", *BASE), "bad_start_line"),
        (message("INVITE sip:a@b SIP/3.0", *BASE), "bad_version"),
        (message("SIP/2.1 200 OK", *BASE), "bad_version"),
        (message("SIP/2.0 2000 OK", *BASE), "bad_start_line"),
        (message("SIP/2.0 200OK", *BASE), "bad_start_line"),
        (message("OPTIONS sip:a@b SIP/2.0", *BASE), "method_mismatch"),
        (message("INVITE sip:a@b SIP/2.0", *BASE[:3], "CSeq: 4294967296 INVITE"), "bad_cseq"),
        (message("INVITE sip:a@b SIP/2.0", *BASE[:3], "CSeq: 1 INV<TE"), "bad_cseq"),
        (message("INVITE sip:a@b SIP/2.0", *BASE[:3], "CSeq: 1 INVITE x"), "bad_cseq"),
        (message("INVITE sip:a@b SIP/2.0", 'From: "Alice <sip:a@x>;tag=1', *BASE[1:]), "bad_from"),
        (message("INVITE sip:a@b SIP/2.0", "From: <sip:a@x;tag=1", *BASE[1:]), "bad_from"),
        (message("INVITE sip:a@b SIP/2.0", 'From: "Alice" sip:a@x;tag=1', *BASE[1:]), "bad_from"),
        (message("INVITE sip:a@b SIP/2.0", BASE[0], 'To: "Bob\\" <sip:b@y>', *BASE[2:]), "bad_to"),
        (message("INVITE sip:a@b SIP/2.0", BASE[0], "To:  ", *BASE[2:]), "no_to"),
        (message("INVITE sip:a@b SIP/2.0", *BASE[:2], "CSeq: 1 INVITE"), "no_call_id"),
        (
            message("INVITE sip:a@b SIP/2.0", *BASE[:2], "Call-ID:   ", "CSeq: 1 INVITE"),
            "no_call_id",
        ),
        (message("INVITE sip:a@b SIP/2.0", *BASE[:3]), "bad_cseq"),
        (message("INVITE sip:a@b SIP/2.0", *BASE[:3], "CSeq: abc INVITE"), "bad_cseq"),
        (message("INVITE sip:a@b SIP/2.0", *BASE[:3], "CSeq: 1"), "bad_cseq"),
        (message("INVITE sip:a@b SIP/2.0", *BASE[:3], "CSeq: \xb2 INVITE"), "bad_cseq"),
        (
            message("INVITE sip:a@b SIP/2.0", *BASE[:3], "CSeq: " + "9" * 5000 + " INVITE"),
            "bad_cseq",
        ),
        (message("INVITE sip:a@b SIP/2.0", *BASE[1:]), "no_from"),
        (message("INVITE sip:a@b SIP/2.0", BASE[0], *BASE[2:]), "no_to"),
    ],
)
def test_garbage_is_a_sip_error(data: bytes, reason: str) -> None:
    assert parse_error(data) == reason


def _check_total(data: bytes) -> None:
    """parse_sip either returns a SipMessage or raises SipError with a known reason."""
    try:
        msg: SipMessage | None = parse_sip(data, correlation_header="X-CID")
    except SipError as error:
        reason: str | None = error.reason
        msg = None
    else:
        reason = None
    assert reason is None or reason in SIP_ERROR_REASONS
    if msg is not None:
        # The derived fields are worked out lazily: they must not raise either.
        for user in (msg.from_user, msg.to_user, msg.ruri_user, msg.pai_user):
            assert user is None or isinstance(user, str)
        assert msg.call_id
        assert msg.status == 0 or 100 <= msg.status <= 699
        assert msg.reason_cause is None or 1 <= msg.reason_cause <= 127
        assert msg.via_count >= 0


@settings(max_examples=800)
@given(st.binary(max_size=2048))
def test_fuzz_any_bytes(data: bytes) -> None:
    _check_total(data)


_HEADER_NAMES = st.sampled_from(
    [
        "Call-ID",
        "i",
        "From",
        "f",
        "To",
        "t",
        "CSeq",
        "Reason",
        "P-Asserted-Identity",
        "Remote-Party-ID",
        "X-CID",
        "Via",
        "v",
    ]
)
_VALUE_ALPHABET = st.sampled_from(
    list(' <>;:=@",\t\\%+0123456789abcQ.sip:tel:tag=cause=\xb2\xff\x00')
)


@settings(max_examples=800)
@given(
    start=st.sampled_from(
        ["INVITE sip:1@h SIP/2.0", "SIP/2.0 200 OK", "BYE tel:+1 SIP/2.0", "SIP/2.0 4x6 X", "X Y Z"]
    ),
    headers=st.lists(
        st.tuples(
            _HEADER_NAMES,
            st.sampled_from([":", " :", ""]),
            st.text(_VALUE_ALPHABET, max_size=40),
            st.sampled_from(["\r\n", "\n", "\r\n "]),
        ),
        max_size=12,
    ),
)
def test_fuzz_header_shaped_text(start: str, headers: list[tuple[str, str, str, str]]) -> None:
    text = start + "\r\n" + "".join(f"{n}{c} {v}{eol}" for n, c, v, eol in headers) + "\r\n"
    _check_total(text.encode("latin-1"))


@settings(max_examples=800)
@given(
    name=st.sampled_from(
        ["invite.sip", "ringing.sip", "busy_reason.sip", "bye_compact_folded.sip"]
    ),
    edits=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.integers(0, 2000),
)
def test_fuzz_mutated_real_messages(name: str, edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(load(name))
    for position, value in edits:
        data[position % len(data)] = value
    _check_total(bytes(data[: max(cut, 1)]))
    _check_total(bytes(data))
