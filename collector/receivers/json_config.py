"""The [json] section: the JSON CDR receiver's configuration.

Each option is declared once, as a field below (see collector.settings); the
basic-auth file it names is read here, through collector.formats.basic_auth.
The credentials are never shown in a repr.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

from collector.formats.basic_auth import parse_basic_auth
from collector.settings import Reader, check_network, check_region, not_blank, option, positive


@dataclass(frozen=True, repr=False)
class JsonConfig:
    """The JSON CDR ingest endpoint (FreeSWITCH mod_json_cdr)."""

    #: the receiver this section configures (see collector.receivers.receiver_factory)
    RECEIVER: ClassVar[str] = "collector.receivers.json_cdr:JsonReceiver"

    listen: str = option("0.0.0.0:9811", listen=frozenset({"TCP"}))
    allowed: tuple[str, ...] = option(
        (), check=check_network, required="is required: list the networks allowed to post CDRs"
    )
    basic_auth_file: str | None = option(None)
    #: (user, password) pairs read from basic_auth_file
    credentials: tuple[tuple[str, str], ...] = field(default=())
    source: str = option("json", check=not_blank)
    max_body_bytes: int = option(1048576, check=positive)
    #: a connection must deliver a request's headers within this, from its
    #: opening or the end of its previous request
    header_timeout_ms: int = option(10000, check=positive)
    #: and the body within this once the headers are in
    body_timeout_ms: int = option(30000, check=positive)
    #: ISO 3166 region the sender's national numbers belong to (None: privacy.default_region)
    region: str | None = option(None, check=check_region, convert=str.upper)

    def __repr__(self) -> str:
        return f"JsonConfig(listen={self.listen!r}, allowed={self.allowed!r})"

    def checked(self, reader: Reader, table: Mapping[str, Any], where: str) -> JsonConfig:
        """With the credentials of basic_auth_file."""
        del table
        if self.basic_auth_file is None:
            return self
        key = f"{where}.basic_auth_file"
        text = reader.read_text(key, self.basic_auth_file, private=True)
        if text is None:
            return self
        credentials, problems = parse_basic_auth(text)
        for why in problems:
            reader.problem(key, f"{self.basic_auth_file}: {why}")
        return dataclasses.replace(self, credentials=tuple(credentials))

    def source_names(self) -> tuple[str, ...]:
        """The one source name its records carry."""
        return (self.source,)

    def regions(self) -> dict[str, str]:
        """The sender's region, when it sets its own, by source name."""
        return {self.source: self.region} if self.region else {}

    def summary(self) -> str:
        """One endpoint."""
        return "JSON ingest"

    def stale_calls(self) -> tuple[str, timedelta] | None:
        """None: a JSON CDR is a finished call, never an open one."""
        return None
