"""Test and benchmark helpers: config files, free ports, a gateway process, upstreams on
loopback. Imported by tests/ and bench/ alike; nothing in the gateway itself uses them."""
