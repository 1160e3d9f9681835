"""A fast reader, by the RFC 3261 grammar, of the SIP header fields that call accounting needs.

`parse_sip` takes one SIP message as captured (request or response) and pulls
out only what the dialog tracker uses: the start line (method and
Request-URI, or status code), Call-ID, the From/To tags and URIs, CSeq, the
`Reason` values, the number of Via entries, the asserted calling number
(P-Asserted-Identity, else Remote-Party-ID) and, when configured, one
correlation header. User parts, the asserted number, the Via count, the
Q.850 cause and the correlation header are worked out only when asked for,
because the tracker needs them from a few messages of each call (the
INVITE, the one that ends it), not from every 100 Trying and ACK.

It reads what RFC 3261 allows, and RFC 4475's torture messages exercise:
any token as a method (case-sensitive: `invite` and `RE%47IST%45R` are
extension methods, not INVITE or REGISTER), header names in any case and
compact form with whitespace before the colon, folded lines, quoted strings
with escaped characters, parameters with whitespace around `;` and `=`,
leading zeros in CSeq; and it is liberal where RFC 4475 says an element may
be (extra spaces in the start line, bare-LF line ends, spaces inside `<>`).
What it reads must be unambiguous: a start line off the grammar, a SIP
version other than 2.0, a CSeq out of range or naming another method than
the request, an unterminated quoted string or `<` in From or To, and two
different Call-ID, From, To or CSeq headers are refused, as RFC 4475 says
an element may refuse them. Everything else in a message (Contact,
Content-Length, Date, the body) is never read, so its defects cannot matter.

It must never raise anything but `SipError` (with a short fixed `reason`,
fit for a metric label), from parsing or from any property of the message,
and never look at the body (SDP stays unread). A SipMessage holds the header
block while it is fed to the tracker and is then dropped; its repr shows no
header value, and only raw user parts leave it, for the pipeline to
normalize and redact.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from urllib.parse import unquote

#: every reason a SipError can carry (a fixed vocabulary for metrics and logs)
SIP_ERROR_REASONS = frozenset(
    {
        "empty",  # nothing but blank lines
        "bad_start_line",  # neither "METHOD uri SIP/2.0" nor "SIP/2.0 NNN reason"
        "bad_version",  # a well-formed SIP version other than 2.0 (RFC 3261 answers 505)
        "no_call_id",  # Call-ID missing or empty
        "bad_cseq",  # CSeq missing, not "number METHOD", or its number above 2**32-1
        "method_mismatch",  # a request whose CSeq names another method (RFC 3261 8.1.1.5)
        "no_from",  # From header missing or empty
        "no_to",  # To header missing or empty
        "bad_from",  # From with an unterminated quoted string or "<"
        "bad_to",  # To with an unterminated quoted string or "<"
        "repeated_header",  # two different Call-ID, From, To or CSeq headers
    }
)

#: token (RFC 3261 25.1): what a method, a header parameter name or a tag is made of
_TOKEN_CHARS = string.ascii_letters + string.digits + "-.!%*_+`'~"
#: linear white space inside one (unfolded) line, and what trims a header value
_WSP = " \t"
_TRIM = " \t\r"
#: SP or HTAB: what a folded continuation line starts with, and what may precede a colon
_BLANKS = (" ", "\t")
#: the largest CSeq number (RFC 3261 8.1.1.5: a 32-bit unsigned integer)
_MAX_CSEQ = 2**32 - 1
#: digits of the largest CSeq number, once leading zeros are gone
_MAX_CSEQ_DIGITS = 10

# Slots of the header values parse_sip reads.
_CALL_ID, _FROM, _TO, _CSEQ = range(4)
#: header name (lower case, compact forms too, and the usual spellings) -> slot
_SLOTS = {
    "call-id": _CALL_ID,
    "i": _CALL_ID,
    "from": _FROM,
    "f": _FROM,
    "to": _TO,
    "t": _TO,
    "cseq": _CSEQ,
}
_SLOTS.update({"Call-ID": _CALL_ID, "From": _FROM, "To": _TO, "CSeq": _CSEQ})
#: the headers every message needs, long or compact name, any case, "Name :" too, with
#: their value and its folded continuation lines: (name, value) pairs in one C call
_HEADERS = re.compile(
    r"\n(?=[CcFfTtIi])(call-id|i|from|f|to|t|cseq)[ \t]*:[ \t]*"
    r"([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*+)",
    re.IGNORECASE | re.ASCII,
)
# Headers read on demand: (compact or only name, rest of the long name), lower case,
# searched for with `str.find` in the lower-cased header block.
_VIA = ("\nv", "ia")
_REASON = ("\nreason", "")
_PAI = ("\np-asserted-identity", "")
_RPID = ("\nremote-party-id", "")
#: SIP-Version (RFC 3261 25.1): "SIP" "/" 1*DIGIT "." 1*DIGIT, case-insensitive
_VERSION = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE | re.ASCII)
#: Request-Line: a token method, a Request-URI that starts with a scheme (RFC 3986
#: 3.1) and holds no white space, SIP/2.0 (extra spaces tolerated)
_REQUEST_LINE = re.compile(
    f"([{re.escape(_TOKEN_CHARS)}]+) +([A-Za-z][-+.0-9A-Za-z]*:[^ \\t\\r]*) +"
    r"SIP/2\.0[ \t]*\r?\Z",
    re.IGNORECASE | re.ASCII,
)
#: Status-Line up to the status code: 100-699, then white space or the end
_STATUS_LINE = re.compile(r"SIP/2\.0 +([1-6][0-9][0-9])(?:[ \t]|\r?\Z)", re.IGNORECASE | re.ASCII)

#: visual separators a telephone number may carry (RFC 3966 5.1.1)
_VISUAL_SEPARATORS = str.maketrans("", "", "-.() ")
#: bound on the cache of header names keyed by the configured correlation header
_MAX_CACHED_NAMES = 16
_correlation_names: dict[str, tuple[str, str]] = {}


class SipError(ValueError):
    """Bytes that cannot be read as a SIP message.

    `reason` is one of `SIP_ERROR_REASONS`; the receiver counts the packet as
    malformed under it and never logs the bytes.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SipMessage:
    """The accounting-relevant header fields of one SIP request or response.

    A request has `method` set and `status` 0; a response has `status` set
    and `method` "" (its transaction's method is `cseq_method`). Methods are
    as written: case-sensitive tokens. Tags, CSeq and Call-ID are read at
    parse time; the other fields are properties that look into the kept
    header block on demand. User parts are raw strings from the wire
    (percent-decoded), or None when the URI has none: phone numbers more
    often than not, which go through the pipeline's redaction before being
    stored or logged.
    """

    __slots__ = (
        "_correlation_header",
        "_from_params",
        "_from_uri",
        "_head",
        "_lowered",
        "_request_uri",
        "_to_params",
        "_to_uri",
        "call_id",
        "cseq",
        "cseq_method",
        "from_tag",
        "method",
        "status",
        "to_tag",
    )

    def __init__(
        self,
        method: str,
        status: int,
        call_id: str,
        cseq: int,
        cseq_method: str,
        from_address: tuple[str, str],
        to_address: tuple[str, str],
        request_uri: str,
        head: str,
        correlation_header: str | None,
    ) -> None:
        self.method = method
        self.status = status
        self.call_id = call_id
        self.cseq = cseq
        self.cseq_method = cseq_method
        self._from_uri, self._from_params = from_address
        self._to_uri, self._to_params = to_address
        self.from_tag = _tag(self._from_params)
        self.to_tag = _tag(self._to_params)
        self._request_uri = request_uri
        self._head = head
        self._lowered: str | None = None
        self._correlation_header = correlation_header

    def __repr__(self) -> str:
        # Never the header values: they hold phone numbers, URIs and addresses.
        kind = self.method or str(self.status)
        return f"<SipMessage {kind} CSeq {self.cseq} {self.cseq_method}>"

    def _starts(self, name: tuple[str, str]) -> Iterator[int]:
        """Where the value of every header called `name` (see _VIA) starts, in order.

        "Via:", "v:", "VIA :" all count: a name in any case, its compact form,
        white space before the colon. The header block is lower-cased once,
        when a message is first asked for such a value; latin-1 text keeps
        its length in lower case, so offsets found there hold in the
        original. A C-speed `str.find` per occurrence of the name, where a
        regular expression would step through every character.
        """
        lowered = self._lowered
        if lowered is None:
            lowered = self._lowered = self._head.lower()
        pattern, rest = name
        found = lowered.find(pattern)
        while found >= 0:
            index = found + len(pattern)
            if rest and lowered.startswith(rest, index):
                index += len(rest)
            while lowered.startswith(_BLANKS, index):
                index += 1
            if lowered.startswith(":", index):
                index += 1
                yield index
            found = lowered.find(pattern, index)

    def _values(self, name: tuple[str, str]) -> list[str] | None:
        """The values of every header called `name` (see _VIA), in order, or None."""
        head = self._head
        values = [_value_at(head, start) for start in self._starts(name)]
        return values or None

    @property
    def is_request(self) -> bool:
        """True for a request, False for a response."""
        return self.status == 0

    @property
    def from_tags(self) -> tuple[str, ...]:
        """Every tag parameter of the From header, in order (`from_tag` is the first)."""
        return _tags(self._from_params, self.from_tag)

    @property
    def to_tags(self) -> tuple[str, ...]:
        """Every tag parameter of the To header, in order (`to_tag` is the first).

        A To header should carry one tag, but some phones answer with two
        (`;tag=a;tag=b`), and the parties then disagree on which one names
        the dialog: a proxy forwards the header unchanged, while a parser
        that lets a repeated parameter overwrite the earlier one (Kamailio's
        among them) keeps the last. Whoever matches later requests to the
        dialog needs all of them.
        """
        return _tags(self._to_params, self.to_tag)

    @property
    def from_user(self) -> str | None:
        """The user part of the From URI (the caller, for the caller's requests)."""
        return uri_user(self._from_uri)

    @property
    def to_user(self) -> str | None:
        """The user part of the To URI."""
        return uri_user(self._to_uri)

    @property
    def ruri_user(self) -> str | None:
        """The user part of the Request-URI (requests only): the number dialled."""
        return uri_user(self._request_uri) if self._request_uri else None

    @property
    def pai_user(self) -> str | None:
        """The calling number the network vouches for, or None.

        Every P-Asserted-Identity header and every comma-separated identity
        in it is read; the first tel: URI or sip: URI whose user part is a
        number wins (a sip: identity with a name is skipped). Without such an
        identity, Remote-Party-ID is read the same way. None leaves the
        caller to the From header.
        """
        user = _asserted_number(self._values(_PAI))
        if user is None:
            user = _asserted_number(self._values(_RPID))
        return user

    @property
    def via_count(self) -> int:
        """How many Via entries the message carries (one per hop it went through)."""
        return self.count_vias()

    def count_vias(self, stop: int = 1 << 30) -> int:
        """The number of Via entries, counting no further than `stop`.

        Each Via header ("Via:", "v:", "Via :") holds one entry per
        comma-separated element that names a sent-protocol ("SIP/2.0/UDP"),
        folded lines included; an empty element (RFC 4475's `;;,;,,`) is no
        hop. Stopping early spares reading the rest of the header block when
        the caller only needs to know whether there are at least `stop`.
        """
        head = self._head
        count = 0
        for start in self._starts(_VIA):
            end = _value_end(head, start)
            if head.find(",", start, end) < 0:
                if head.find("/", start, end) >= 0:
                    count += 1
            else:
                count += sum("/" in entry for entry in _split_outside(head[start:end], ","))
            if count >= stop:
                return stop
        return count

    @property
    def reason_cause(self) -> int | None:
        """The Q.850 cause of the first `Reason: Q.850;cause=N` (N from 1 to 127), or None."""
        reasons = self._values(_REASON)
        return _q850_cause(reasons) if reasons else None

    @property
    def correlation(self) -> str | None:
        """The value of the configured correlation header, or None."""
        header = self._correlation_header
        if not header:
            return None
        values = self._values(_correlation_name(header))
        if not values:
            return None
        return values[0] or None


def parse_sip(data: bytes, correlation_header: str | None = None) -> SipMessage:
    """Read the header fields of one SIP message (`data` may include the body).

    `correlation_header` names one extra header (for example "X-CID") whose
    value goes to `SipMessage.correlation`. Raises SipError, and nothing
    else, when the message is not SIP or what the collector reads of it is
    ambiguous.
    """
    # Leading CRLFs (keep-alives, stream leftovers) are ignored, as RFC 3261 7.5 allows.
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")
    # The headers end at the first empty line; whatever follows (the body, or in a
    # datagram spurious octets, RFC 3261 18.3 and RFC 4475 3.1.1.8) is never read.
    end = data.find(b"\r\n\r\n")
    if end < 0:
        end = data.find(b"\n\n")
        if end < 0:
            end = len(data)
    if end == 0:
        raise SipError("empty")
    # latin-1 maps every byte to one character: it cannot fail and costs a copy.
    head = data[:end].decode("latin-1")
    line_end = head.find("\n")
    start_line = head if line_end < 0 else head[:line_end]
    method, status, request_uri = _start_line(start_line)

    values: list[str | None] = [None, None, None, None]  # by slot
    for name, value in _HEADERS.findall(head):
        slot = _SLOTS.get(name)
        if slot is None:
            slot = _SLOTS[name.lower()]
        value = _unfold(value) if "\n" in value else value.rstrip(_WSP)
        seen = values[slot]
        if seen is None:
            values[slot] = value
        elif value != seen:
            # Which one would the network use? RFC 3261 7.3 allows one value of these
            # headers, and an element answers such a request 400 (RFC 4475 3.3.8); a
            # copy repeated word for word leaves no doubt.
            raise SipError("repeated_header")

    call_id = values[_CALL_ID]
    if not call_id:
        raise SipError("no_call_id")
    cseq_value = values[_CSEQ]
    if not cseq_value:
        raise SipError("bad_cseq")
    cseq, cseq_method = _cseq(cseq_value)
    if method and cseq_method != method:
        raise SipError("method_mismatch")
    from_value = values[_FROM]
    if not from_value:
        raise SipError("no_from")
    from_address = _split_address(from_value)
    if from_address is None:
        raise SipError("bad_from")
    to_value = values[_TO]
    if not to_value:
        raise SipError("no_to")
    to_address = _split_address(to_value)
    if to_address is None:
        raise SipError("bad_to")

    return SipMessage(
        method,
        status,
        call_id,
        cseq,
        cseq_method,
        from_address,
        to_address,
        request_uri,
        head,
        correlation_header,
    )


def _start_line(line: str) -> tuple[str, int, str]:
    """(method, status, Request-URI) from a request or status line.

    Request-Line = Method SP Request-URI SP SIP-Version; Status-Line =
    SIP-Version SP Status-Code SP Reason-Phrase (RFC 3261 7.1, 7.2). Extra
    spaces between the elements and after the version are ignored, as RFC
    4475 3.1.2.9 and 3.1.2.10 let an element do; a Request-URI with a space
    in it (3.1.2.8) or in angle brackets (3.1.2.7) is refused. The reason
    phrase is free text and may be empty (3.1.1.12, 3.1.1.13).
    """
    matched = _REQUEST_LINE.match(line)
    if matched is not None:
        return matched[1], 0, matched[2]
    matched = _STATUS_LINE.match(line)
    if matched is not None:
        return "", int(matched[1]), ""
    # Off the grammar: say whether only the version is wrong.
    parts = line.rstrip(_TRIM).split(" ")
    version = parts[0] if line[:4].upper() == "SIP/" else parts[-1]
    _check_version(version)
    raise SipError("bad_start_line")


def _check_version(version: str) -> None:
    """SIP/2.0 in any case passes; another well-formed version is `bad_version`."""
    if version.upper() != "SIP/2.0":
        raise SipError("bad_version" if _VERSION.fullmatch(version) else "bad_start_line")


def _cseq(value: str) -> tuple[int, str]:
    """(number, method) of a CSeq value: 1*DIGIT LWS Method (RFC 3261 20.16).

    The number may have leading zeros and must fit 32 bits unsigned; the
    method is a token, kept as written.
    """
    number, _, method = value.partition(" ")
    if not method or "\t" in value or " " in method:
        fields = [field for field in value.replace("\t", " ").split(" ") if field]
        if len(fields) != 2:
            raise SipError("bad_cseq")
        number, method = fields
    if not (number.isdecimal() and number.isascii()) or method.strip(_TOKEN_CHARS):
        raise SipError("bad_cseq")
    if len(number) > _MAX_CSEQ_DIGITS:
        number = number.lstrip("0") or "0"
        if len(number) > _MAX_CSEQ_DIGITS:
            raise SipError("bad_cseq")
    cseq = int(number)
    if cseq > _MAX_CSEQ:
        raise SipError("bad_cseq")
    return cseq, method


def _unfold(value: str) -> str:
    """A header value with its folded continuation lines joined by one space.

    Only SP, HTAB and CR are trimmed: they are the linear white space of the
    grammar, where `str.strip()` would also eat bytes such as 0x85 or 0xA0
    that latin-1 decodes to Unicode white space.
    """
    return " ".join(part for part in (line.strip(_TRIM) for line in value.split("\n")) if part)


def _value_end(head: str, start: int) -> int:
    """Where the header value starting at `start` ends, folded continuation lines included."""
    stop = head.find("\n", start)
    while stop >= 0 and head.startswith(_BLANKS, stop + 1):
        stop = head.find("\n", stop + 1)
    return len(head) if stop < 0 else stop


def _value_at(head: str, start: int) -> str:
    """The header value starting at `start`, its folded continuation lines joined."""
    value = head[start : _value_end(head, start)]
    return _unfold(value) if "\n" in value else value.strip(_TRIM)


def _correlation_name(header: str) -> tuple[str, str]:
    """The configured correlation header as `SipMessage._values` looks for it, cached."""
    name = _correlation_names.get(header)
    if name is None:
        name = ("\n" + header.strip().lower(), "")
        if len(_correlation_names) < _MAX_CACHED_NAMES:
            _correlation_names[header] = name
    return name


def _end_of_quoted(value: str, start: int) -> int:
    """The index of the '"' closing a quoted string whose text begins at `start`, or -1.

    A backslash escapes the character after it (quoted-pair, RFC 3261
    25.1), so `\\"` does not close the string and `\\\\"` does.
    """
    index = start
    while True:
        quote = value.find('"', index)
        if quote < 0:
            return -1
        backslash = value.find("\\", index, quote)
        if backslash < 0:
            return quote
        index = backslash + 2


def _split_address(value: str) -> tuple[str, str] | None:
    """(URI, header parameters) of a From/To value, or None when it cannot be read.

    name-addr is `[display-name] <URI> params`, where the display name is
    tokens or a quoted string that may hold '<', ';' or an escaped '"';
    addr-spec is `URI params`, where everything after the first ';' belongs
    to the header (RFC 3261 20.10) and a quoted parameter value may hold
    '<'. Spaces around the URI inside the angle brackets are ignored (RFC
    4475 3.1.2.14 lets an element do so), and so are unquoted display names
    with characters outside token (3.1.2.15): the display name is never
    read. An unterminated quoted string or '<', or a quoted display name
    without a URI in angle brackets after it, is None.
    """
    if value[0] == '"':
        # The usual quoted display name: the URI is in the first '<' after it.
        closing = _end_of_quoted(value, 1)
        if closing < 0:
            return None
        opening = value.find("<", closing + 1)
        if opening < 0:
            return None
    else:
        opening = value.find("<")
        if opening > 0 and (";" in value[:opening] or '"' in value[:opening]):
            found = _name_addr_opening(value)
            if found is None:
                return None
            opening = found
    if opening < 0:
        semicolon = value.find(";")
        if semicolon < 0:
            return value, ""
        return value[:semicolon].rstrip(_WSP), value[semicolon:]
    closing = value.find(">", opening + 1)
    if closing < 0:
        return None
    return value[opening + 1 : closing].strip(_WSP), value[closing + 1 :]


def _name_addr_opening(value: str) -> int | None:
    """Where the '<' of a name-addr is, past quoted strings; -1 for an addr-spec; None if bad.

    The first ';' or '<' outside quoted strings decides: a ';' makes an
    addr-spec with parameters (where a quoted value may hold '<'), a '<'
    opens the URI after the display name. A quoted string that does not end,
    or ends a display name that no '<' follows, makes the value unreadable.
    """
    index = 0
    quoted = False
    while True:
        opening = value.find("<", index)
        limit = opening if opening >= 0 else len(value)
        semicolon = value.find(";", index, limit)
        quote = value.find('"', index, limit)
        if quote < 0 or 0 <= semicolon < quote:
            break
        closing = _end_of_quoted(value, quote + 1)
        if closing < 0:
            return None
        index = closing + 1
        quoted = True
    if quoted and (semicolon >= 0 or opening < 0):
        return None  # a quoted string, and then no <URI>
    return -1 if semicolon >= 0 else opening


def _tag(params: str) -> str | None:
    """The value of the first `tag` header parameter, or None.

    The usual `;tag=value` is read with one search; any other spelling
    (`; TAG = value`, a quoted parameter value before it) goes through the
    parameter-by-parameter reader.
    """
    if not params:
        return None
    found = params.find(";tag=")
    if found < 0 or '"' in params or (found and "tag" in params[:found].lower()):
        tags = _tags(params, None)
        return tags[0] if tags else None
    value = params[found + 5 :]
    if value.strip(_TOKEN_CHARS):
        value = _token_prefix(value.lstrip(_WSP))
    return value or None


def _tags(params: str, first: str | None) -> tuple[str, ...]:
    """Every `tag` header parameter value, in order (names in any case, LWS around '=').

    `first` is `_tag(params)`: when the parameters hold one '=', it is the
    only one.
    """
    if first is not None and params.count("=") == 1:
        return (first,)
    if "=" not in params:
        return ()
    tags: list[str] = []
    for param in _split_outside(params, ";"):
        name, equals, value = param.partition("=")
        if equals and name.strip(_WSP).lower() == "tag":
            value = _token_prefix(value.strip(_WSP))
            if value:
                tags.append(value)
    return tuple(tags)


def _token_prefix(value: str) -> str:
    """A tag value up to where it ends: the next parameter, header value or white space."""
    for stop in (";", ",", " ", "\t", "\r"):
        cut = value.find(stop)
        if cut >= 0:
            value = value[:cut]
    return value


def uri_user(uri: str) -> str | None:
    """The user part of a sip:, sips: or tel: URI, without parameters or password.

    Returns None for other schemes and for URIs without a user part
    (`sip:host`). The result is percent-decoded but otherwise raw: a phone
    number in whatever form the sender wrote it. A telephone number's
    parameters (`+4930123;npdi;rn=...`) are cut off; a user part that is no
    number keeps its semicolons, which belong to it (RFC 4475 3.1.1.9:
    `sip:user;par=u%40example.net@example.com` has the user
    `user;par=u@example.net`).
    """
    scheme = uri[:5].lower()
    if scheme.startswith("sip:"):
        rest = uri[4:]
    elif scheme == "sips:":
        rest = uri[5:]
    elif scheme.startswith("tel:"):
        user = uri[4:]
        cut = user.find(";")
        if cut >= 0:
            user = _in_context(user[:cut].strip(), user[cut + 1 :])
        user = user.strip()
        return (unquote(user) if "%" in user else user) or None
    else:
        return None
    at = rest.find("@")
    if at <= 0:
        return None
    user = rest[:at]
    # "user:password": the password goes.
    cut = user.find(":")
    if cut >= 0:
        user = user[:cut]
    # "+4930123;npdi;rn=..." carries telephone-subscriber parameters.
    cut = user.find(";")
    if cut >= 0:
        number = user[:cut]
        if _is_number(unquote(number) if "%" in number else number):
            user = _in_context(number, user[cut + 1 :])
    if "%" in user:
        user = unquote(user)
    return user or None


def _in_context(number: str, params: str) -> str:
    """A local number made global by its `phone-context` parameter (RFC 3966 5.1.5).

    `params` are the telephone-subscriber parameters after the number. A
    context that is a global number ("+1-212") prefixes its digits:
    5550101 in context +1-212 is +12125550101. A domain-name context, a
    number that is global already, or a context that is not a number leave
    the number as it is.
    """
    if not number or number[0] == "+":
        return number
    lowered = params.lower()
    found = lowered.find("phone-context=")
    while found > 0 and lowered[found - 1] != ";":
        found = lowered.find("phone-context=", found + 1)
    if found < 0:
        return number
    context = params[found + 14 :]
    cut = context.find(";")
    if cut >= 0:
        context = context[:cut]
    if "%" in context:
        context = unquote(context)
    context = context.strip()
    if context[:1] != "+":
        return number
    digits = context[1:].translate(_VISUAL_SEPARATORS)
    if not (digits.isdecimal() and digits.isascii()):
        return number
    return "+" + digits + number


def _split_outside(value: str, separator: str, *, angles: bool = False) -> list[str]:
    """Split `value` at `separator`, except inside a quoted string (or <...> with `angles`).

    A quoted string may hold the separator and backslash-escaped quotes
    (RFC 3261 25.1); an unterminated one runs to the end.
    """
    if separator not in value:
        return [value]
    if '"' not in value and not (angles and "<" in value):
        return value.split(separator)
    parts: list[str] = []
    start = 0
    index = 0
    size = len(value)
    while index < size:
        char = value[index]
        if char == '"':
            index += 1
            while index < size:
                char = value[index]
                if char == "\\":
                    index += 1
                elif char == '"':
                    break
                index += 1
        elif char == "<" and angles:
            closing = value.find(">", index + 1)
            index = size if closing < 0 else closing
        elif char == separator:
            parts.append(value[start:index])
            start = index + 1
        index += 1
    parts.append(value[start:])
    return parts


def _is_number(user: str) -> bool:
    """Whether a user part is a telephone number: digits, an optional '+', visual separators."""
    digits = user[1:] if user[:1] == "+" else user
    if not digits.isdecimal():
        digits = digits.translate(_VISUAL_SEPARATORS)
        if not digits.isdecimal():
            return False
    return digits.isascii()


def _asserted_number(values: list[str] | None) -> str | None:
    """The first number among identity header values (P-Asserted-Identity, Remote-Party-ID).

    Each value may list several identities, comma-separated (a sip: and a
    tel: URI, typically); a tel: URI, or a sip: URI whose user part is a
    number, counts.
    """
    if not values:
        return None
    for value in values:
        for entry in _split_outside(value, ",", angles=True):
            entry = entry.strip(_TRIM)
            address = _split_address(entry) if entry else None
            if address is None:
                continue
            uri = address[0]
            user = uri_user(uri)
            if user is not None and (uri[:4].lower() == "tel:" or _is_number(user)):
                return user
    return None


def _q850_cause(reasons: list[str]) -> int | None:
    """The Q.850 cause of the first `Reason: Q.850;cause=N` among the Reason values.

    Values are split at commas and parameters at semicolons outside quoted
    strings (`text="Normal, cleared"`), and parameters may come in any
    order. Reason values of other protocols (`SIP;cause=487`) are skipped,
    whatever their place, as are causes outside the Q.850 range 1-127.
    """
    for value in reasons:
        for entry in _split_outside(value, ","):
            protocol, _, params = entry.partition(";")
            if protocol.strip(_TRIM).upper() != "Q.850":
                continue
            for param in _split_outside(params, ";"):
                name, equals, text = param.partition("=")
                if not equals or name.strip(_TRIM).lower() != "cause":
                    continue
                text = text.strip(_TRIM)
                if 0 < len(text) <= 3 and text.isdecimal() and text.isascii():
                    cause = int(text)
                    if 1 <= cause <= 127:
                        return cause
                break
    return None
