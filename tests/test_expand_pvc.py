"""``expand_pvc`` and the quantities it computes with: tables and properties for the arithmetic and the decision,
the emulator for what it reads and writes (a claim, its StorageClass: cluster-scoped, a ClusterRole rule)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from receiver.cluster import ActionFailed
from receiver.playbooks import quantity
from receiver.playbooks.actions.base import NamespacePolicy
from receiver.playbooks.actions.expand_pvc import expand_pvc, grown, refusal
from receiver.playbooks.model import Playbook, load_file
from receiver.playbooks.permissions import CLUSTER_SCOPED, Permission, needs
from receiver.playbooks.plan import AlertFacts, plan
from tests.test_chart import manifests, remediation_roles
from tests.test_kube import NOW, PVCS, STORAGECLASSES, claim, kube, put, storage_class, stored
from tests.test_permissions import _permission

ROOT = Path(__file__).resolve().parent.parent
GI = 1024**3


def populate(emulator: Any) -> None:
    put(emulator, STORAGECLASSES, None, "standard", storage_class("standard", True))
    put(emulator, STORAGECLASSES, None, "fixed", storage_class("fixed", None))


# Quantities.


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10Gi", 10 * GI),
        ("1.5Gi", 3 * GI // 2),
        ("512Mi", 512 * 1024**2),
        ("1Ti", 1024**4),
        ("100Ki", 102400),
        ("10G", 10 * 10**9),
        ("500M", 500 * 10**6),
        ("2k", 2000),
        ("1E", 10**18),
        ("1e3", 1000),
        ("1E3", 1000),
        ("1073741824", GI),
        ("+5", 5),
        ("1500m", 2),  # 1.5 bytes: a request rounds up to whole bytes
        (".5Ki", 512),
    ],
)
def test_quantities_are_read_as_bytes(text: str, expected: int) -> None:
    assert quantity.parse(text) == expected


@pytest.mark.parametrize("text", ["", "Gi", "10 Gi", "10GB", "10gi", "-1Gi", "1e", "ten", "1e99"])
def test_what_is_not_a_quantity_is_refused(text: str) -> None:
    with pytest.raises(quantity.InvalidQuantity):
        quantity.parse(text)


@pytest.mark.parametrize(
    ("value", "prefer", "expected"),
    [
        (15 * GI, "Gi", "15Gi"),
        (15 * GI, "", "15Gi"),
        (1536 * 1024**2, "Gi", "1536Mi"),
        (15 * 10**9, "G", "15G"),
        (1024**4, "Gi", "1024Gi"),
        (1024**4, "", "1Ti"),
        (12345, "Gi", "12345"),
        (0, "Gi", "0"),
    ],
)
def test_sizes_are_written_in_the_unit_they_were_read_in_when_whole(value: int, prefer: str, expected: str) -> None:
    assert quantity.format_bytes(value, prefer) == expected


@given(st.integers(min_value=0, max_value=2**62), st.sampled_from(["", "Ki", "Mi", "Gi", "Ti", "k", "M", "G"]))
def test_a_written_size_reads_back_as_itself(value: int, prefer: str) -> None:
    assert quantity.parse(quantity.format_bytes(value, prefer)) == value


# The decision.


@pytest.mark.parametrize(
    ("current", "by", "cap", "expected"),
    [
        ("10Gi", "50%", "100Gi", "15Gi"),
        ("10Gi", "33%", "100Gi", "14Gi"),  # 13.3Gi rounded up to the claim's unit
        ("10Gi", "5Gi", "100Gi", "15Gi"),
        ("10Gi", "512Mi", "100Gi", "11Gi"),  # at least one whole unit of the claim's
        ("10Gi", "50%", "12Gi", "12Gi"),  # never above the cap
        ("10Gi", "50%", "12500Mi", "12500Mi"),
        ("100G", "10%", "1T", "110G"),
        ("1Ti", "50%", "2Ti", "1536Gi"),  # a whole number of the claim's unit, else the largest whole one
        ("1073741824", "1Gi", "10Gi", "2Gi"),
        ("10Gi", "1%", "100Gi", "11Gi"),
    ],
)
def test_the_new_request(current: str, by: str, cap: str, expected: str) -> None:
    assert grown(current, by, cap) == expected


@given(
    st.integers(min_value=1, max_value=4096),
    st.sampled_from(["Mi", "Gi", "G"]),
    st.one_of(st.integers(min_value=1, max_value=1000).map(lambda p: f"{p}%"), st.sampled_from(["1Gi", "100Mi", "5G"])),
    st.integers(min_value=1, max_value=8192),
)
def test_the_new_request_grows_never_past_the_cap(amount: int, unit: str, by: str, cap_gi: int) -> None:
    current, cap = f"{amount}{unit}", f"{cap_gi}Gi"
    if quantity.parse(current) >= quantity.parse(cap):
        return  # refused before: see test_what_refuses_an_expansion
    new = quantity.parse(grown(current, by, cap))
    assert quantity.parse(current) < new <= quantity.parse(cap)


@pytest.mark.parametrize(
    ("pvc", "sc", "reason"),
    [
        (claim(), storage_class(), None),
        (claim(storage_class=None), None, "PersistentVolumeClaim shop/data-db-0 has no storage class"),
        (
            claim(storage_class="fixed"),
            storage_class("fixed", None),
            "StorageClass fixed does not allow volume expansion",
        ),
        (
            claim(storage_class="fixed"),
            storage_class("fixed", False),
            "StorageClass fixed does not allow volume expansion",
        ),
        (claim(conditions=("Resizing",)), storage_class(), "a resize is already in progress (Resizing)"),
        (
            claim(conditions=("FileSystemResizePending",)),
            storage_class(),
            "a resize is already in progress (FileSystemResizePending)",
        ),
        (claim("data-db-0", "15Gi", "10Gi"), storage_class(), "in progress (requested 15Gi, capacity 10Gi)"),
        (claim(requested="50Gi"), storage_class(), "is already at the cap 50Gi (requested 50Gi): not expanded"),
        (claim(phase="Pending"), storage_class(), "is not bound (phase Pending)"),
    ],
)
def test_what_refuses_an_expansion(pvc: dict[str, Any], sc: dict[str, Any] | None, reason: str | None) -> None:
    found = refusal(pvc, sc, "50Gi")
    assert found == reason if reason is None else (found is not None and reason in found), found


# Against the emulator.


@pytest.mark.kmock(cls=kmock.KubernetesEmulator)
async def test_it_expands_a_claim_whose_class_allows_it_and_records_the_sizes(kmock: Any) -> None:
    populate(kmock)
    put(kmock, PVCS, "shop", "data-db-0", claim())
    effect = await expand_pvc(kube(kmock), "shop", "data-db-0", by="50%", cap="100Gi")
    assert (effect.before, effect.after) == (
        {"requested": "10Gi", "capacity": "10Gi"},
        {"requested": "15Gi", "capacity": "10Gi"},  # the volume grows later: the kubelet and the driver resize it
    )
    assert stored(kmock, PVCS, "shop", "data-db-0")["spec"]["resources"]["requests"] == {"storage": "15Gi"}
    assert [(r.method, r.url.path) for r in list(kmock)] == [
        ("GET", "/api/v1/namespaces/shop/persistentvolumeclaims/data-db-0"),
        ("GET", "/apis/storage.k8s.io/v1/storageclasses/standard"),
        ("PATCH", "/api/v1/namespaces/shop/persistentvolumeclaims/data-db-0"),
    ]
    with pytest.raises(ActionFailed, match=r"a resize is already in progress \(requested 15Gi, capacity 10Gi\)"):
        await expand_pvc(kube(kmock), "shop", "data-db-0", by="50%", cap="100Gi")  # a retry does not grow it twice
    assert len(list(kmock["patch"])) == 1


@pytest.mark.kmock(cls=kmock.KubernetesEmulator)
@pytest.mark.parametrize(
    ("pvc", "reason"),
    [
        (claim(storage_class="fixed"), "its StorageClass fixed does not allow volume expansion"),
        (claim(storage_class=None), "has no storage class: it cannot be expanded"),
        (claim(requested="100Gi"), "already at the cap 100Gi"),
        (claim(conditions=("FileSystemResizePending",)), "a resize is already in progress"),
    ],
)
async def test_it_refuses_and_changes_nothing(kmock: Any, pvc: dict[str, Any], reason: str) -> None:
    populate(kmock)
    put(kmock, PVCS, "shop", "data-db-0", pvc)
    with pytest.raises(ActionFailed, match=reason):
        await expand_pvc(kube(kmock), "shop", "data-db-0", by="10Gi", cap="100Gi")
    assert list(kmock["patch"]) == []


@pytest.mark.kmock(cls=kmock.KubernetesEmulator)
async def test_a_dry_run_says_what_it_would_ask_for(kmock: Any) -> None:
    populate(kmock)
    put(kmock, PVCS, "shop", "data-db-0", claim())
    effect = await expand_pvc(kube(kmock, dry_run=True), "shop", "data-db-0", by="10Gi", cap="100Gi")
    assert (effect.dry_run, effect.patch, effect.after["requested"]) == (
        True,
        {"spec": {"resources": {"requests": {"storage": "20Gi"}}}},
        "20Gi",
    )
    assert list(kmock["patch"]) == []


@pytest.mark.kmock(cls=kmock.KubernetesEmulator)
async def test_it_needs_exactly_what_its_requests_use_and_the_class_from_a_cluster_role(kmock: Any) -> None:
    populate(kmock)
    put(kmock, PVCS, "shop", "data-db-0", claim())
    await expand_pvc(kube(kmock), "shop", "data-db-0", by="10Gi", cap="100Gi")
    assert {_permission(r) for r in list(kmock)} == needs("expand_pvc")
    assert Permission("storage.k8s.io", "storageclasses", "get") in needs("expand_pvc")
    assert "storageclasses" in CLUSTER_SCOPED


PLAYBOOK = {
    "apiVersion": "receiver/v1",
    "kind": "Playbook",
    "metadata": {"name": "volume-filling-up"},
    "spec": {
        "trigger": {"alertname": "KubePersistentVolumeFillingUp"},
        "steps": [
            {
                "name": "expand",
                "action": "expand_pvc",
                "target": {
                    "namespace": "{{ alert.labels.namespace }}",
                    "name": "{{ alert.labels.persistentvolumeclaim }}",
                },
                "by": "50%",
                "cap": "200Gi",
            }
        ],
    },
}


def test_the_model_checks_the_sizes_and_the_plan_renders_the_claim(tmp_path: Path) -> None:
    for by, cap, complaint in (
        ("ten", "200Gi", "is not a Kubernetes quantity"),
        ("50%", "0", "not a positive size"),
        ("0%", "1Gi", "a percentage is 1% to 1000%"),
    ):
        step = PLAYBOOK["spec"]["steps"][0] | {"by": by, "cap": cap}  # type: ignore[index]
        file = tmp_path / "bad.yaml"
        file.write_text(yaml.safe_dump(PLAYBOOK | {"spec": {"trigger": {"alertname": "X"}, "steps": [step]}}))
        problems = load_file(file)
        assert isinstance(problems, list) and complaint in str(problems[0]), problems
    alert = AlertFacts(
        "0123456789abcdef",
        "firing",
        {
            "alertname": "KubePersistentVolumeFillingUp",
            "namespace": "shop",
            "persistentvolumeclaim": "data-db-0",
            "job": "kubelet",
            "metrics_path": "/metrics",
            "service": "kube-prometheus-stack-kubelet",
            "severity": "critical",
        },
        {},
        NOW,
    )
    [step] = plan(Playbook.model_validate(PLAYBOOK), alert, NamespacePolicy()).steps
    assert step.inputs == {
        "kind": "PersistentVolumeClaim",
        "namespace": "shop",
        "name": "data-db-0",
        "by": "50%",
        "cap": "200Gi",
        "timeout_seconds": 60.0,
    }


def test_the_chart_reads_storage_classes_through_a_cluster_role() -> None:
    docs = manifests(
        {
            "remediation": {
                "shippedPlaybooks": {p.stem: False for p in (ROOT / "playbooks").glob("*.yaml")},
                "playbooks": {"volume-filling-up": PLAYBOOK},
            }
        }
    )
    [role] = remediation_roles(docs, "Role")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "patch"]}]
    [cluster_role] = remediation_roles(docs, "ClusterRole")
    assert cluster_role["rules"] == [
        {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get"]}
    ]
