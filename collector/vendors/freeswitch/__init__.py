"""FreeSWITCH's rules, for both transports it reports calls over.

FreeSWITCH reports each call leg over RADIUS (mod_radius_cdr) and over HTTP
(mod_json_cdr). What their values mean is decided here, once:

- `causes`: its hangup causes, and how a leg that ended with one is stored;
- `legs`: which leg a record is (its `leg`) and which call it belongs to
  (its correlation, the A-leg's uuid);
- `radius_cdr`: mod_radius_cdr's own formats (its times and their cut
  offsets, the setup time in a record key);
- `json_cdr`: mod_json_cdr's document (which variable holds what) as a record.

The RADIUS freeswitch profile and the JSON receiver read their framing and
call in here. Nothing here does I/O or knows a socket.
"""
