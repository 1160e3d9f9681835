"""The SIP receiver: HEPv3 decoding, SIP header parsing and dialog tracking into CallRecords."""
