"""Notifications: telling people about incidents, exactly once, at the right pace, never quietly failing.

- ``model``: what the outbox holds (intents written with the change that causes them, deliveries
  claimed by the sender, outcomes) and how failures are classified;
- ``content``: what a channel is given to render (a message composed from templates, in its markup,
  at a level of detail it can shrink to fit its size limit);
- ``channel``: the one small interface every channel implements, and its registration;
- ``channels/``: one module per channel (Slack, PagerDuty, Teams, email, generic webhook, Statuspage);
- ``http``: the one HTTP client edge the channels send through;
- ``routing``, ``planning``, ``cadence``, ``templates``: pure decisions (who hears of what, when the
  next update is due, what it says).
"""
