"""Which templates render a delivery: the route's own, over the configured ones, over the shipped ones.

Built once from the settings (every template compiled, so a broken one stops the daemon at start with
its name), asked per delivery with the route that gave the incident its channel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from receiver.notify.content import Audience, Detail, Markup, Message
from receiver.notify.routing import Route
from receiver.notify.story import Story
from receiver.notify.templates import Templates

Overrides = Mapping[str, Mapping[str, str]]
"""audience -> template name -> source."""


class RouteComposer:
    """Renders with the templates of a delivery's route."""

    def __init__(self, overrides: Overrides, routes: Sequence[Route] = ()) -> None:
        self._default = Templates(overrides)
        self._by_route = {
            route.name: Templates(_merged(overrides, route.templates)) for route in routes if route.templates
        }

    def compose(self, story: Story, audience: Audience, markup: Markup, detail: Detail, route: str) -> Message:
        """The message for ``story`` in ``markup`` at ``detail``, with ``route``'s templates."""
        return self._by_route.get(route, self._default).compose(story, audience, markup, detail)


def _merged(base: Overrides, over: Overrides) -> dict[str, dict[str, str]]:
    merged = {audience: dict(named) for audience, named in base.items()}
    for audience, named in over.items():
        merged.setdefault(audience, {}).update(named)
    return merged
