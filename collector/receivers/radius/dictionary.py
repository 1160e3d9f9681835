"""Attribute numbers the daemon understands: RFC 2865/2866/2869, Cisco, FreeSWITCH, Kamailio.

Only the numbers, as facts from the protocol and vendor dictionaries; how
each profile reads them lives in `profiles.py`, what a vendor's values mean
in `collector.vendors`. Nothing here is
loaded from files at run time, so a packet never depends on a dictionary
being installed.
"""

from __future__ import annotations

# RFC 2865 / 2866 / 2869 / 3579 attributes
USER_NAME = 1
NAS_IP_ADDRESS = 4
SERVICE_TYPE = 6
CLASS = 25
VENDOR_SPECIFIC = 26
CALLED_STATION_ID = 30
CALLING_STATION_ID = 31
NAS_IDENTIFIER = 32
ACCT_STATUS_TYPE = 40
ACCT_DELAY_TIME = 41
ACCT_SESSION_ID = 44
ACCT_SESSION_TIME = 46
ACCT_TERMINATE_CAUSE = 49
EVENT_TIMESTAMP = 55
MESSAGE_AUTHENTICATOR = 80

# Acct-Status-Type values (RFC 2866 5.1, Failed from RFC 2866's registry)
STATUS_START = 1
STATUS_STOP = 2
STATUS_INTERIM = 3
STATUS_ACCOUNTING_ON = 7
STATUS_ACCOUNTING_OFF = 8
STATUS_FAILED = 15

# Cisco (vendor 9) VoIP VSAs; each value repeats its name: "h323-setup-time=..."
CISCO = 9
CISCO_AVPAIR = 1
H323_REMOTE_ADDRESS = 23
H323_CONF_ID = 24
H323_SETUP_TIME = 25
H323_CALL_ORIGIN = 26
H323_CALL_TYPE = 27
H323_CONNECT_TIME = 28
H323_DISCONNECT_TIME = 29
H323_DISCONNECT_CAUSE = 30
H323_VOICE_QUALITY = 31
H323_GW_ID = 33
H323_INCOMING_CONF_ID = 35

# FreeSWITCH (vendor 27880), as mod_radius_cdr sends them
FREESWITCH = 27880
FS_AVPAIR = 1
FS_CLID = 2
FS_SRC = 4
FS_DST = 5
FS_HANGUPCAUSE = 13
FS_BILLUSEC = 15
FS_CALLSTARTDATE = 20
FS_CALLANSWERDATE = 21
FS_CALLTRANSFERDATE = 22
FS_CALLENDDATE = 23
# FreeSWITCH's own dictionary (mod_radius_cdr/radius/dictionary); FreeRADIUS's
# dictionary.freeswitch calls 24 "Freeswitch-Signalbond" and lacks 25
FS_DIRECTION = 24  # "inbound" / "outbound", in the Stop
FS_OTHER_LEG_ID = 25  # the bridged leg's uuid, in the Start when already bridged

# Kamailio acc_radius (standard-space attributes of its radcli dictionary)
SIP_METHOD = 101
SIP_RESPONSE_CODE = 102
SIP_CSEQ = 103
SIP_TO_TAG = 104
SIP_FROM_TAG = 105
SERVICE_TYPE_SIP_SESSION = 15
# Kamailio's Sip-Method bitmask values
SIP_METHOD_INVITE = 1
SIP_METHOD_CANCEL = 2
SIP_METHOD_ACK = 4
SIP_METHOD_BYE = 8
