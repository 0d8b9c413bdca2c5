"""``oncall.links``: secrets from the environment, key paths in errors, when links are off, and the way to the
engine process, where the links of notifications are signed (web and engine apart, end to end)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from receiver import cli, config
from receiver.app import create_app
from receiver.clock import FixedClock
from receiver.engine.process import settings_frame
from receiver.oncall.links import Claim, Keyring
from tests.e2e.harness import eventually
from tests.fakes.slack import SlackFake
from tests.payloads import alert, body

SECRET = "link-secret-0123456789-0123456789-abc"
OLD = "old-link-secret-0123456789-0123456789"


def load(tmp_path: Path, raw: dict[str, Any], env: dict[str, str] | None = None) -> config.Settings:
    path = tmp_path / "receiver.yml"
    path.write_text(yaml.safe_dump(raw))
    return config.load(path, env or {})


def problems(tmp_path: Path, raw: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, str]:
    with pytest.raises(config.ConfigError) as caught:
        load(tmp_path, raw, env)
    return dict(caught.value.problems)


def links(**settings: Any) -> dict[str, Any]:
    return {"oncall": {"links": settings}}


def test_secrets_come_from_the_environment_and_the_first_signs(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        links(secret="env:LINK_SECRET", previous_secrets=["env:OLD_LINK_SECRET", OLD], ttl="2h"),
        {"LINK_SECRET": SECRET, "OLD_LINK_SECRET": OLD + "x"},
    )
    assert settings.oncall.links.secrets() == [SECRET, OLD + "x", OLD]
    assert settings.oncall.links.ttl == timedelta(hours=2)
    assert SECRET not in repr(settings) and SECRET not in settings.oncall.model_dump_json()
    signer = settings.oncall.links.signer("https://receiver.example")
    assert signer is not None and signer.keyring.secrets[0] == SECRET.encode()


@pytest.mark.parametrize(
    ("raw", "env", "key", "message"),
    [
        (links(secret="env:NOPE"), {}, "oncall.links.secret", "environment variable NOPE is not set"),
        (
            links(secret=SECRET, previous_secrets=[OLD, "env:GONE"]),
            {},
            "oncall.links.previous_secrets.1",
            "environment variable GONE is not set",
        ),
        (links(secret="short"), {}, "oncall.links.secret", "at least 32 characters"),
        (links(secret="env:S"), {"S": "short"}, "oncall.links.secret", "base64 32) (from S)"),
        (links(secret=" " * 40), {}, "oncall.links.secret", "an empty credential is refused"),
        (links(secret=SECRET, previous_secrets=["x"]), {}, "oncall.links.previous_secrets.0", "at least 32"),
        (links(secret=SECRET, ttl="31d"), {}, "oncall.links.ttl", "at most 30d"),
        (links(secret=SECRET, ttl="0s"), {}, "oncall.links.ttl", "must be positive"),
        (links(secret=SECRET, lifetime="1h"), {}, "oncall.links.lifetime", "unknown setting"),
    ],
)
def test_bad_settings_name_their_key(
    tmp_path: Path, raw: dict[str, Any], env: dict[str, str], key: str, message: str
) -> None:
    found = problems(tmp_path, raw, env)
    assert key in found and message in found[key], found


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ({}, "oncall.links.secret is not set"),
        (links(secret=SECRET), "notify.external_url is not set"),
        (links(secret=SECRET) | {"notify": {"external_url": "https://r.example"}}, None),
    ],
)
def test_when_links_are_off_config_check_says_why_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], raw: dict[str, Any], why: str | None
) -> None:
    settings = load(tmp_path, raw)
    off = settings.oncall.links.off_because(settings.notify.external_url)
    assert (settings.oncall.links.signer(settings.notify.external_url) is None) == (why is not None)
    assert cli.main(["config", "check", str(tmp_path / "receiver.yml")]) == 0
    out, err = capsys.readouterr()
    assert out.strip().endswith(": ok")
    if why is None:
        assert off is None and err == ""
    else:
        assert off is not None and why in off and err.count(why) == 1


def test_the_secrets_cross_to_the_engine_process_in_clear(tmp_path: Path) -> None:
    settings = load(tmp_path, links(secret=SECRET, previous_secrets=[OLD], ttl="3h"))
    sent = json.loads(settings_frame(settings)[4:])
    assert config.Settings.model_validate(sent).oncall.links == settings.oncall.links
    off = json.loads(settings_frame(load(tmp_path, {}))[4:])
    assert config.Settings.model_validate(off).oncall.links.secret is None


NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


async def test_web_and_engine_apart_a_slack_message_carries_a_link_that_acknowledges(
    aiohttp_client: Any, make_settings: Callable[..., config.Settings]
) -> None:
    async with SlackFake() as slack:
        slack.add_channel("C0LINKS0001", "incidents")
        settings = make_settings(
            engine={"nice": 0},
            api={"token": "api-token-0123456789"},
            oncall={"links": {"secret": SECRET, "ttl": "1h"}},
            notify={
                "external_url": "https://receiver.example/",
                "channels": {"slack": slack.channel_settings("C0LINKS0001")},
            },
        )
        app = create_app(settings, registry=CollectorRegistry(), clock=FixedClock(NOW), engine="process")
        client = await aiohttp_client(app)
        hook = await client.post("/api/v1/alerts", data=body(alert("PodCrashLooping", namespace="shop")))
        assert hook.status == 200

        async def posted() -> bool:
            return any("/links/" in json.dumps(m.blocks) for m in slack.messages("C0LINKS0001"))

        await eventually(posted, "the engine to post the incident to Slack with its links", 30)
        [message] = slack.messages("C0LINKS0001")
        found = re.findall(r"https://receiver\.example/links/([A-Za-z0-9_.-]+)\|(\w+)>", json.dumps(message.blocks))
        tokens = dict((label, token) for token, label in found)
        assert set(tokens) == {"Acknowledge", "Resolve"}
        claim = Keyring((SECRET.encode(),)).verify(tokens["Acknowledge"], NOW)
        assert isinstance(claim, Claim) and claim.actor == "slack" and claim.expires == NOW + timedelta(hours=1)
        acted = await client.post(f"/links/{tokens['Acknowledge']}")
        assert acted.status == 200 and "is acknowledged by slack" in await acted.text()
        api = {"Authorization": "Bearer api-token-0123456789"}
        detail = await (await client.get(f"/api/v1/incidents/{claim.incident}", headers=api)).json()
        assert detail["status"] == "acknowledged"
        assert [e["actor"] for e in detail["timeline"] if e["kind"] == "acknowledged"] == ["slack"]
