"""Local stand-ins for the third-party APIs the daemon will notify (issue #14).

Each module here is an aiohttp application served on 127.0.0.1 that behaves as
the real API's public documentation says: its success answers, its documented
failures (authentication, validation, payload limits, rate limits with
``Retry-After``, server errors) and the state the daemon depends on. Each fake
records every request it receives (on an injectable clock) and lets a test
script faults deterministically, without sleeps (``tests/fakes/server.py``).

Every fake cites, in its module docstring, the documentation pages it follows;
where the documentation is silent and the fake had to choose, the docstring
says so. Their own tests are ``tests/test_fakes_*.py``.
"""
