"""The registry of channel types: one module each, one line here.

``TYPES`` maps a ``type`` in ``notify.channels.<name>`` to its registration; ``ChannelSettings`` is
the union the configuration validates each channel's settings against (by its ``type``).
"""

from __future__ import annotations

from typing import Annotated, Any, Union

import pydantic

from receiver.notify.channel import Channel, ChannelType
from receiver.notify.channels import email, pagerduty, slack, statuspage, teams, webhook

_REGISTERED: tuple[ChannelType[Any], ...] = (
    slack.TYPE,
    pagerduty.TYPE,
    teams.TYPE,
    email.TYPE,
    webhook.TYPE,
    statuspage.TYPE,
)
TYPES: dict[str, ChannelType[Any]] = {t.kind: t for t in _REGISTERED}


def build(name: str, settings: pydantic.BaseModel) -> Channel:
    """The channel ``settings`` (one of the registered models) describe."""
    kind = getattr(settings, "type")  # noqa: B009 - every registered model has it
    registered: ChannelType[Any] = TYPES[kind]
    return registered.build(name, settings)


ChannelSettings: Any = (
    Annotated[Union[tuple(t.settings for t in _REGISTERED)], pydantic.Field(discriminator="type")]  # noqa: UP007
    if _REGISTERED
    else dict[str, Any]
)
"""The settings of any registered channel type, told apart by their ``type``."""
