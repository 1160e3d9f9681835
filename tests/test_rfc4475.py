"""RFC 4475's torture messages: the parser, the dialog tracker and the daemon take each as decided.

Every message of RFC 4475 section 3 is in tests/data/rfc4475/ (the RFC's
octets, see the README there). For each, `VERDICTS` says what the collector
does with it and why, and the tests hold the code to it:

- The valid messages (3.1.1) parse, and what the collector takes from them
  comes out as the RFC reads it: a method that is any token and not
  upper-cased, CSeq with leading zeros, tags whatever the spacing around
  `;` and `=`, compact and oddly cased header names, folded lines, escaped
  user parts decoded once, the INVITE after a REGISTER in one datagram
  (3.1.1.8) never seen.
- An invalid message (3.1.2) is refused, with its reason, when the defect is
  in what identifies a call or its state: the start line (what the message
  is), its SIP version, CSeq, From or To. RFC 4475 says an element should
  answer each of those 400 (or 505, or drop a response), so the network
  does not take it either. It is accepted when the RFC lets an element be
  liberal about the defect and what the collector reads is still
  unambiguous (extra spaces in the start line, spaces inside `<>`, an
  unquoted display name), or when the defect lies in a header the collector
  never reads (Content-Length, Date, Contact, a Via parameter): the
  collector stores no URI, no body and no such header, so accepting cannot
  put anything wrong into a call record. The `why` of each entry says which.
- The semantic cases (3.2 to 3.4) are well-formed; the parser must not fail
  on them. It takes all but two: `insuf` has no Call-ID (no dialog to follow)
  and `multi01` two different Call-IDs, CSeqs, Froms and Tos (which dialog?):
  both are refused with a reason, which is not failing, and is what RFC 4475
  has an element do (400).

Refused or accepted, nothing raises but SipError, no property of an accepted
message raises, the tracker ends no call on any of them, and the daemon
counts each packet once (accepted or malformed, with one rate-limited log
line) and keeps serving.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector.receivers.sip.dialogs import DialogTracker
from collector.receivers.sip.message import SIP_ERROR_REASONS, SipError, SipMessage, parse_sip
from tests.daemon import running_collector, wait_for
from tests.test_sip_receiver import (
    CALLEES,
    PROXY,
    Call,
    Sender,
    answered,
    assert_nothing_identifying,
    by_callee,
    hep,
    hep_flow,
    packets,
    sip_config,
    wait_rows,
)

DATA = Path(__file__).parent / "data" / "rfc4475"
#: SHA-256 over the files, sorted by name (name, NUL, octets, NUL each): the RFC's bytes
DIGEST = "c9ee8e9a3d70df837f7ffe4067c698d97d8f4e846b37d4bee3ba85ff4b88b355"


@dataclass(frozen=True)
class Verdict:
    """What the collector does with one RFC 4475 message, and why."""

    section: str
    #: the SipError reason when the message is refused, None when it is accepted
    refused: str | None
    why: str
    #: SipMessage attributes and their expected values, for accepted messages
    fields: Mapping[str, object] = field(default_factory=dict)


def accepted(section: str, why: str, **fields: object) -> Verdict:
    return Verdict(section, None, why, fields)


def refused(section: str, reason: str, why: str) -> Verdict:
    return Verdict(section, reason, why)


INTERESTING = "!interesting-Method0123456789_*+`.%indeed'~"
UNUSUAL_USER = "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"

VERDICTS: dict[str, Verdict] = {
    # -- 3.1.1 valid messages: a parser must accept them ----------------------
    "wsinv": accepted(
        "3.1.1.1",
        "folding, LWS around ':' ';' '=' '/', compact and oddly cased names, leading zeros",
        method="INVITE",
        call_id="wsinv.ndaksdj@192.0.2.1",
        from_tag="98asjd8",
        to_tag="1918181833n",
        cseq=9,
        cseq_method="INVITE",
        via_count=3,
        ruri_user="vivekg",
        from_user="jdrosen",
        to_user="vivekg",
    ),
    "intmeth": accepted(
        "3.1.1.2",
        "any token is a method, kept as written; every token and word character in tags and"
        " Call-ID; quoted NUL, BEL and DEL in the display name",
        method=INTERESTING,
        cseq=139122385,
        cseq_method=INTERESTING,
        call_id="intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{",
        from_tag="_token~1'+`*%!-.",
        to_tag=None,
        ruri_user=UNUSUAL_USER,  # the password after ':' goes
        to_user=UNUSUAL_USER,
        from_user="mundane",
    ),
    "esc01": accepted(
        "3.1.1.3",
        "escaped user parts are decoded once",
        method="INVITE",
        call_id="esc01.239409asdfakjkn23onasd0-3234",
        from_tag="938",
        ruri_user="sips:user@example.com",
        to_user="user",
        from_user="I have spaces",
    ),
    "escnull": accepted(
        "3.1.1.4",
        "an escaped NUL stays in the user part (never stored: not a number)",
        method="REGISTER",
        from_tag="839923423",
        to_user="null-\x00-null",
    ),
    "esc02": accepted(
        "3.1.1.5",
        "% is no escape in a method: RE%47IST%45R is an extension method, not REGISTER",
        method="RE%47IST%45R",
        cseq_method="RE%47IST%45R",
        cseq=29344,
        from_tag="f232jadfj23",
    ),
    "lwsdisp": accepted(
        "3.1.1.6",
        "no space between display name and '<'",
        method="OPTIONS",
        from_tag="323",
        from_user="caller",
    ),
    "longreq": accepted(
        "3.1.1.7",
        "long values; 34 Via entries under every spelling of the name",
        method="INVITE",
        call_id="longreq.one" + "really" * 20 + "longcallid",
        from_tag="12982" + "982" * 49 + "424",
        from_user="amazinglylongcallername" * 5,
        to_user="user",
        cseq=3882340,
        via_count=34,
    ),
    "dblreq": accepted(
        "3.1.1.8",
        "the INVITE after the REGISTER's empty body is noise in the datagram (RFC 3261 18.3)",
        method="REGISTER",
        call_id="dblreq.0ha0isndaksdj99sdfafnl3lk233412",  # from "I:", the compact form
        from_tag="43251j3j324",
        cseq=8,
        cseq_method="REGISTER",
    ),
    "semiuri": accepted(
        "3.1.1.9",
        "a user part that is no number keeps its semicolon parameters",
        method="OPTIONS",
        ruri_user="user;par=u@example.net",
    ),
    "transports": accepted(
        "3.1.1.10", "unknown transports are hops like any", method="OPTIONS", via_count=5
    ),
    "mpart01": accepted(
        "3.1.1.11",
        "a binary body part is never read",
        method="MESSAGE",
        call_id="3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..",
        from_tag="2fb0dcc9",
    ),
    "unreason": accepted(
        "3.1.1.12",
        "the reason phrase is free text",
        status=200,
        method="",
        cseq=35,
        cseq_method="INVITE",
        from_tag="11141343",
        to_tag="2229",
    ),
    "noreason": accepted(
        "3.1.1.13",
        "an empty reason phrase",
        status=100,
        cseq_method="INVITE",
        from_tag="39ansfi3",
        to_tag="902jndnke3",
    ),
    # -- 3.1.2 invalid messages ------------------------------------------------
    "badinv01": accepted(
        "3.1.2.1",
        "the empty Via elements are no hops and the Contact is never read: the one real"
        " hop counts, and the INVITE is otherwise well-formed. An element answers it 400,"
        " which then ends the attempt as the failed call it was",
        method="INVITE",
        via_count=1,
        from_tag="134161461246",
    ),
    "clerr": accepted(
        "3.1.2.2",
        "Content-Length is never read: a capture agent frames each message (one HEP packet"
        " or datagram) and the body is never looked at",
        method="INVITE",
        from_tag="93942939o2",
    ),
    "ncl": accepted(
        "3.1.2.3",
        "a negative Content-Length: never read, as in 3.1.2.2, so never used as a count",
        method="INVITE",
        cseq=0,
    ),
    "scalar02": refused(
        "3.1.2.4",
        "bad_cseq",
        "a CSeq above 2**32-1 cannot say which transaction a response answers; an element"
        " answers 400",
    ),
    "scalarlg": refused(
        "3.1.2.5",
        "bad_cseq",
        "a response with a CSeq above 2**32-1 answers no request; an element discards it",
    ),
    "quotbal": refused(
        "3.1.2.6",
        "bad_to",
        "the To header (whose user part names the callee when the Request-URI has none)"
        " cannot be read past the unterminated quote; RFC 4475 warns that guessing the"
        " closing quote misreads such headers",
    ),
    "ltgtruri": refused(
        "3.1.2.7",
        "bad_start_line",
        "the start line says what the message is and whom it calls: it is taken only as"
        " the grammar has it (RFC 4475: reasonable always to reject)",
    ),
    "lwsruri": refused(
        "3.1.2.8",
        "bad_start_line",
        "white space inside the Request-URI makes four elements of the start line",
    ),
    "lwsstart": accepted(
        "3.1.2.9",
        "RFC 4475 lets an element ignore extra spaces between the start line's elements;"
        " the three elements are unambiguous",
        method="INVITE",
        ruri_user="user",
    ),
    "trws": accepted(
        "3.1.2.10",
        "RFC 4475 lets an element ignore spaces after the version",
        method="OPTIONS",
        ruri_user="remote-target",
    ),
    "escruri": accepted(
        "3.1.2.11",
        "RFC 4475 lets an element ignore escaped headers in the Request-URI; only its user"
        " part is read, and no URI is stored or forwarded",
        method="INVITE",
        ruri_user="user",
    ),
    "baddate": accepted(
        "3.1.2.12",
        "the Date header is never read (capture times come from the agent)",
        method="INVITE",
        from_tag="2234923",
    ),
    "regbadct": accepted(
        "3.1.2.13",
        "the Contact header is never read",
        method="REGISTER",
        from_tag="998332",
    ),
    "badaspec": accepted(
        "3.1.2.14",
        "RFC 4475 lets an element ignore the spaces inside '<' '>'; the URI reads the same",
        method="OPTIONS",
        to_user="t.watson",
        to_tag=None,
    ),
    "baddn": accepted(
        "3.1.2.15",
        "display names are never read; the URIs and the tag after them are unambiguous",
        method="OPTIONS",
        from_user="a.g.bell",
        from_tag="43",
        to_user="t.watson",
    ),
    "badvers": refused(
        "3.1.2.16",
        "bad_version",
        "not SIP 2.0: an element answers 505 and takes part in no call with it",
    ),
    "mismatch01": refused(
        "3.1.2.17",
        "method_mismatch",
        "a request whose CSeq names another method (RFC 3261 8.1.1.5): its responses would"
        " be taken for another transaction's; every element answers 400",
    ),
    "mismatch02": refused(
        "3.1.2.18",
        "method_mismatch",
        "as 3.1.2.17, with an unknown method (RFC 4475 allows 400 there too)",
    ),
    "bigcode": refused(
        "3.1.2.19",
        "bad_start_line",
        "a status code above 699: an element drops the response",
    ),
    # -- 3.2 transaction layer ---------------------------------------------------
    "badbranch": accepted(
        "3.2.1",
        "the Via branch is never read (dialogs, not transactions, are followed)",
        method="OPTIONS",
        from_tag="33242",
    ),
    # -- 3.3 application layer ---------------------------------------------------
    "insuf": refused(
        "3.3.1",
        "no_call_id",
        "no Call-ID, From or To: no dialog to follow; refused with a reason, not a failure,"
        " as RFC 4475 has an element answer 400",
    ),
    "unkscm": accepted("3.3.2", "an unknown Request-URI scheme has no user part", ruri_user=None),
    "novelsc": accepted("3.3.3", "a known but unusual scheme: no user part", ruri_user=None),
    "unksm2": accepted(
        "3.3.4",
        "isbn: and http: URIs in To and From have no user part; the tag still counts",
        method="REGISTER",
        to_user=None,
        from_user=None,
        from_tag="3234233",
    ),
    "bext01": accepted("3.3.5", "Require and Proxy-Require are never read", method="OPTIONS"),
    "invut": accepted(
        "3.3.6",
        "an unknown body type: the body is never read; the callee's 415 ends the call",
        method="INVITE",
        from_tag="8392034",
    ),
    "regaut01": accepted("3.3.7", "Authorization is never read", method="REGISTER"),
    "multi01": refused(
        "3.3.8",
        "repeated_header",
        "two different Call-IDs, CSeqs, Froms and Tos: which dialog is it? An element answers 400",
    ),
    "mcl01": accepted(
        "3.3.9", "Content-Length is never read (see 3.1.2.2)", method="OPTIONS", cseq=15932
    ),
    "bcast": accepted(
        "3.3.10",
        "a response to no dialog the tracker follows changes nothing; Via addresses are never used",
        status=200,
        via_count=2,
    ),
    "zeromf": accepted("3.3.11", "Max-Forwards is never read", method="OPTIONS"),
    "cparam01": accepted("3.3.12", "the Contact is never read", method="REGISTER"),
    "cparam02": accepted("3.3.13", "the Contact is never read", method="REGISTER"),
    "regescrt": accepted("3.3.14", "the Contact is never read", method="REGISTER"),
    "sdp01": accepted("3.3.15", "Accept is never read", method="INVITE", from_tag="234"),
    # -- 3.4 backward compatibility ------------------------------------------------
    "inv2543": accepted(
        "3.4.1",
        "RFC 2543 syntax: no From-tag (the dialog is Call-ID and an empty tag), no branch,"
        " no Content-Length, no Max-Forwards",
        method="INVITE",
        from_tag=None,
        to_tag=None,
        ruri_user="UserB",
        from_user="+13035551111",
        to_user="+16505552222",
    ),
}


def load(name: str) -> bytes:
    return (DATA / f"{name}.dat").read_bytes()


def read_everything(message: SipMessage) -> None:
    """Every property the tracker may ask for: none of them may raise."""
    for user in (message.from_user, message.to_user, message.ruri_user, message.pai_user):
        assert user is None or isinstance(user, str)
    assert message.via_count >= message.count_vias(1) >= 0
    assert message.reason_cause is None
    assert message.correlation is None
    assert all(message.to_tags) and all(message.from_tags)
    assert message.call_id not in repr(message)


def test_the_data_is_every_message_of_section_3_as_the_rfc_has_it() -> None:
    names = sorted(path.stem for path in DATA.glob("*.dat"))
    assert names == sorted(VERDICTS)
    assert len(names) == 49
    digest = hashlib.sha256()
    for name in names:
        digest.update(f"{name}.dat".encode() + b"\0" + load(name) + b"\0")
    assert digest.hexdigest() == DIGEST
    sections = sorted(verdict.section for verdict in VERDICTS.values())
    assert len(set(sections)) == 49


@pytest.mark.parametrize(
    "name", sorted(VERDICTS), ids=lambda name: f"{VERDICTS[name].section}-{name}"
)
def test_each_message_is_taken_as_decided(name: str) -> None:
    verdict = VERDICTS[name]
    data = load(name)
    if verdict.refused is not None:
        assert verdict.refused in SIP_ERROR_REASONS
        with pytest.raises(SipError) as caught:
            parse_sip(data, "X-CID")
        assert caught.value.reason == verdict.refused, verdict.why
        return
    message = parse_sip(data, "X-CID")
    for attribute, expected in verdict.fields.items():
        assert getattr(message, attribute) == expected, (attribute, verdict.why)
    read_everything(message)


def test_every_valid_message_is_accepted() -> None:
    valid = [name for name, verdict in VERDICTS.items() if verdict.section.startswith("3.1.1.")]
    assert len(valid) == 13
    assert [name for name in valid if VERDICTS[name].refused] == []
    # Of the well-formed semantic cases, only the two without one dialog to follow.
    semantic = {
        name: verdict.refused
        for name, verdict in VERDICTS.items()
        if verdict.section[:3] in ("3.2", "3.3", "3.4") and verdict.refused
    }
    assert semantic == {"insuf": "no_call_id", "multi01": "repeated_header"}


def test_the_tracker_ends_no_call_on_any_of_them() -> None:
    """The accepted INVITEs open dialogs (they are calls being set up), nothing else does,
    and no message ends a call: the responses answer no dialog the tracker follows."""
    tracker = DialogTracker(max_dialogs=100, max_dialog_age_s=3600.0)
    now = datetime(2024, 5, 1, tzinfo=UTC)
    invites = 0
    for name, verdict in sorted(VERDICTS.items()):
        if verdict.refused is not None:
            continue
        message = parse_sip(load(name))
        invites += message.method == "INVITE" and message.to_tag is None
        assert tracker.feed(message, now, "torture") == []
    # wsinv's To-tag makes it a request inside a dialog the tracker never saw begin.
    assert tracker.open_dialogs == invites == 11
    assert tracker.expire(now + timedelta(seconds=3599)) == []


async def test_the_daemon_counts_every_message_once_and_keeps_serving(
    tmp_path: Path, dsn: str
) -> None:
    """All 49 as raw SIP datagrams and in HEPv3: each counted once as the verdicts say,
    one rate-limited log line for the refused ones, no header value in the log, and a
    call after them still stored."""
    config = sip_config(tmp_path / "collector", dsn)
    assert config.sip_port is not None
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    torture = [load(name) for name in sorted(VERDICTS)]
    refused_count = sum(verdict.refused is not None for verdict in VERDICTS.values())
    good = hep_flow(answered(Call("c-after-torture@pbx", CALLEES["after_fuzz"]), 3.0), start)
    with running_collector(config) as collector:
        sender = Sender(config.sip_port)
        try:
            sender.send(torture)
            sender.send(hep(data, start) for data in torture)
            sender.send(good)
        finally:
            sender.close()
        total = 2 * len(torture) + len(good)

        def counted() -> bool:
            return (
                packets(collector, PROXY, "accepted") + packets(collector, PROXY, "malformed")
                >= total
            )

        await wait_for(counted, 10.0)
        rows = await wait_rows(dsn, 1)
        assert packets(collector, PROXY, "malformed") == 2 * refused_count
        assert packets(collector, PROXY, "accepted") == total - 2 * refused_count
        assert collector.process is not None and collector.process.poll() is None
        log_text = collector.log_text()
    assert set(by_callee(rows)) == {"after_fuzz"}
    assert by_callee(rows)["after_fuzz"]["duration_ms"] == 3000
    assert log_text.count("malformed SIP message dropped") == 1
    assert "Traceback" not in log_text and "sip_internal" not in log_text
    assert_nothing_identifying(log_text)
    for value in ("example.com", "example.net", "vivekg", "interesting-Method"):
        assert value not in log_text
