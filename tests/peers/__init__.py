"""Real network peers for tests: a Kamailio proxy and SIPp user agents.

The helpers here start real programs (``kamailio``, ``sipp``) on free
loopback ports so that tests can place calls of a known shape and check what
arrived. They never bind or send beyond 127.0.0.1, and they never skip: a
missing program is an error naming the package to install, so CI fails
loudly instead of passing without having tested anything.
"""
