"""What each switch family's records mean, filed by vendor rather than by transport.

A switch reports one call over several transports (FreeSWITCH over RADIUS
with mod_radius_cdr and over HTTP with mod_json_cdr, for one), and each
receiver reads only its transport's framing. What the values mean (a hangup
cause, the SIP status it implies, whether the leg was answered) is the
vendor's and lives here, in one module (or package) per vendor that every
receiver of that vendor's records uses, so one call gets one answer
whatever brought it: `cisco` (IOS and CUBE), `freeswitch` (mod_radius_cdr
and mod_json_cdr), `kamailio` (acc). Receivers keep only their transport:
attribute decoding, HTTP and body decoding. Modules here are pure: no I/O,
no sockets, no phone numbers in errors; they never import a receiver.
"""
