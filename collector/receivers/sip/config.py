"""The [sip] section and its [[sip.sources]]: the HEP / SIP receiver's configuration.

Each option is declared once, as a field below (see collector.settings).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

from collector.settings import canonical_network, check_network, check_region, option, positive


@dataclass(frozen=True, repr=False)
class SipSource:
    """One SIP proxy or capture agent allowed to mirror signalling."""

    name: str = option(text=True, required="is required", unique=str)
    address: str = option(
        text=True, required="is required", check=check_network, unique=canonical_network
    )
    hep_auth_key: str | None = option(None)
    #: ISO 3166 region its national numbers belong to (None: privacy.default_region)
    region: str | None = option(None, check=check_region, convert=str.upper)

    def __repr__(self) -> str:
        return f"SipSource(name={self.name!r})"


@dataclass(frozen=True)
class SipConfig:
    """The HEPv3 / raw SIP receiver and its dialog tracker."""

    #: the receiver this section configures (see collector.receivers.receiver_factory)
    RECEIVER: ClassVar[str] = "collector.receivers.sip.receiver:SipReceiver"

    listen: tuple[str, ...] = option(("0.0.0.0:9060",), listen=frozenset({"UDP", "TCP"}))
    sources: tuple[SipSource, ...] = option((), noun="source")
    max_dialogs: int = option(200000, check=positive)
    max_dialog_age_s: int = option(14400, check=positive)
    correlation_header: str | None = option(None)
    receive_buffer_bytes: int = option(8388608, check=positive)
    #: HEP-over-TCP connections served at once, in all and from one address
    tcp_max_connections: int = option(256, check=positive)
    tcp_max_connections_per_address: int = option(16, check=positive)
    #: a HEP-over-TCP connection that sends nothing for this long is closed
    tcp_idle_timeout_s: int = option(600, check=positive)
    #: a HEP frame begun on TCP must be complete within this
    tcp_frame_timeout_ms: int = option(5000, check=positive)

    def source_names(self) -> tuple[str, ...]:
        """Every source's name."""
        return tuple(source.name for source in self.sources)

    def regions(self) -> dict[str, str]:
        """The region of each source that sets its own, by source name."""
        return {source.name: source.region for source in self.sources if source.region}

    def summary(self) -> str:
        """Its sources, counted."""
        return f"{len(self.sources)} SIP source(s)"

    def stale_calls(self) -> tuple[str, timedelta] | None:
        """SIP calls open an hour past the dialog tracker's own limit: never a call it
        still follows, but one answered before a restart whose BYE never came."""
        return "sip", timedelta(seconds=self.max_dialog_age_s) + timedelta(hours=1)
