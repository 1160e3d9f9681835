"""RADIUS accounting receiver: codec, attribute dictionary, vendor profiles, UDP listener."""
