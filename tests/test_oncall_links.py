"""Signed link tokens: what verifies, what is refused and why, rotation, the expiry boundary, what is offered."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.incidents.lifecycle import IncidentStatus
from receiver.oncall import links
from receiver.oncall.links import Action, Claim, Keyring, Refusal, Refused, Signer, bounded_actor, offered

T0 = datetime(2026, 12, 1, 3, 20, tzinfo=UTC)
NEW = b"n" * 32
OLD = b"o" * 32
KEYRING = Keyring((NEW,))
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."

incidents = st.builds(lambda d, n: f"INC-2026{d:04d}-{n:04d}", st.integers(101, 1231), st.integers(1, 99_999))
actors = st.text(max_size=60)
expiries = st.integers(0, 2**33).map(lambda s: datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=s))
claims = st.builds(Claim, incidents, st.sampled_from(Action), actors, expiries)


@given(claims)
def test_a_signed_claim_verifies_to_itself_until_it_expires(claim: Claim) -> None:
    token = KEYRING.sign(claim)
    assert KEYRING.verify(token, claim.expires - timedelta(microseconds=1)) == claim
    assert set(token) <= set(ALPHABET) and token.count(".") == 1


@given(claims, st.data())
def test_changing_any_character_of_a_token_refuses_it(claim: Claim, data: st.DataObject) -> None:
    token = KEYRING.sign(claim)
    at = data.draw(st.integers(0, len(token) - 1), label="position")
    other = data.draw(st.sampled_from(ALPHABET + "=+/ é").filter(lambda c: c != token[at]), label="replacement")
    tampered = token[:at] + other + token[at + 1 :]
    verdict = KEYRING.verify(tampered, claim.expires - timedelta(days=1))
    assert isinstance(verdict, Refused) and verdict.why in (Refusal.FORGED, Refusal.MALFORMED)


@given(claims, st.data())
def test_cutting_or_extending_a_token_refuses_it(claim: Claim, data: st.DataObject) -> None:
    token = KEYRING.sign(claim)
    cut = data.draw(st.integers(0, len(token) - 1), label="kept")
    assert isinstance(KEYRING.verify(token[:cut], T0), Refused)
    assert isinstance(KEYRING.verify(token + data.draw(st.sampled_from(ALPHABET)), T0), Refused)


def test_a_link_is_valid_before_its_expiry_and_refused_from_that_instant() -> None:
    expires = T0 + timedelta(hours=24)
    token = KEYRING.sign(Claim("INC-20261201-0001", Action.ACKNOWLEDGE, "alice", expires))
    assert isinstance(KEYRING.verify(token, expires - timedelta(microseconds=1)), Claim)
    for late in (expires, expires + timedelta(days=400)):
        assert KEYRING.verify(token, late) == Refused(Refusal.EXPIRED, "this link expired at 2026-12-02 03:20 UTC")


def test_an_expiry_between_seconds_is_rounded_up_never_shortened() -> None:
    expires = T0 + timedelta(microseconds=1)
    claim = KEYRING.verify(KEYRING.sign(Claim("INC-20261201-0001", Action.RESOLVE, "a", expires)), T0)
    assert isinstance(claim, Claim) and claim.expires == T0 + timedelta(seconds=1)


def test_rotation_the_first_secret_signs_every_secret_verifies() -> None:
    claim = Claim("INC-20261201-0001", Action.RESOLVE, "slack:C123", T0 + timedelta(hours=1))
    old_token = Keyring((OLD,)).sign(claim)
    rotated = Keyring((NEW, OLD))
    assert rotated.verify(old_token, T0) == claim
    new_token = rotated.sign(claim)
    assert new_token != old_token and Keyring((NEW,)).verify(new_token, T0) == claim
    assert Keyring((NEW,)).verify(old_token, T0) == Refused(
        Refusal.FORGED, "this link's signature is not valid: it was altered or not made here"
    )


def test_an_expired_link_signed_elsewhere_is_forged_not_expired() -> None:
    token = Keyring((OLD,)).sign(Claim("INC-20261201-0001", Action.RESOLVE, "a", T0))
    verdict = KEYRING.verify(token, T0 + timedelta(days=1))
    assert isinstance(verdict, Refused) and verdict.why is Refusal.FORGED


def _signed(payload: bytes, secret: bytes = NEW) -> str:
    """A correctly signed token around any payload (what only a holder of the secret could make)."""
    return f"{_b64(payload)}.{_b64(links._mac(secret, payload))}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "abc",
        "a.b.c",
        "YWJj.YWJj",  # a tag of the wrong length
        "YWJj." + "A" * 21 + "=",  # padding is not part of the form
        "YW Jj." + "A" * 22,
        "Y." + "A" * 22,  # a length no base64 has
        "a" * 2000 + "." + "A" * 22,
        _signed(b"INC-20261201-0001\nack\n1"),  # three fields
        _signed(b"INC-1\nack\n1\nalice"),  # not an incident id
        _signed(b"INC-20261201-0001\nmitigate\n1\nalice"),  # not an action
        _signed(b"INC-20261201-0001\nack\n-1\nalice"),
        _signed(b"INC-20261201-0001\nack\n999999999999\nalice"),  # past year 9999
        _signed(b"INC-20261201-0001\nack\n1\n\xff"),  # not UTF-8
    ],
)
def test_what_is_not_a_token_is_malformed(token: str) -> None:
    verdict = KEYRING.verify(token, T0)
    assert isinstance(verdict, Refused) and verdict.why is Refusal.MALFORMED


def test_the_payload_is_read_only_after_its_signature_is_checked() -> None:
    verdict = KEYRING.verify(_signed(b"INC-20261201-0001\nmitigate\n1\nalice", OLD), T0)
    assert isinstance(verdict, Refused) and verdict.why is Refusal.FORGED


@pytest.mark.parametrize(
    ("status", "actions"),
    [
        (IncidentStatus.TRIGGERED, (Action.ACKNOWLEDGE, Action.RESOLVE)),
        (IncidentStatus.ACKNOWLEDGED, (Action.RESOLVE,)),
        (IncidentStatus.MITIGATED, (Action.RESOLVE,)),
        (IncidentStatus.RESOLVED, ()),
    ],
)
def test_what_a_notification_offers_follows_the_status(status: IncidentStatus, actions: tuple[Action, ...]) -> None:
    assert offered(status) == actions


def test_a_signer_makes_absolute_links_for_its_actor_lasting_its_ttl() -> None:
    signer = Signer(KEYRING, timedelta(hours=2), "https://receiver.example/")
    made = signer.links("INC-20261201-0007", IncidentStatus.TRIGGERED, "alice", T0)
    assert [action for action, _ in made] == [Action.ACKNOWLEDGE, Action.RESOLVE]
    for action, url in made:
        prefix = "https://receiver.example/links/"
        assert url.startswith(prefix)
        claim = KEYRING.verify(url.removeprefix(prefix), T0)
        assert claim == Claim("INC-20261201-0007", action, "alice", T0 + timedelta(hours=2))
        assert len(url) < 150


@given(st.text())
def test_an_actor_is_carried_on_one_line_bounded_never_empty(actor: str) -> None:
    shown = bounded_actor(actor)
    assert 0 < len(shown) <= links.MAX_ACTOR
    assert not any(ord(c) < 32 or ord(c) == 127 for c in shown)


def test_a_keyring_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        Keyring(())
    with pytest.raises(ValueError, match="none of them empty"):
        Keyring((NEW, b""))
