"""The CSTA PBX simulator (``ivr-server csta-sim``): a virtual switch behind a CSTA server façade,
driven by an HTTP API and a scenario file; see ``docs/csta-sim.md``.

``config`` (its TOML), ``pbx`` (the sans-IO PBX: sessions, calls, agents), ``model`` (its calls,
DN settings and links), ``services`` (the CSTA services it answers), ``operations`` (what an
operator can make it do), ``scenario`` (timed operations), ``api`` (the HTTP API) and ``app`` (the
asyncio servers and timer).
"""
