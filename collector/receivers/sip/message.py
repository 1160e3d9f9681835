"""A fast, tolerant reader of the SIP header fields that call accounting needs.

`parse_sip` takes one SIP message as captured (request or response) and pulls
out only what the dialog tracker uses: the start line (method and
Request-URI, or status code), Call-ID, the From/To tags and URIs, CSeq, the
`Reason` values, the number of Via entries, the asserted calling number
(P-Asserted-Identity, else Remote-Party-ID) and, when configured, one
correlation header. User parts, the asserted number, the Via count, the
Q.850 cause and the correlation header are worked out only when asked for,
because the tracker needs them from a few messages of each call (the
INVITE, the one that ends it), not from every 100 Trying and ACK. It
reads with `str.find` and slicing rather than regular expressions, accepts
compact header names, any header-name case, bare-LF line ends and folded
lines, and stops at the blank line that ends the headers. It must never
raise anything but `SipError` (with a short fixed `reason`, fit for a metric
label), from parsing or from any property of the message, and never look at
the body (SDP stays unread). A SipMessage holds the header block while it is
fed to the tracker and is then dropped; its repr shows no header value, and
only raw user parts leave it, for the pipeline to normalize and redact.
"""

from __future__ import annotations

from urllib.parse import unquote

#: every reason a SipError can carry (a fixed vocabulary for metrics and logs)
SIP_ERROR_REASONS = frozenset(
    {
        "empty",  # nothing but blank lines
        "bad_start_line",  # neither "METHOD uri SIP/2.0" nor "SIP/2.0 NNN reason"
        "no_call_id",  # Call-ID missing or empty
        "bad_cseq",  # CSeq missing or not "number METHOD"
        "no_from",  # From header missing
        "no_to",  # To header missing
    }
)

# Slots of the header values parse_sip keeps, indexed by these numbers.
_CALL_ID, _FROM, _TO, _CSEQ, _REASON, _CORRELATION = range(6)

#: header names (lower case, compact forms included) -> slot, for the line-by-line reader
_BASE_HEADERS: dict[str, int] = {
    "call-id": _CALL_ID,
    "i": _CALL_ID,
    "from": _FROM,
    "f": _FROM,
    "to": _TO,
    "t": _TO,
    "cseq": _CSEQ,
    "reason": _REASON,
}
_headers_by_correlation: dict[str | None, dict[str, int]] = {None: _BASE_HEADERS}

#: fast path: per required slot, the long and the compact "\nname:" search pattern
_FAST_PATTERNS: tuple[tuple[int, str, str], ...] = (
    (_CALL_ID, "\ncall-id:", "\ni:"),
    (_FROM, "\nfrom:", "\nf:"),
    (_TO, "\nto:", "\nt:"),
    (_CSEQ, "\ncseq:", ""),
)
_correlation_patterns: dict[str, str] = {}

#: what a folded continuation line starts with
_FOLD_STARTS = (" ", "\t")

# Headers whose every occurrence counts (lower-case names), for the line-by-line reader.
_PAI_NAMES = frozenset({"p-asserted-identity"})
_RPID_NAMES = frozenset({"remote-party-id"})
#: visual separators a telephone number may carry (RFC 3966 5.1.1)
_VISUAL_SEPARATORS = str.maketrans("", "", "-.() ")

# A CSeq number is below 2**31 (RFC 3261 8.1.1.5); ten digits is more than
# enough and keeps int() far from its digit limit on hostile input.
_MAX_CSEQ_DIGITS = 10
_MAX_METHOD_CHARS = 32
# Bounds on the caches keyed by the configured correlation header name.
_MAX_CACHED_NAMES = 16


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
    and `method` "" (its transaction's method is `cseq_method`). Tags, CSeq
    and Call-ID are read at parse time; the other fields are properties that
    look into the kept header block on demand. User parts are raw strings
    from the wire (percent-decoded), or None when the URI has none: phone
    numbers more often than not, which go through the pipeline's redaction
    before being stored or logged.
    """

    __slots__ = (
        "_correlation_header",
        "_from",
        "_head",
        "_lowered",
        "_request_uri",
        "_scanned",
        "_to",
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
        from_tag: str | None,
        to_tag: str | None,
        from_value: str,
        to_value: str,
        request_uri: str,
        head: str,
        lowered: str,
        correlation_header: str | None,
        scanned: list[str | None] | None,
        scanned_reasons: list[str] | None,
    ) -> None:
        self.method = method
        self.status = status
        self.call_id = call_id
        self.cseq = cseq
        self.cseq_method = cseq_method
        self.from_tag = from_tag
        self.to_tag = to_tag
        self._from = from_value
        self._to = to_value
        self._request_uri = request_uri
        self._head = head
        self._lowered = lowered
        self._correlation_header = correlation_header
        # Set when the line-by-line reader ran: every value is already known.
        self._scanned = None if scanned is None else (scanned, scanned_reasons)

    def __repr__(self) -> str:
        # Never the header values: they hold phone numbers, URIs and addresses.
        kind = self.method or str(self.status)
        return f"<SipMessage {kind} CSeq {self.cseq} {self.cseq_method}>"

    @property
    def is_request(self) -> bool:
        """True for a request, False for a response."""
        return self.status == 0

    @property
    def from_user(self) -> str | None:
        """The user part of the From URI (the caller, for the caller's requests)."""
        return uri_user(_split_name_addr(self._from)[0])

    @property
    def to_user(self) -> str | None:
        """The user part of the To URI."""
        return uri_user(_split_name_addr(self._to)[0])

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
        user = _asserted_number(self._all_values(_PAI_NAMES, "\np-asserted-identity:"))
        if user is None:
            user = _asserted_number(self._all_values(_RPID_NAMES, "\nremote-party-id:"))
        return user

    @property
    def via_count(self) -> int:
        """How many Via entries the message carries (one per hop it went through)."""
        return self.count_vias()

    def count_vias(self, stop: int = 1 << 30) -> int:
        """The number of Via entries, counting no further than `stop`.

        Each Via line ("Via:", "v:", "Via :") holds one entry and one more
        per comma, folded continuation lines included. Stopping early spares
        reading the rest of the header block when the caller only needs to
        know whether there are at least `stop` entries.
        """
        lowered = self._lowered
        size = len(lowered)
        count = 0
        found = lowered.find("\nv")
        while found >= 0:
            index = found + 2
            if lowered.startswith("ia", index):
                index += 2
            while index < size and lowered[index] in " \t":
                index += 1
            if not lowered.startswith(":", index):
                found = lowered.find("\nv", index)
                continue
            end = lowered.find("\n", index)
            while end >= 0 and lowered.startswith(_FOLD_STARTS, end + 1):
                end = lowered.find("\n", end + 1)
            if end < 0:
                end = size
            count += 1 + lowered.count(",", index, end)
            if count >= stop:
                return stop
            found = lowered.find("\nv", end)
        return count

    def _all_values(self, names: frozenset[str], pattern: str) -> list[str] | None:
        """Every value of one header, in order, or None."""
        if self._scanned is not None:
            return _line_values(self._head, names)
        return _find_values(self._head, self._lowered, pattern)

    @property
    def reason_cause(self) -> int | None:
        """The Q.850 cause of the first `Reason: Q.850;cause=N` (N from 1 to 127), or None."""
        if self._scanned is not None:
            reasons = self._scanned[1]
        else:
            reasons = _find_values(self._head, self._lowered, "\nreason:")
        return _q850_cause(reasons) if reasons else None

    @property
    def correlation(self) -> str | None:
        """The value of the configured correlation header, or None."""
        header = self._correlation_header
        if not header:
            return None
        if self._scanned is not None:
            value = self._scanned[0][_CORRELATION]
        else:
            value = _find_value(self._head, self._lowered, _correlation_pattern(header))
        return value or None


def parse_sip(data: bytes, correlation_header: str | None = None) -> SipMessage:
    """Read the header fields of one SIP message (`data` may include the body).

    `correlation_header` names one extra header (for example "X-CID") whose
    value goes to `SipMessage.correlation`. Raises SipError, and nothing
    else, when the message is not SIP.
    """
    # Leading CRLFs (keep-alives, stream leftovers) are ignored, as RFC 3261 7.5 allows.
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")
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
    method, status, request_uri = _start_line(start_line.rstrip("\r"))

    lowered = head.lower()
    values = _find_required(head, lowered)
    scanned_reasons: list[str] | None = None
    scanned: list[str | None] | None = None
    if None in values:
        # A required header not found as "\nName:": maybe written "Name :" (legal
        # whitespace before the colon). Read line by line before giving up.
        scanned, scanned_reasons = _scan_lines(head, correlation_header)
        values = scanned

    call_id = values[_CALL_ID]
    if not call_id:
        raise SipError("no_call_id")
    cseq_text = values[_CSEQ]
    if cseq_text is None:
        raise SipError("bad_cseq")
    cseq_parts = cseq_text.split()
    if len(cseq_parts) != 2:
        raise SipError("bad_cseq")
    number, cseq_method = cseq_parts
    if not (number.isdecimal() and len(number) <= _MAX_CSEQ_DIGITS):
        raise SipError("bad_cseq")
    from_value = values[_FROM]
    if from_value is None:
        raise SipError("no_from")
    to_value = values[_TO]
    if to_value is None:
        raise SipError("no_to")

    return SipMessage(
        method,
        status,
        call_id,
        int(number),
        cseq_method.upper(),
        _tag(_header_params(from_value)),
        _tag(_header_params(to_value)),
        from_value,
        to_value,
        request_uri,
        head,
        lowered,
        correlation_header,
        scanned,
        scanned_reasons,
    )


def _find_required(head: str, lowered: str) -> list[str | None]:
    """Call-ID, From, To and CSeq by slot (the rest None), via `str.find`.

    The fast path: a C-speed search of the lower-cased header block for
    "\\nname:" instead of a Python loop over every line. The long form of a
    name is looked for first and the compact one only when it is absent (a
    message carries one From, not both). A name written with whitespace
    before its colon is not found here; the caller then reads line by line.
    """
    values: list[str | None] = [None, None, None, None]
    for slot, pattern, compact in _FAST_PATTERNS:
        found = lowered.find(pattern)
        if found >= 0:
            values[slot] = _value_at(head, found + len(pattern))
        elif compact:
            found = lowered.find(compact)
            if found >= 0:
                values[slot] = _value_at(head, found + len(compact))
    return values


def _find_value(head: str, lowered: str, pattern: str) -> str | None:
    """The value of the first header matching `pattern` ("\\nname:"), or None."""
    found = lowered.find(pattern)
    if found < 0:
        return None
    return _value_at(head, found + len(pattern))


def _find_values(head: str, lowered: str, pattern: str) -> list[str] | None:
    """The values of every header matching `pattern`, in order, or None."""
    values: list[str] | None = None
    found = lowered.find(pattern)
    while found >= 0:
        found += len(pattern)
        if values is None:
            values = []
        values.append(_value_at(head, found))
        found = lowered.find(pattern, found)
    return values


def _value_at(head: str, start: int) -> str:
    """The header value starting at `start`, with folded continuation lines joined."""
    stop = head.find("\n", start)
    if stop < 0:
        return head[start:].strip()
    value = head[start:stop].strip()
    while head.startswith(_FOLD_STARTS, stop + 1):
        following = head.find("\n", stop + 1)
        if following < 0:
            following = len(head)
        value = value + " " + head[stop + 1 : following].strip()
        stop = following
    return value


def _scan_lines(
    head: str, correlation_header: str | None
) -> tuple[list[str | None], list[str] | None]:
    """Header values by slot, reading every line (tolerates "Name :" spacing)."""
    wanted = _headers_by_correlation.get(correlation_header)
    if wanted is None:
        wanted = _with_correlation(correlation_header)
    lines = head.split("\n")
    values: list[str | None] = [None, None, None, None, None, None]
    reasons: list[str] | None = None
    current = -1  # slot of the header a folded line continues, -1 for none
    for index in range(1, len(lines)):
        line = lines[index]
        if not line:
            continue
        first = line[0]
        if first == " " or first == "\t":
            # A folded continuation line (obsolete but legal): join it loosely.
            if current >= 0:
                if current == _REASON and reasons:
                    reasons[-1] += " " + line.strip()
                else:
                    previous = values[current]
                    if previous is not None:
                        values[current] = previous + " " + line.strip()
            continue
        colon = line.find(":")
        if colon <= 0:
            current = -1
            continue
        slot = wanted.get(line[:colon].rstrip().lower())
        if slot is None:
            current = -1
        elif slot == _REASON:
            if reasons is None:
                reasons = []
            reasons.append(line[colon + 1 :].strip())
            current = slot
        elif values[slot] is None:
            values[slot] = line[colon + 1 :].strip()
            current = slot
        else:
            current = -1  # a repeated header: the first one counts
    return values, reasons


def _line_values(head: str, names: frozenset[str]) -> list[str] | None:
    """Every value of the headers called `names`, reading line by line ("Name :" too), or None."""
    values: list[str] | None = None
    current = False  # whether the previous line was one of them (for folded lines)
    for line in head.split("\n")[1:]:
        if not line:
            current = False
            continue
        if line[0] == " " or line[0] == "\t":
            if current and values:
                values[-1] += " " + line.strip()
            continue
        colon = line.find(":")
        current = colon > 0 and line[:colon].rstrip().lower() in names
        if current:
            if values is None:
                values = []
            values.append(line[colon + 1 :].strip())
    return values


def _with_correlation(header: str | None) -> dict[str, int]:
    """The line reader's header table extended with the correlation header (cached)."""
    table = dict(_BASE_HEADERS)
    if header:
        table[header.strip().lower()] = _CORRELATION
    if len(_headers_by_correlation) < _MAX_CACHED_NAMES:
        _headers_by_correlation[header] = table
    return table


def _correlation_pattern(header: str) -> str:
    """The fast path's search pattern of the correlation header ("\\nx-cid:"), cached."""
    pattern = _correlation_patterns.get(header)
    if pattern is None:
        pattern = "\n" + header.strip().lower() + ":"
        if len(_correlation_patterns) < _MAX_CACHED_NAMES:
            _correlation_patterns[header] = pattern
    return pattern


def _start_line(line: str) -> tuple[str, int, str]:
    """(method, status, Request-URI) from a request or status line."""
    if line.startswith("SIP/") or line[:4].upper() == "SIP/":
        # "SIP/2.0 486 Busy Here": the reason phrase is free text and ignored.
        parts = line.split(None, 2)
        if len(parts) < 2:
            raise SipError("bad_start_line")
        code = parts[1]
        if len(code) != 3 or not code.isdecimal() or not "1" <= code[0] <= "6":
            raise SipError("bad_start_line")
        return "", int(code), ""
    parts = line.split()
    if len(parts) != 3 or parts[2][:4].upper() != "SIP/":
        raise SipError("bad_start_line")
    method = parts[0]
    if len(method) > _MAX_METHOD_CHARS or not method.isascii() or not method.isalpha():
        raise SipError("bad_start_line")
    return method.upper(), 0, parts[1]


def _split_name_addr(value: str) -> tuple[str, str]:
    """Split a From/To/PAI value into (URI, header parameters).

    Handles `"Display" <uri>;params`, `Display <uri>;params` and the bare
    `uri;params` form (where everything after the first ';' belongs to the
    header, per RFC 3261 20.10).
    """
    search_from = 0
    if value[:1] == '"':
        # Skip the quoted display name: it may hold '<', ';' or ','.
        index = 1
        while True:
            quote = value.find('"', index)
            if quote < 0:
                search_from = len(value)
                break
            if value[quote - 1] != "\\":
                search_from = quote + 1
                break
            index = quote + 1
    opening = value.find("<", search_from)
    if opening >= 0:
        closing = value.find(">", opening + 1)
        if closing < 0:
            return value[opening + 1 :].strip(), ""
        return value[opening + 1 : closing].strip(), value[closing + 1 :]
    semicolon = value.find(";", search_from)
    if semicolon < 0:
        return value[search_from:].strip(), ""
    return value[search_from:semicolon].strip(), value[semicolon:]


def _header_params(value: str) -> str:
    """The header parameters of a From/To value (where the tag is), without splitting it all.

    After the first '>' that follows a '<' in the name-addr form (a '<' or '>'
    in a quoted display name at worst leaves some display text in front of
    the parameters, where no ";tag=" is), after the first ';' in the bare
    addr-spec form (RFC 3261 20.10).
    """
    opening = value.find("<")
    if opening >= 0:
        closing = value.find(">", opening)
        return value[closing + 1 :] if closing >= 0 else ""
    semicolon = value.find(";")
    return value[semicolon:] if semicolon >= 0 else ""


def _tag(params: str) -> str | None:
    """The value of the `tag` header parameter, or None."""
    if not params:
        return None
    lowered = params.lower()
    found = lowered.find(";tag=")
    if found >= 0:
        value = params[found + 5 :]
    elif "tag" in lowered:
        # Unusual spacing ("; tag = x"): take the parameters apart.
        for param in params.split(";"):
            name, equals, rest = param.partition("=")
            if equals and name.strip().lower() == "tag":
                value = rest.strip()
                break
        else:
            return None
    else:
        return None
    # The token ends at the next parameter, the next header value or whitespace.
    for stop in (";", ",", " ", "\t", "\r"):
        cut = value.find(stop)
        if cut >= 0:
            value = value[:cut]
    return value or None


def uri_user(uri: str) -> str | None:
    """The user part of a sip:, sips: or tel: URI, without parameters or password.

    Returns None for other schemes and for URIs without a user part
    (`sip:host`). The result is percent-decoded but otherwise raw: a phone
    number in whatever form the sender wrote it.
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
    # "+4930123;npdi;rn=..." carries telephone-subscriber parameters; "user:password" a password.
    cut = user.find(";")
    if cut >= 0:
        params = user[cut + 1 :]
        user = user[:cut]
    else:
        params = ""
    cut = user.find(":")
    if cut >= 0:
        user = user[:cut]
    if params:
        user = _in_context(user, params)
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
            uri, _ = _split_name_addr(entry.strip())
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
            if protocol.strip().upper() != "Q.850":
                continue
            for param in _split_outside(params, ";"):
                name, equals, text = param.partition("=")
                if not equals or name.strip().lower() != "cause":
                    continue
                text = text.strip()
                if 0 < len(text) <= 3 and text.isdecimal() and text.isascii():
                    cause = int(text)
                    if 1 <= cause <= 127:
                        return cause
                break
    return None
