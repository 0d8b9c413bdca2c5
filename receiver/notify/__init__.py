"""Notifications: telling people about incidents, exactly once, at the right pace, never quietly failing.

- ``model``: what the outbox holds (intents written with the change that causes them, deliveries
  claimed by the sender, outcomes) and how failures are classified;
- ``content``: what a channel is given to render (a message composed from templates, in its markup,
  at a level of detail it can shrink to fit its size limit);
- ``channel``: the one small interface every channel implements, and its registration;
- ``channels/``: one module per channel (Slack, PagerDuty, Teams, email, generic webhook, Statuspage),
  ``endpoint`` what the JSON-posting ones share, ``slack_blocks`` Slack's Block Kit within its limits;
- ``http``: the one HTTP client edge the channels send through; ``failures``: how an answer is classified;
- ``routing``, ``planning``, ``cadence``: pure decisions (who hears of what, when the next update is due);
- ``story``: an incident as a notification tells it; ``templates``, ``shipped``, ``sandbox``, ``escaping``:
  what it says, in Jinja2's sandbox, every value escaped for the channel's markup; ``composer``: which
  route's templates render a delivery.

The outbox's rows live in the store (``receiver.store.sqlite_outbox``); the engine's sender
(``receiver.engine.notifier``) delivers them.
"""
