"""Network mode end to end: the real ``ivr-server serve --config examples/network.toml``."""
