"""Typed settings: a YAML file, secrets from the environment, validated once.

Settings are loaded strictly, as Alertmanager loads its own: an unknown key or
a value of the wrong type stops the daemon at start with a message naming the
key path (``store.max_pending: ...``). Nothing deeper in the code reads the
environment; ``load`` is the only place that does, and only for secrets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pydantic
import yaml

from receiver.alerts import matchers
from receiver.alerts.dedup import DedupPolicy
from receiver.alerts.regex import InvalidRegex, compile_anchored
from receiver.durations import Duration, parse_duration
from receiver.evidence.content import Bounds
from receiver.incidents.book import IncidentPolicy
from receiver.incidents.correlation import CorrelationPolicy, CorrelationRule
from receiver.incidents.severity import Modifiers, Rule, Severity, Threshold
from receiver.incidents.subject import DEFAULT_EXPORTERS, DEFAULT_LABELS, SubjectPolicy
from receiver.incidents.suppression import Dependency
from receiver.incidents.watchdog import WatchdogPolicy
from receiver.notify import channels as channel_types
from receiver.notify.cadence import Cadence
from receiver.notify.channels import ChannelSettings
from receiver.notify.composer import RouteComposer
from receiver.notify.escalation import Ladders, PolicyRoute
from receiver.notify.model import Target
from receiver.notify.routing import Route, default_routes
from receiver.notify.templates import TemplateError
from receiver.oncall.links import Keyring, Signer, keyring_of
from receiver.oncall.policies import (
    CONTACT_KINDS,
    Contact,
    Person,
    Policy,
    Ref,
    RefKind,
    Roster,
    Step,
    conventional,
)
from receiver.oncall.schedules import DAILY, HOURLY, WEEKLY, Layer, OffSlot, Override, Rotation, Schedule
from receiver.oncall.turns import Change
from receiver.playbooks.guardrails import Limits
from receiver.playbooks.plan import NamespacePolicy

ENV_SECRETS: Mapping[str, tuple[str, ...]] = {
    "RECEIVER_WEBHOOK_TOKEN": ("webhook", "bearer_token"),
    "RECEIVER_WEBHOOK_PASSWORD": ("webhook", "basic_auth", "password"),
    "RECEIVER_API_TOKEN": ("api", "token"),
}

_LABEL_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
"""A name that becomes a metric label or a URL path segment (channels, schedules)."""
_LISTEN = re.compile(r"^(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[^:\[\]]*)):(?P<port>\d{1,5})$")


class ConfigError(ValueError):
    """The settings are unusable; ``problems`` pairs a key path with the reason."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"{key}: {msg}" for key, msg in problems))


FilePath = Annotated[pydantic.FilePath, pydantic.Field(strict=False)]
DirPath = Annotated[Path, pydantic.Field(strict=False)]


def _not_blank(value: Any) -> Any:
    """An empty or whitespace-only credential would open what it guards (or lock it shut): refused."""
    text = value.get_secret_value() if isinstance(value, pydantic.SecretStr) else value
    if not text.strip():
        raise ValueError("an empty credential is refused: it must have at least 1 character that is not whitespace")
    return value


Secret = Annotated[pydantic.SecretStr, pydantic.Field(strict=False), pydantic.AfterValidator(_not_blank)]
Username = Annotated[str, pydantic.AfterValidator(_not_blank)]


class _Section(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True, frozen=True)


class Listen(_Section):
    """Where the HTTP server listens."""

    host: str
    port: Annotated[int, pydantic.Field(ge=0, le=65535)]

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(value: object) -> Listen:
    """Parse ``HOST:PORT`` (``[::1]:9095`` for IPv6)."""
    if isinstance(value, Listen):
        return value
    if not isinstance(value, str) or (m := _LISTEN.match(value)) is None:
        raise ValueError(f"{value!r} is not HOST:PORT")
    port = int(m["port"])
    if port > 65535:
        raise ValueError(f"port {port} is out of range")
    return Listen(host=m["v6"] or m["host"] or "0.0.0.0", port=port)


class ServerSettings(_Section):
    """What one client may hold of the HTTP server: connections, and time to send a request."""

    max_connections: Annotated[int, pydantic.Field(ge=8)] = 512
    """Open connections at most (lowered to fit the open-file limit); past it the longest-waiting idle one is closed."""
    header_timeout: Duration = timedelta(seconds=10)
    """A connection that has not sent a whole request head this long after it opened (or began one) is closed."""
    body_timeout: Duration = timedelta(seconds=30)
    """A request whose body has not fully arrived this long after its head gets 408 and the connection is closed."""
    keepalive_timeout: Duration = timedelta(seconds=75)
    """An idle keep-alive connection is closed after this long."""


class BasicAuth(_Section):
    """HTTP basic auth, as Alertmanager's ``http_config.basic_auth`` sends it."""

    username: Username
    password: Secret


class WebhookSettings(_Section):
    """The Alertmanager-facing endpoint. No credentials configured means no auth."""

    bearer_token: Secret | None = None
    basic_auth: BasicAuth | None = None
    max_body_bytes: Annotated[int, pydantic.Field(ge=1024)] = 4 * 1024 * 1024


class ApiSettings(_Section):
    """The incident/alert API. When a token is set, every API call needs it."""

    token: Secret | None = None


class TlsSettings(_Section):
    """Serve HTTPS; with ``client_ca_file``, require client certificates (mTLS)."""

    cert_file: FilePath
    key_file: FilePath
    client_ca_file: FilePath | None = None


class StoreSettings(_Section):
    """The embedded SQLite store and the commit queue in front of it."""

    backend: Literal["sqlite"] = "sqlite"
    path: DirPath | None = None
    """Database file; defaults to ``<data_dir>/receiver.db``."""
    synchronous: Literal["full", "normal"] = "full"
    """``full`` survives power loss; ``normal`` survives process crashes only."""
    busy_timeout: Duration = timedelta(seconds=5)
    max_pending: Annotated[int, pydantic.Field(ge=1)] = 2048
    """Notifications waiting for their commit before the webhook answers 503."""
    max_batch: Annotated[int, pydantic.Field(ge=1)] = 512
    """Most webhook bodies appended to the inbox in one commit (group commit)."""
    process_batch: Annotated[int, pydantic.Field(ge=1)] = 256
    """Most inbox entries processed in one transaction: larger batches rewrite fewer database pages per
    notification (a batch of 32 wrote 39 KiB of log per notification, one of 256 wrote 22 KiB)."""
    max_backlog: Annotated[int, pydantic.Field(ge=1)] = 100_000
    """Accepted notifications waiting for processing before the webhook answers 503."""
    inbox_retention: Duration = timedelta(hours=24)
    """How long processed webhook bodies are kept, as received, for audit and replay."""


class AlertSettings(_Section):
    """How alerts expire and when they count as flapping."""

    expire_after: Duration = timedelta(hours=36)
    """Above Alertmanager's ``repeat_interval`` plus its ``group_interval`` (kube-prometheus-stack: 12h + 5m), so a
    long-firing alert is repeated before it would expire."""
    expiry_check_interval: Duration = timedelta(minutes=1)
    retention: Duration = timedelta(days=7)
    """Resolved and expired alerts are forgotten this long after their last change (checked with expiry)."""
    flap_threshold: Annotated[int, pydantic.Field(ge=1)] = 4
    flap_window: Duration = timedelta(hours=1)

    def policy(self) -> DedupPolicy:
        """The dedup policy these settings describe."""
        return DedupPolicy(
            expire_after=self.expire_after,
            flap_threshold=self.flap_threshold,
            flap_window=self.flap_window,
        )


class EngineSettings(_Section):
    """The engine process, which turns accepted notifications into state beside the web process."""

    nice: Annotated[int, pydantic.Field(ge=0, le=19)] = 10
    """Added to the engine's niceness: when CPU is short, answering Alertmanager comes first and
    processing catches up from the durable inbox (``store.max_backlog`` bounds how far behind)."""
    stall_after: Duration = timedelta(minutes=2)
    """``/readyz`` answers 503 while the oldest accepted notification not yet processed is older than this."""


def _valid_matcher(text: str) -> str:
    matchers.parse(text)  # raises InvalidMatcher, a ValueError naming what is wrong
    return text


MatcherText = Annotated[str, pydantic.AfterValidator(_valid_matcher)]
"""A label matcher such as ``alertname="DatabaseDown"``, checked at load and kept as text."""
SeverityName = Literal["SEV1", "SEV2", "SEV3", "SEV4"]
Name = Annotated[str, pydantic.Field(min_length=1)]


class CorrelationRuleSettings(_Section):
    """Alerts with equal values of these labels belong to one incident (with ``subject``: alerts about one kind)."""

    name: Name
    labels: Annotated[list[Name], pydantic.Field(min_length=1)]
    subject: Name | None = None
    """Only alerts whose subject is of this kind (``node``): see ``incidents.subject``."""

    def rule(self) -> CorrelationRule:
        """The rule these settings describe."""
        return CorrelationRule(self.name, tuple(self.labels), self.subject)


class CascadeSettings(_Section):
    """More than ``alerts`` firing alerts across more than ``services`` services in a scope: a cascade."""

    alerts: Annotated[int, pydantic.Field(ge=1)] = 5
    services: Annotated[int, pydantic.Field(ge=0)] = 1
    severity: SeverityName = "SEV1"


class CorrelationSettings(_Section):
    """How alerts are grouped into incidents."""

    rules: list[CorrelationRuleSettings] = [
        CorrelationRuleSettings(name="node", labels=["node"], subject="node"),
        CorrelationRuleSettings(name="namespace", labels=["namespace"]),
        CorrelationRuleSettings(name="cluster", labels=["cluster"]),
    ]
    window: Duration = timedelta(minutes=5)
    quiet_period: Duration = timedelta(minutes=5)
    reopen_window: Duration = timedelta(minutes=30)
    cascade: CascadeSettings = CascadeSettings()

    def policy(self, subject: SubjectPolicy) -> CorrelationPolicy:
        """The correlation policy these settings describe, finding subjects by ``subject``."""
        return CorrelationPolicy(
            rules=tuple(r.rule() for r in self.rules),
            window=self.window,
            quiet_period=self.quiet_period,
            reopen_window=self.reopen_window,
            cascade_alerts=self.cascade.alerts,
            cascade_services=self.cascade.services,
            subject=subject,
        )


def _valid_regex(text: str) -> str:
    try:
        compile_anchored(text)
    except InvalidRegex as err:
        raise ValueError(f"{text!r}: invalid regular expression (RE2 syntax): {err}") from None
    return text


RegexText = Annotated[str, pydantic.AfterValidator(_valid_regex)]
"""An RE2 expression, anchored at both ends, checked at load and kept as text."""


class SubjectSettings(_Section):
    """How an alert's subject (the affected workload, node or service) is read from its labels."""

    labels: Annotated[list[Name], pydantic.Field(min_length=1)] = list(DEFAULT_LABELS)
    exporters: list[RegexText] = list(DEFAULT_EXPORTERS)
    exporter_containers: list[Name] = ["kube-state-metrics", "node-exporter"]
    node_instance_jobs: list[Name] = ["node-exporter"]
    cluster_scoped: list[Name] = ["node", "persistentvolume"]

    def policy(self) -> SubjectPolicy:
        """The subject policy these settings describe."""
        return SubjectPolicy(
            labels=tuple(self.labels),
            exporters=tuple(map(compile_anchored, self.exporters)),
            exporter_containers=frozenset(self.exporter_containers),
            node_instance_jobs=frozenset(self.node_instance_jobs),
            cluster_scoped=frozenset(self.cluster_scoped),
        )


MatcherSet = MatcherText | Annotated[list[MatcherText], pydantic.Field(min_length=1)]
"""One matcher, or several that must all hold."""


def _matcher_set(entry: MatcherSet) -> tuple[matchers.Matcher, ...]:
    return (matchers.parse(entry),) if isinstance(entry, str) else tuple(map(matchers.parse, entry))


class WatchdogSettings(_Section):
    """The dead man's switch: an incident of the daemon's own when the watchdog stops arriving."""

    enabled: bool = True
    matchers: Annotated[list[MatcherText], pydantic.Field(min_length=1)] = ['alertname="Watchdog"']
    missing_after: Duration = timedelta(minutes=10)
    severity: SeverityName = "SEV2"

    def policy(self) -> WatchdogPolicy:
        """The watchdog policy these settings describe."""
        return WatchdogPolicy(
            self.enabled, tuple(map(matchers.parse, self.matchers)), self.missing_after, Severity[self.severity]
        )


class DependencySettings(_Section):
    """While an alert matching ``root`` fires, alerts matching ``symptoms`` with equal ``equal`` labels are symptoms."""

    name: Name
    root: Annotated[list[MatcherText], pydantic.Field(min_length=1)]
    symptoms: Annotated[list[MatcherText], pydantic.Field(min_length=1)]
    equal: list[Name] = []

    def dependency(self) -> Dependency:
        """The dependency these settings describe."""
        return Dependency(
            self.name,
            tuple(map(matchers.parse, self.root)),
            tuple(map(matchers.parse, self.symptoms)),
            tuple(self.equal),
        )


class ThresholdSettings(_Section):
    """A numeric condition on a label or annotation: ``name op value`` (times another value, if given)."""

    name: Name
    op: Literal[">", ">=", "<", "<="]
    value: Annotated[float, pydantic.Field(strict=False, allow_inf_nan=False)]
    times: Name | None = None


class SeverityRuleSettings(_Section):
    """One classification rule; the first that matches decides."""

    name: Name
    severity: SeverityName
    labels: list[MatcherText] = []
    annotations: list[MatcherText] = []
    threshold: ThresholdSettings | None = None

    def rule(self) -> Rule:
        """The rule these settings describe."""
        threshold = self.threshold
        return Rule(
            self.name,
            Severity[self.severity],
            tuple(map(matchers.parse, self.labels)),
            tuple(map(matchers.parse, self.annotations)),
            Threshold(threshold.name, threshold.op, threshold.value, threshold.times) if threshold else None,
        )


class SeveritySettings(_Section):
    """Classification rules and the context modifiers."""

    rules: list[SeverityRuleSettings] = []
    tier_labels: list[Name] = ["environment", "env", "tier"]
    tiers: dict[str, Annotated[int, pydantic.Field(ge=-3, le=3)]] = {
        "production": 0,
        "prod": 0,
        "staging": 1,
        "stage": 1,
        "development": 2,
        "dev": 2,
    }
    services_escalate_at: Annotated[int, pydantic.Field(ge=1)] = 3


class IncidentSettings(_Section):
    """Correlation, suppression and severity: how alerts become incidents."""

    correlation: CorrelationSettings = CorrelationSettings()
    subject: SubjectSettings = SubjectSettings()
    suppression: list[DependencySettings] = []
    severity: SeveritySettings = SeveritySettings()
    ignore: list[MatcherSet] = ['alertname="Watchdog"', 'alertname="InfoInhibitor"', 'severity="none"']
    """Alerts stored and listed, but never in an incident nor a playbook's trigger (an entry: one matcher,
    or a list that must all hold)."""
    watchdog: WatchdogSettings = WatchdogSettings()

    def policy(self) -> IncidentPolicy:
        """Everything the incident book decides with."""
        return IncidentPolicy(
            self.correlation.policy(self.subject.policy()),
            self.rules(),
            self.modifiers(),
            self.dependencies(),
            tuple(map(_matcher_set, self.ignore)),
            self.watchdog.policy(),
        )

    def rules(self) -> tuple[Rule, ...]:
        """The severity rules, in order."""
        return tuple(r.rule() for r in self.severity.rules)

    def modifiers(self) -> Modifiers:
        """The severity modifiers."""
        return Modifiers(
            tier_labels=tuple(self.severity.tier_labels),
            tiers=dict(self.severity.tiers),
            services_escalate_at=self.severity.services_escalate_at,
            cascade_severity=Severity[self.correlation.cascade.severity],
        )

    def dependencies(self) -> tuple[Dependency, ...]:
        """The suppression dependencies."""
        return tuple(d.dependency() for d in self.suppression)


class NamespaceSettings(_Section):
    """Where playbooks may act: ``allow`` (empty: every namespace) minus ``deny``."""

    allow: list[Name] = []
    deny: list[Name] = ["kube-system"]


class GuardrailSettings(_Section):
    """The guardrails every playbook gets (a playbook may override dry_run, approval, cooldown, runs per hour)."""

    dry_run: bool = False
    approval: Literal["none", "required"] = "none"
    cooldown: Duration = timedelta(minutes=10)
    max_runs_per_hour: Annotated[int, pydantic.Field(ge=1)] = 6
    max_replicas: Annotated[int, pydantic.Field(ge=1)] = 20
    max_pods_deleted_per_run: Annotated[int, pydantic.Field(ge=0)] = 3
    max_pods_deleted_per_hour: Annotated[int, pydantic.Field(ge=0)] = 10
    breaker_failures: Annotated[int, pydantic.Field(ge=1)] = 3
    approval_timeout: Duration = timedelta(minutes=15)
    """A run nobody approves within this is rejected."""

    def limits(self) -> Limits:
        """The limits these settings describe."""
        return Limits(
            dry_run=self.dry_run,
            approval=self.approval == "required",
            cooldown=self.cooldown,
            max_runs_per_hour=self.max_runs_per_hour,
            max_replicas=self.max_replicas,
            max_pods_deleted_per_run=self.max_pods_deleted_per_run,
            max_pods_deleted_per_hour=self.max_pods_deleted_per_hour,
            breaker_failures=self.breaker_failures,
        )


class RemediationSettings(_Section):
    """Playbooks and their guardrails."""

    playbook_dirs: list[DirPath] = [Path("playbooks")]
    """Directories whose ``*.yaml`` files are playbooks (the shipped ones live in ``playbooks/``)."""
    namespaces: NamespaceSettings = NamespaceSettings()
    guardrails: GuardrailSettings = GuardrailSettings()

    def namespace_policy(self) -> NamespacePolicy:
        """Where playbooks may act."""
        return NamespacePolicy(tuple(self.namespaces.allow), tuple(self.namespaces.deny))


class EvidenceSettings(_Section):
    """What is read from the cluster when an incident opens (README: Evidence)."""

    enabled: bool = True
    per_incident: Annotated[int, pydantic.Field(ge=1, le=50)] = 3
    """Alerts of an incident that opens whose evidence is captured (the first to fire)."""
    log_lines: Annotated[int, pydantic.Field(ge=0, le=10_000)] = 100
    """Last lines of the alert's container's current and previous logs."""
    log_bytes: Annotated[int, pydantic.Field(ge=0, le=1024 * 1024)] = 64 * 1024
    """Most bytes of each log."""
    max_bytes: Annotated[int, pydantic.Field(ge=4096, le=4 * 1024 * 1024)] = 256 * 1024
    """Most bytes of one alert's whole evidence (JSON); more is cut, marked ``truncated``."""
    deadline: Duration = timedelta(seconds=10)
    """A whole capture's time: what was read by then is kept, and the evidence says it timed out."""
    request_timeout: Duration = timedelta(seconds=3)
    """One request to the API server."""
    events_age: Duration = timedelta(hours=1)
    """Events older than this are left out."""
    max_events: Annotated[int, pydantic.Field(ge=0, le=500)] = 20
    concurrency: Annotated[int, pydantic.Field(ge=1, le=32)] = 4
    """Captures at once."""

    def bounds(self) -> Bounds:
        """The bounds of one capture."""
        return Bounds(
            log_lines=self.log_lines,
            log_bytes=self.log_bytes,
            total_bytes=self.max_bytes,
            deadline=self.deadline,
            request_timeout=self.request_timeout,
            events_age=self.events_age,
            events=self.max_events,
        )


class RouteSettings(_Section):
    """One notification route (README: Notifications): matchers on the incident, the channels it goes to."""

    name: str = ""
    """For people and the timeline; default: ``route <n>``."""
    matchers: list[Annotated[str, pydantic.AfterValidator(_valid_matcher)]] = []
    """On ``severity`` (``SEV1``..), ``status``, ``service`` (any of the incident's), and the labels of the
    alert that opened it. Empty: every incident."""
    channels: list[str] = pydantic.Field(min_length=1)
    """Channel names from ``notify.channels``, each optionally ``name:destination`` (another Slack channel id,
    other email addresses)."""
    proceed: bool = pydantic.Field(False, alias="continue")
    """Alertmanager's ``continue``: try the routes after this one too."""
    templates: dict[Literal["internal", "external"], dict[Literal["declared", "update", "resolved"], str]] = {}
    """Templates overriding the shipped ones for what this route sends."""

    model_config = pydantic.ConfigDict(populate_by_name=True)


class RetrySettings(_Section):
    """How a notification that failed for a temporary reason is tried again."""

    first: Duration = timedelta(seconds=5)
    longest: Duration = timedelta(minutes=10)
    give_up_after: Duration = timedelta(hours=2)
    send_timeout: Duration = timedelta(seconds=30)


class NotifySettings(_Section):
    """Who is told of incidents, through which channels, how often (README: Notifications)."""

    channels: dict[str, ChannelSettings] = {}
    """name -> a channel's settings (``type``: slack, pagerduty, teams, email, webhook, statuspage)."""
    routes: list[RouteSettings] | None = None
    """None: the default routes (SEV1 -> pagerduty, slack, statuspage; SEV2 -> pagerduty, slack;
    SEV3 -> slack, email; SEV4 -> slack-team or slack), over the channels of those names that exist."""
    external_url: str = ""
    """The daemon's address as people reach it: incident links are ``<external_url>/api/v1/incidents/<id>``."""
    cadence: dict[Literal["SEV1", "SEV2", "SEV3", "SEV4"], Duration] = {
        "SEV1": timedelta(minutes=30),
        "SEV2": timedelta(hours=1),
        "SEV3": timedelta(hours=4),
    }
    """How often an open incident needs a status update; a severity left out has no reminders."""
    templates: dict[Literal["internal", "external"], dict[Literal["declared", "update", "resolved"], str]] = {}
    """Templates overriding the shipped ones everywhere (a route's own override these)."""
    retry: RetrySettings = RetrySettings()
    concurrency: Annotated[int, pydantic.Field(ge=1, le=64)] = 8
    """Deliveries at once."""
    retention: Duration = timedelta(days=30)
    """How long notifications that ended (sent, failed, interrupted) are kept: the incident's record of who was
    told; pending ones are never forgotten."""

    @pydantic.field_validator("channels")
    @classmethod
    def _names(cls, channels: dict[str, Any]) -> dict[str, Any]:
        return _label_names("channel", channels)

    @pydantic.model_validator(mode="after")
    def _routes_name_channels(self) -> NotifySettings:
        """Every route names configured channels, with destinations those channels can send to."""
        for n, route in enumerate(self.routes or []):
            for target in map(Target.parse, route.channels):
                if target.channel not in self.channels:
                    raise ValueError(f"routes[{n}] names channel {target.channel!r}, not in notify.channels")
                if not target.destination:
                    continue
                problem = channel_types.build(target.channel, self.channels[target.channel]).destination_problem(
                    target.destination
                )
                if problem is not None:
                    raise ValueError(f"routes[{n}]: {target}: {problem}")
        return self

    @pydantic.model_validator(mode="after")
    def _attempts_outlast_channels(self) -> NotifySettings:
        """A channel with a deadline of its own (email's) must end before the sender gives its attempt up."""
        limit = self.retry.send_timeout.total_seconds()
        for name, channel in self.channels.items():
            own = getattr(channel, "timeout", None)
            if isinstance(own, int | float) and own >= limit:
                raise ValueError(
                    f"channel {name!r}: its timeout ({own:g}s) must be shorter than notify.retry.send_timeout"
                    f" ({limit:g}s), or an attempt given up could still deliver"
                )
        return self

    @pydantic.model_validator(mode="after")
    def _templates_render(self) -> NotifySettings:
        """Every configured template parses and renders an example incident (else: the template, the line)."""
        try:
            self.composer()
        except TemplateError as err:
            route = next((r.name for r in self.route_list() if _mentions(r.templates, err)), None)
            raise ValueError(f"{err}" + (f" (route {route!r})" if route else "")) from None
        return self

    def overrides(self) -> dict[str, dict[str, str]]:
        """The configured templates: audience -> name -> source."""
        return {str(a): {str(k): v for k, v in named.items()} for a, named in self.templates.items()}

    def composer(self) -> RouteComposer:
        """What renders each delivery: the route's templates over these over the shipped ones. TemplateError."""
        return RouteComposer(self.overrides(), self.route_list())

    def route_list(self) -> tuple[Route, ...]:
        """The routes, configured or default."""
        if self.routes is None:
            return default_routes(set(self.channels))
        return tuple(
            Route(
                r.name or f"route {n + 1}",
                tuple(matchers.parse(m) for m in r.matchers),
                tuple(Target.parse(t) for t in r.channels),
                r.proceed,
                {str(audience): {str(k): v for k, v in named.items()} for audience, named in r.templates.items()},
            )
            for n, r in enumerate(self.routes)
        )

    def cadence_policy(self) -> Cadence:
        """The update cadence."""
        return Cadence({Severity[k]: v for k, v in self.cadence.items()})

    def link(self, incident: str) -> str:
        """The address of an incident's page (empty without ``external_url``)."""
        return f"{self.external_url.rstrip('/')}/api/v1/incidents/{incident}" if self.external_url else ""


def _mentions(templates: Mapping[str, Mapping[str, str]], err: TemplateError) -> bool:
    return err.name in templates.get(err.audience, {})


def _label_names(kind: str, named: dict[str, Any]) -> dict[str, Any]:
    """``named`` unchanged when every key is a valid label name; else ValueError naming the first that is not."""
    for name in named:
        if not _LABEL_NAME.fullmatch(name):
            raise ValueError(f"{kind} name {name!r}: lowercase letters, digits, - and _ (it is a metric label)")
    return named


def _zone(value: str) -> str:
    """An IANA time zone name the system's database knows (``Europe/Berlin``), kept as text."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone name like Europe/Berlin or UTC") from None
    return value


def _local_time(value: object) -> datetime:
    """A wall-clock date-time without a zone (``2026-12-07T09:00``): the schedule's zone places it."""
    at = _date_time(value)
    if at.tzinfo is not None:
        raise ValueError(f"{value!s}: a rotation's times are local to the schedule's zone: give no offset")
    return at


def _instant(value: object) -> datetime:
    """An instant with its UTC offset (``2026-12-24T18:00:00+01:00``)."""
    at = _date_time(value)
    if at.tzinfo is None:
        raise ValueError(f"{value!s}: give the instant with its UTC offset (2026-12-24T18:00:00+01:00 or ...Z)")
    return at


def _date_time(value: object) -> datetime:
    """An ISO 8601 date-time from text, or as YAML already parsed it."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not an ISO 8601 date and time like 2026-12-07T09:00")


def _pattern(value: object) -> tuple[timedelta, ...]:
    """``hourly``, ``daily``, ``weekly``, or a list of shift lengths repeated in turn (``[4d, 3d]``)."""
    named = {"hourly": HOURLY, "daily": DAILY, "weekly": WEEKLY}
    if isinstance(value, str) and value in named:
        return named[value]
    if isinstance(value, list) and value:
        return tuple(map(parse_duration, value))
    raise ValueError(f"{value!r} is not hourly, daily, weekly, or a list of shift lengths like [4d, 3d]")


ZoneName = Annotated[str, pydantic.AfterValidator(_zone)]
LocalTime = Annotated[
    datetime, pydantic.PlainValidator(_local_time), pydantic.PlainSerializer(datetime.isoformat, return_type=str)
]
Instant = Annotated[
    datetime, pydantic.PlainValidator(_instant), pydantic.PlainSerializer(datetime.isoformat, return_type=str)
]
ShiftPattern = Annotated[
    tuple[timedelta, ...],
    pydantic.PlainValidator(_pattern),
    pydantic.PlainSerializer(lambda p: [d.total_seconds() for d in p], return_type=list[float]),
]


_SLACK_MEMBER = re.compile(r"[UW][A-Z0-9]{2,30}")


class ContactRuleSettings(_Section):
    """Reach a person by ``contact`` ``after`` a step fires (default: at once)."""

    contact: Annotated[str, pydantic.Field(pattern=r"^(slack|email|channel:[^:\s]+(:\S+)?)$")]
    """``slack`` or ``email`` (their ``slack_user``, ``email``, through ``oncall.contacts``), or
    ``channel:NAME`` for a notify channel of their own (a PagerDuty routing key that pages them, an SMS
    gateway webhook), optionally ``channel:NAME:DESTINATION``."""
    after: Duration | None = None


class PersonSettings(_Section):
    """Someone who can be on call: where they live and how they are reached."""

    timezone: ZoneName
    """Their IANA time zone (``Europe/Berlin``)."""
    slack_user: Name | None = None
    """Their Slack member id (``U012AB3CD``)."""
    email: Name | None = None
    pagerduty_user: Name | None = None
    """Their PagerDuty user id (``PXPGF42``)."""
    rules: list[ContactRuleSettings] = []
    """How escalation reaches them, in order (``[{contact: slack}, {contact: email, after: 5m}]``);
    empty: every contact point they have, at once."""

    @pydantic.field_validator("slack_user")
    @classmethod
    def _slack_member(cls, value: str | None) -> str | None:
        if value is not None and not _SLACK_MEMBER.fullmatch(value):
            raise ValueError(f"{value!r} is not a Slack member id (U or W, then capital letters and digits)")
        return value

    def person(self, name: str) -> Person:
        """The person escalation pages."""
        addresses = {k: v for k, v in (("slack", self.slack_user), ("email", self.email)) if v}
        return Person(name, addresses, tuple(Contact(r.contact, r.after or timedelta(0)) for r in self.rules))


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _weekday(value: object) -> int:
    """A weekday by its three-letter name (``mon``), as its number (Monday 0)."""
    if isinstance(value, str) and value in WEEKDAYS:
        return WEEKDAYS.index(value)
    raise ValueError(f"{value!r} is not a weekday: {', '.join(WEEKDAYS)}")


def _time_of_day(value: object) -> time:
    """A local time of day (``"18:00"``), without an offset."""
    if isinstance(value, time):
        return value
    if isinstance(value, int):
        raise ValueError(f'{value!r}: quote the time of day ("18:00"): YAML reads 18:00 unquoted as a number')
    if isinstance(value, str):
        try:
            at = time.fromisoformat(value)
        except ValueError:
            pass
        else:
            if at.tzinfo is None:
                return at
    raise ValueError(f'{value!r} is not a local time of day like "18:00" (no offset: the schedule\'s zone applies)')


Weekday = Annotated[int, pydantic.PlainValidator(_weekday), pydantic.PlainSerializer(WEEKDAYS.__getitem__)]
TimeOfDay = Annotated[time, pydantic.PlainValidator(_time_of_day), pydantic.PlainSerializer(time.isoformat)]
Weekdays = Annotated[list[Weekday], pydantic.Field(min_length=1)]


class ParticipantSettings(_Section):
    """A participant who joins or leaves the rotation at a local date-time (a plain name is always in it)."""

    name: Name
    joins: LocalTime | None = None
    """From the first handoff at or after this, in the schedule's zone, without an offset."""
    leaves: LocalTime | None = None
    """From the first handoff at or after this; before ``joins``: away from ``leaves`` until ``joins``."""

    @pydantic.model_validator(mode="after")
    def _not_both_at_once(self) -> ParticipantSettings:
        if self.joins is not None and self.joins == self.leaves:
            raise ValueError(f"{self.name} joins and leaves at the same time ({self.joins.isoformat()})")
        return self

    def changes(self) -> list[Change]:
        """The joins and leaves these settings describe."""
        found = [Change(self.name, self.joins, joins=True)] if self.joins else []
        return found + ([Change(self.name, self.leaves, joins=False)] if self.leaves else [])


def _participant(value: object) -> object:
    """A plain name stands for a participant who neither joins nor leaves."""
    return {"name": value} if isinstance(value, str) else value


Participant = Annotated[ParticipantSettings, pydantic.BeforeValidator(_participant)]


class OffSlotSettings(_Section):
    """A recurring local window in which a rotation covers nobody, its turns going on underneath."""

    model_config = pydantic.ConfigDict(serialize_by_alias=True)

    days: Weekdays = list(range(7))
    """The days a window begins on (default: every day)."""
    begin: TimeOfDay = pydantic.Field(time(0), alias="from")
    """When it begins, local time (default 00:00)."""
    to: TimeOfDay = time(0)
    """When it ends: that day, or the next when not after ``from`` (default 00:00: the whole day)."""

    def slot(self) -> OffSlot:
        """The off slot these settings describe."""
        return OffSlot(frozenset(self.days), self.begin, self.to)


class RotationSettings(_Section):
    """Participants taking turns, one shift each, shift lengths repeating ``shift``, from ``start``."""

    participants: Annotated[list[Participant], pydantic.Field(min_length=1)]
    """Names from ``oncall.people``, in the order they take their turns, or ``{name, joins, leaves}``."""
    shift: ShiftPattern
    """``hourly``, ``daily``, ``weekly``, or shift lengths repeated in turn (``[4d, 3d]``: Sun–Wed, Thu–Sat)."""
    start: LocalTime
    """When the first participant's first shift begins, in the schedule's zone, without an offset
    (``2026-12-07T09:00``); its time of day is the handoff time, kept across DST."""
    days: Weekdays = list(range(7))
    """The days the rotation is active on (README: On call: active days)."""
    off_slots: list[OffSlotSettings] = []
    """Recurring local windows in which the rotation covers nobody."""

    @pydantic.model_validator(mode="before")
    @classmethod
    def _no_yaml_booleans(cls, data: Any) -> Any:
        """``off:`` and ``on:`` are booleans as YAML keys: say which key is meant."""
        if isinstance(data, dict) and any(isinstance(key, bool) for key in data):
            raise ValueError("a key read as a boolean (YAML turns off: and on: into false and true): write off_slots")
        return data

    @pydantic.model_validator(mode="after")
    def _changes_name_one_participant(self) -> RotationSettings:
        names = [p.name for p in self.participants]
        for p in self.participants:
            if (p.joins or p.leaves) and names.count(p.name) > 1:
                raise ValueError(f"{p.name} joins or leaves but is listed more than once")
        return self

    def rotation(self) -> Rotation:
        """The rotation these settings describe."""
        return Rotation(
            tuple(p.name for p in self.participants),
            self.shift,
            self.start,
            days=frozenset(self.days),
            off=tuple(o.slot() for o in self.off_slots),
            changes=tuple(c for p in self.participants for c in p.changes()),
        )


class LayerSettings(_Section):
    """Rotations in one layer; the most recently started one is in charge."""

    rotations: Annotated[list[RotationSettings], pydantic.Field(min_length=1)]


class OverrideSettings(_Section):
    """``person`` takes the schedule from ``start`` (inclusive) to ``end`` (exclusive)."""

    person: Name
    start: Instant
    end: Instant

    @pydantic.model_validator(mode="after")
    def _ends_after_start(self) -> OverrideSettings:
        if self.end <= self.start:
            raise ValueError(f"the override ends ({self.end.isoformat()}) before it starts ({self.start.isoformat()})")
        return self


class ScheduleSettings(_Section):
    """A schedule: layers from lowest to highest (a higher one wins where it has someone), and overrides."""

    timezone: ZoneName
    """The IANA zone its handoffs happen in."""
    layers: Annotated[list[LayerSettings], pydantic.Field(min_length=1)]
    overrides: list[OverrideSettings] = []
    """A later override wins over an earlier one where they overlap."""

    def schedule(self, name: str) -> Schedule:
        """The schedule these settings describe, named ``name``."""
        return Schedule(
            name,
            ZoneInfo(self.timezone),
            tuple(Layer(tuple(r.rotation() for r in layer.rotations)) for layer in self.layers),
            tuple(Override(o.person, o.start, o.end) for o in self.overrides),
        )


MIN_LINK_SECRET = 32
"""Fewest characters a link secret may have: it is the only thing between a guessed link and an acknowledgement."""
MAX_LINK_TTL = timedelta(days=30)


def _long_secret(value: pydantic.SecretStr) -> pydantic.SecretStr:
    if len(value.get_secret_value()) < MIN_LINK_SECRET:
        raise ValueError(f"a link secret needs at least {MIN_LINK_SECRET} characters (e.g. openssl rand -base64 32)")
    return value


LinkSecret = Annotated[Secret, pydantic.AfterValidator(_long_secret)]


class LinkSettings(_Section):
    """Signed, expiring acknowledge/resolve links in notifications (README: Signed links)."""

    secret: LinkSecret | None = None
    """Signs links (``env:NAME`` reads it from the environment); without it notifications carry no links."""
    previous_secrets: list[LinkSecret] = []
    """Secrets links were signed with before: still accepted until their links expire (rotation)."""
    ttl: Duration = timedelta(hours=24)
    """How long a link works after the notification carrying it was sent (at most 30 days)."""

    @pydantic.field_validator("ttl")
    @classmethod
    def _bounded_ttl(cls, ttl: timedelta) -> timedelta:
        if ttl > MAX_LINK_TTL:
            raise ValueError("at most 30d: a link is a credential")
        return ttl

    def secrets(self) -> list[str]:
        """Every secret a link may be signed with, the signing one first (empty: links are off)."""
        if self.secret is None:
            return []
        return [s.get_secret_value() for s in (self.secret, *self.previous_secrets)]

    def keyring(self) -> Keyring | None:
        """What verifies links (and signs them, first secret), or None without a secret."""
        secrets = self.secrets()
        return keyring_of(secrets) if secrets else None

    def signer(self, external_url: str) -> Signer | None:
        """What signs links into notifications, or None without a secret or ``notify.external_url``."""
        keyring = self.keyring()
        return Signer(keyring, self.ttl, external_url) if keyring and external_url else None

    def off_because(self, external_url: str) -> str | None:
        """Why notifications carry no signed links (said once at start and by ``config check``), or None."""
        if self.secret is None:
            return "notifications carry no acknowledge/resolve links: oncall.links.secret is not set"
        if not external_url:
            return "notifications carry no acknowledge/resolve links: notify.external_url is not set"
        return None
def _ref(text: str) -> str:
    Ref.parse(text)  # ValueError naming what is wrong
    return text


class StepSettings(_Section):
    """Notify ``notify`` at once, then wait ``wait`` for an acknowledgement."""

    notify: Annotated[list[Annotated[str, pydantic.AfterValidator(_ref)]], pydantic.Field(min_length=1)]
    """``person:NAME``, ``schedule:NAME`` (whoever is on call when the step fires) or ``channel:NAME`` (a
    notify channel, optionally ``channel:NAME:DESTINATION``)."""
    wait: Duration = timedelta(minutes=5)


class PolicySettings(_Section):
    """Steps in order; gone through again ``repeat`` more times while nobody acknowledges."""

    steps: Annotated[list[StepSettings], pydantic.Field(min_length=1)]
    repeat: Annotated[int, pydantic.Field(ge=0, le=10)] = 0

    def policy(self, name: str) -> Policy:
        """The policy these settings describe, named ``name``."""
        steps = tuple(Step(tuple(Ref.parse(t) for t in s.notify), s.wait) for s in self.steps)
        return Policy(name, steps, self.repeat)


class PolicyRouteSettings(_Section):
    """Incidents matching ``matchers`` escalate by ``policy`` (the first route that matches decides)."""

    name: str = ""
    matchers: list[MatcherText] = []
    """On ``severity``, ``status``, ``service`` and the opening alert's labels, as notification routes."""
    policy: Name


class CoverageSettings(_Section):
    """The coverage check: how far ahead gaps in the schedules are looked for (README: Coverage)."""

    weeks: Annotated[int, pydantic.Field(ge=1, le=52)] = 4
    """Weeks ahead of now that ``config check``, the engine's start and its daily check look at."""


class OncallSettings(_Section):
    """People, the schedules that say who of them is on call, and how incidents escalate (README: On call)."""

    people: dict[Name, PersonSettings] = {}
    """name -> the person's time zone and contact points."""
    schedules: dict[str, ScheduleSettings] = {}
    """name -> the schedule (its name is a metric label: lowercase letters, digits, - and _)."""
    links: LinkSettings = LinkSettings()
    coverage: CoverageSettings = CoverageSettings()
    policies: dict[str, PolicySettings] | None = None
    """name -> an escalation policy; unset: the practice's ``default`` and ``sev1`` ladders over the
    schedules or people named primary, secondary, manager and lead; ``{}``: no escalation."""
    policy_routes: list[PolicyRouteSettings] = []
    """Which policy an incident escalates by; unmatched: ``sev1`` for a SEV1 if there is one, else ``default``."""
    contacts: dict[Literal["slack", "email"], str] = {}
    """contact kind -> the notify channel that reaches people there; default: the one channel of that type."""

    @pydantic.field_validator("schedules", "policies")
    @classmethod
    def _names(cls, named: dict[str, Any] | None, info: pydantic.ValidationInfo) -> dict[str, Any] | None:
        return None if named is None else _label_names(str(info.field_name).removesuffix("s"), named)

    @pydantic.model_validator(mode="after")
    def _policies_resolve(self) -> OncallSettings:
        """Every route names a policy, every step a configured person or schedule (else: the key path)."""
        policies = self.policy_values()
        for n, route in enumerate(self.policy_routes):
            if route.policy not in policies:
                raise ValueError(f"policy_routes.{n}.policy: {route.policy!r} is not in oncall.policies")
        for name, settings in (self.policies or {}).items():
            for n, step in enumerate(settings.steps):
                for t, text in enumerate(step.notify):
                    ref = Ref.parse(text)
                    known = self.people if ref.kind is RefKind.PERSON else self.schedules
                    if ref.kind is not RefKind.CHANNEL and ref.name not in known:
                        where = f"policies.{name}.steps.{n}.notify.{t}"
                        raise ValueError(f"{where}: {ref.name!r} is not in oncall.{ref.kind.value}s")
        return self

    def policy_values(self) -> dict[str, Policy]:
        """The configured policies, or the conventional ones when none are configured."""
        if self.policies is None:
            people = {name: p.person(name) for name, p in self.people.items()}
            return conventional(people, self.schedule_values())
        return {name: settings.policy(name) for name, settings in self.policies.items()}

    def policy_route_list(self) -> tuple[PolicyRoute, ...]:
        """The policy routes as values."""
        return tuple(
            PolicyRoute(r.name or f"policy route {n}", tuple(matchers.parse(m) for m in r.matchers), r.policy)
            for n, r in enumerate(self.policy_routes)
        )

    def roster(self) -> Roster:
        """People and schedules, as escalation resolves its steps against them."""
        return Roster({name: p.person(name) for name, p in self.people.items()}, self.schedule_values())

    @pydantic.model_validator(mode="after")
    def _people_are_configured(self) -> OncallSettings:
        """Every participant and override names someone in ``oncall.people`` (else: the key path)."""
        for where, person in self._mentions():
            if person not in self.people:
                raise ValueError(f"{where}: {person!r} is not in oncall.people")
        return self

    def _mentions(self) -> list[tuple[str, str]]:
        """(key path, person) for every person a schedule names."""
        found = []
        for name, schedule in self.schedules.items():
            for n, layer in enumerate(schedule.layers):
                for r, rotation in enumerate(layer.rotations):
                    where = f"schedules.{name}.layers.{n}.rotations.{r}.participants"
                    found += [(f"{where}.{p}", person.name) for p, person in enumerate(rotation.participants)]
            found += [(f"schedules.{name}.overrides.{n}.person", o.person) for n, o in enumerate(schedule.overrides)]
        return found

    def schedule_values(self) -> dict[str, Schedule]:
        """The configured schedules as the values ``receiver.oncall.schedules`` evaluates, by name."""
        return {name: settings.schedule(name) for name, settings in self.schedules.items()}


class Settings(_Section):
    """Everything the daemon is configured with."""

    listen: Annotated[Listen, pydantic.PlainValidator(parse_listen)] = Listen(host="127.0.0.1", port=9095)
    data_dir: DirPath = Path("data")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shutdown_timeout: Duration = timedelta(seconds=10)
    server: ServerSettings = ServerSettings()
    webhook: WebhookSettings = WebhookSettings()
    api: ApiSettings = ApiSettings()
    tls: TlsSettings | None = None
    store: StoreSettings = StoreSettings()
    alerts: AlertSettings = AlertSettings()
    engine: EngineSettings = EngineSettings()
    incidents: IncidentSettings = IncidentSettings()
    remediation: RemediationSettings = RemediationSettings()
    evidence: EvidenceSettings = EvidenceSettings()
    notify: NotifySettings = NotifySettings()
    oncall: OncallSettings = OncallSettings()

    def ladders(self) -> Ladders:
        """What escalation decides with (no policies: nothing escalates)."""
        kinds = {name: channel.type for name, channel in self.notify.channels.items()}
        oncall = self.oncall
        return Ladders(
            oncall.policy_values(), oncall.policy_route_list(), oncall.roster(), self._contacts(), kinds
        )

    def coverage_policies(self) -> tuple[dict[str, Policy], set[str]]:
        """The policies whose steps the coverage check looks at (none without channels: nothing escalates),
        and the people a page can reach (a contact point of theirs has a channel)."""
        if not self.notify.channels:
            return {}, set()
        ladders = self.ladders()
        people = ladders.roster.people
        return dict(ladders.policies), {n for n, p in people.items() if any(t for _, t in ladders.reaching(p))}

    def _contacts(self) -> dict[str, str]:
        """contact kind -> channel: as configured, else the one channel of that type (none when several)."""
        found: dict[str, str] = {str(kind): name for kind, name in self.oncall.contacts.items()}
        for kind in CONTACT_KINDS:
            of_kind = [name for name, channel in self.notify.channels.items() if channel.type == kind]
            if kind not in found and len(of_kind) == 1:
                found[kind] = of_kind[0]
        return found

    @pydantic.model_validator(mode="after")
    def _contacts_are_channels(self) -> Settings:
        """``oncall.contacts`` and channel step targets name configured channels of the right type."""
        channels = self.notify.channels
        for kind, name in self.oncall.contacts.items():
            if name not in channels:
                raise ValueError(f"oncall.contacts.{kind}: {name!r} is not in notify.channels")
            if channels[name].type != kind:
                raise ValueError(f"oncall.contacts.{kind}: {name!r} is a {channels[name].type} channel, not {kind}")
        for name, person in self.oncall.people.items():
            for n, rule in enumerate(person.rules):
                own = Contact(rule.contact).channel
                if own is not None and Target.parse(own).channel not in channels:
                    where = f"oncall.people.{name}.rules.{n}.contact"
                    raise ValueError(f"{where}: channel {own!r} is not in notify.channels")
        for policy in self.oncall.policy_values().values():
            for n, step in enumerate(policy.steps):
                for ref in step.targets:
                    if ref.kind is RefKind.CHANNEL and Target.parse(ref.name).channel not in channels:
                        where = f"oncall.policies.{policy.name}.steps.{n}.notify"
                        raise ValueError(f"{where}: channel {ref.name!r} is not in notify.channels")
        return self

    @pydantic.model_validator(mode="after")
    def _api_token_is_its_own(self) -> Settings:
        """Changing incidents needs the API token: one found in Alertmanager's config must not do it."""
        token = self.api.token.get_secret_value() if self.api.token else None
        webhook = self.webhook
        taken = {
            s.get_secret_value()
            for s in (webhook.bearer_token, webhook.basic_auth and webhook.basic_auth.password)
            if s
        }
        if token is not None and token in taken:
            raise ValueError("api.token must differ from the webhook's credentials")
        return self

    @property
    def database_path(self) -> Path:
        """Where the SQLite database lives."""
        return self.store.path or self.data_dir / "receiver.db"


def load(
    path: Path | None,
    env: Mapping[str, str],
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build settings from a file (or defaults), secret env vars and CLI overrides."""
    raw = _read_file(path) if path is not None else {}
    from_env: dict[str, str] = {}
    for var, key_path in ENV_SECRETS.items():
        if var in env:  # set but empty is an empty credential, refused like one in the file
            _set_path(raw, key_path, env[var])
            from_env[".".join(key_path)] = var
    raw.update(overrides or {})
    problems = _secrets_from_env(raw, env, from_env) + _link_secrets_from_env(raw, env, from_env)
    if problems:
        raise ConfigError(problems)
    try:
        return Settings.model_validate(raw)
    except pydantic.ValidationError as err:
        raise ConfigError([_from(_problem(e), from_env) for e in err.errors()]) from None


def _secrets_from_env(raw: dict[str, Any], env: Mapping[str, str], from_env: dict[str, str]) -> list[tuple[str, str]]:
    """Put the environment's values in channel settings written ``env:NAME``; the names missing from it."""
    problems = []
    channels = raw.get("notify", {}).get("channels") if isinstance(raw.get("notify"), dict) else None
    for name, settings in (channels or {}).items() if isinstance(channels, dict) else ():
        if not isinstance(settings, dict):
            continue
        for key, value in settings.items():
            if isinstance(value, str) and value.startswith("env:"):
                var = value.removeprefix("env:")
                path = f"notify.channels.{name}.{key}"
                if var not in env:
                    problems.append((path, f"environment variable {var} is not set"))
                    continue
                settings[key] = env[var]
                from_env[path] = var
    return problems


def _link_secrets_from_env(
    raw: dict[str, Any], env: Mapping[str, str], from_env: dict[str, str]
) -> list[tuple[str, str]]:
    """Put the environment's values in ``oncall.links`` secrets written ``env:NAME``; the names missing from it."""
    oncall = raw.get("oncall")
    links = oncall.get("links") if isinstance(oncall, dict) else None
    if not isinstance(links, dict):
        return []
    problems = []
    previous = links.get("previous_secrets")
    places: list[tuple[Any, Any, str]] = [(links, "secret", "oncall.links.secret")]
    if isinstance(previous, list):
        places += [(previous, n, f"oncall.links.previous_secrets.{n}") for n in range(len(previous))]
    for holder, key, path in places:
        value = holder.get(key) if isinstance(holder, dict) else holder[key]
        if not (isinstance(value, str) and value.startswith("env:")):
            continue
        var = value.removeprefix("env:")
        if var not in env:
            problems.append((path, f"environment variable {var} is not set"))
            continue
        holder[key] = env[var]
        from_env[path] = var
    return problems


def _from(problem: tuple[str, str], from_env: Mapping[str, str]) -> tuple[str, str]:
    """Say which environment variable a secret's problem came from."""
    key, message = problem
    var = from_env.get(key)
    return (key, f"{message} (from {var})") if var else problem


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError([(str(path), f"cannot read: {err.strerror}")]) from None
    except yaml.YAMLError as err:
        raise ConfigError([(str(path), f"not valid YAML: {err}")]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([(str(path), "the top level must be a mapping of settings")])
    return data


def _set_path(raw: dict[str, Any], key_path: tuple[str, ...], value: str) -> None:
    node = raw
    for key in key_path[:-1]:
        if node.get(key) is None:
            node[key] = {}
        child = node[key]
        if not isinstance(child, dict):
            return  # a wrong type in the file: validation reports it
        node = child
    node[key_path[-1]] = value


def _problem(error: Any) -> tuple[str, str]:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return key, "unknown setting"
    if error["type"] == "missing":
        return key, "required setting is missing"
    return key, str(error["msg"]).removeprefix("Value error, ")
