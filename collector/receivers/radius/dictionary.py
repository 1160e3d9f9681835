"""Attribute numbers the daemon understands: RFC 2865/2866/2869, Cisco, FreeSWITCH, Kamailio.

Only the numbers, as facts from the protocol and vendor dictionaries; how
each profile reads them lives in `profiles.py`, what a vendor's values mean
in `collector.vendors`. Nothing here is
loaded from files at run time, so a packet never depends on a dictionary
being installed.
"""

from __future__ import annotations

from typing import Final

# RFC 2865 / 2866 / 2869 / 3579 attributes
USER_NAME: Final = 1
NAS_IP_ADDRESS: Final = 4
SERVICE_TYPE: Final = 6
CLASS: Final = 25
VENDOR_SPECIFIC: Final = 26
CALLED_STATION_ID: Final = 30
CALLING_STATION_ID: Final = 31
NAS_IDENTIFIER: Final = 32
ACCT_STATUS_TYPE: Final = 40
ACCT_DELAY_TIME: Final = 41
ACCT_SESSION_ID: Final = 44
ACCT_SESSION_TIME: Final = 46
ACCT_TERMINATE_CAUSE: Final = 49
EVENT_TIMESTAMP: Final = 55
MESSAGE_AUTHENTICATOR: Final = 80

# Acct-Status-Type values (RFC 2866 5.1, Failed from RFC 2866's registry)
STATUS_START: Final = 1
STATUS_STOP: Final = 2
STATUS_INTERIM: Final = 3
STATUS_ACCOUNTING_ON: Final = 7
STATUS_ACCOUNTING_OFF: Final = 8
STATUS_FAILED: Final = 15

# Cisco (vendor 9) VoIP VSAs; each value repeats its name: "h323-setup-time=..."
CISCO: Final = 9
CISCO_AVPAIR: Final = 1
H323_REMOTE_ADDRESS: Final = 23
H323_CONF_ID: Final = 24
H323_SETUP_TIME: Final = 25
H323_CALL_ORIGIN: Final = 26
H323_CALL_TYPE: Final = 27
H323_CONNECT_TIME: Final = 28
H323_DISCONNECT_TIME: Final = 29
H323_DISCONNECT_CAUSE: Final = 30
H323_VOICE_QUALITY: Final = 31
H323_GW_ID: Final = 33
H323_INCOMING_CONF_ID: Final = 35

# FreeSWITCH (vendor 27880), as mod_radius_cdr sends them
FREESWITCH: Final = 27880
FS_AVPAIR: Final = 1
FS_CLID: Final = 2
FS_SRC: Final = 4
FS_DST: Final = 5
FS_HANGUPCAUSE: Final = 13
FS_BILLUSEC: Final = 15
FS_CALLSTARTDATE: Final = 20
FS_CALLANSWERDATE: Final = 21
FS_CALLTRANSFERDATE: Final = 22
FS_CALLENDDATE: Final = 23
# FreeSWITCH's own dictionary (mod_radius_cdr/radius/dictionary); FreeRADIUS's
# dictionary.freeswitch calls 24 "Freeswitch-Signalbond" and lacks 25
FS_DIRECTION: Final = 24  # "inbound" / "outbound", in the Stop
FS_OTHER_LEG_ID: Final = 25  # the bridged leg's uuid, in the Start when already bridged

# Kamailio acc_radius (standard-space attributes of its radcli dictionary)
SIP_METHOD: Final = 101
SIP_RESPONSE_CODE: Final = 102
SIP_CSEQ: Final = 103
SIP_TO_TAG: Final = 104
SIP_FROM_TAG: Final = 105
SERVICE_TYPE_SIP_SESSION: Final = 15
# Kamailio's Sip-Method bitmask values
SIP_METHOD_INVITE: Final = 1
SIP_METHOD_CANCEL: Final = 2
SIP_METHOD_ACK: Final = 4
SIP_METHOD_BYE: Final = 8
