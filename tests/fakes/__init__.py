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

The fakes:
- ``server.py``: what the HTTP fakes share (free loopback port, request log,
  scripted faults, rate limiters);
- ``slack.py``: Slack Web API (chat.postMessage, chat.update, history) and
  incoming webhooks;
- ``teams.py``: a Microsoft Teams Workflows webhook taking Adaptive Cards;
- ``pagerduty.py``: PagerDuty Events API v2;
- ``statuspage.py``: Atlassian Statuspage REST API v1;
- ``smtp.py``: an SMTP submission server (aiosmtpd, not aiohttp: it speaks
  SMTP itself) with STARTTLS on a test-time certificate, AUTH PLAIN/LOGIN,
  every message parsed and recorded, and scripted 4xx/5xx replies at MAIL,
  RCPT or DATA, a connection dropped after DATA, and a command never
  answered.
"""
