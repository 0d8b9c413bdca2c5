"""``expand_pvc``: grow a PersistentVolumeClaim's storage request by a step, up to a cap, when its class allows it.

``KubePersistentVolumeFillingUp`` fires before a volume is full; with a
storage class that allows expansion (``allowVolumeExpansion: true``), asking
for more storage is the remedy that loses nothing. The claim's
``spec.resources.requests.storage`` grows by ``by`` (a quantity, ``10Gi``,
or a percentage, ``50%``, of the current request, rounded up to its unit) up
to ``cap``. The step fails, saying why, and changes nothing when expansion
cannot or should not happen: the claim is not bound, has no storage class,
its class does not allow expansion, a resize is already under way (a
``Resizing`` or ``FileSystemResizePending`` condition, or a request above the
capacity the volume has), or it is at the cap already. The decision is a
pure function of the claim and its class; the storage class is
cluster-scoped, so reading it takes a ClusterRole rule. The effect shows the
request and the capacity before and after.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import pydantic

from receiver.cluster import ActionFailed, Body, Cluster, Effect, Ref, Resource
from receiver.playbooks import quantity
from receiver.playbooks.actions.base import Action, Grant, Inputs, Render, StepBase, on_cluster, patch_one
from receiver.playbooks.actions.targets import Target

PVC = Resource("PersistentVolumeClaim", "", "v1", "persistentvolumeclaims")
STORAGECLASS = Resource("StorageClass", "storage.k8s.io", "v1", "storageclasses", namespaced=False)
RESIZING = frozenset({"Resizing", "FileSystemResizePending"})


def _quantity(text: str) -> str:
    if quantity.parse(text) <= 0:  # InvalidQuantity is a ValueError naming the text
        raise ValueError(f"{text!r} is not a positive size")
    return text


def _growth(text: str) -> str:
    if text.endswith("%"):
        if not text[:-1].isdigit() or not 1 <= int(text[:-1]) <= 1000:
            raise ValueError(f"{text!r}: a percentage is 1% to 1000%")
        return text
    return _quantity(text)


Quantity = Annotated[str, pydantic.AfterValidator(_quantity)]
Growth = Annotated[str, pydantic.AfterValidator(_growth)]


class PvcTarget(Target):
    """A PersistentVolumeClaim."""

    kind: Literal["PersistentVolumeClaim"] = "PersistentVolumeClaim"


class ExpandPvc(StepBase):
    """Grow a claim's storage request by ``by`` (``10Gi`` or ``50%``) up to ``cap``, if its class allows it."""

    action: Literal["expand_pvc"]
    target: PvcTarget
    by: Growth
    cap: Quantity
    """The largest request it may set."""


def plan(step: ExpandPvc, render: Render) -> dict[str, Any]:
    """The claim, the growth and the cap (as written: quantities are read when the claim is)."""
    return step.target.rendered(render) | {"by": step.by, "cap": step.cap}


def grown(current: str, by: str, cap: str) -> str:
    """The request to set: ``current`` grown by ``by`` (a quantity or a percentage), rounded up to ``current``'s unit
    (at most a Gi: ``quantity.step``), at most ``cap``, in ``current``'s unit when whole. Pure."""
    now, limit, unit = quantity.parse(current), quantity.parse(cap), quantity.unit(current)
    growth = math.ceil(now * int(by[:-1]) / 100) if by.endswith("%") else quantity.parse(by)
    one = quantity.step(unit)
    want = min(limit, math.ceil((now + max(growth, 1)) / one) * one)
    return quantity.format_bytes(max(want, now), unit)


def refusal(claim: Body, storage_class: Body | None, cap: str) -> str | None:
    """Why the claim must not be expanded now (None: it may be). Pure."""
    spec, status = claim.get("spec") or {}, claim.get("status") or {}
    name = f"PersistentVolumeClaim {(claim.get('metadata') or {}).get('namespace')}/{_name(claim)}"
    if status.get("phase") != "Bound":
        return f"{name} is not bound (phase {status.get('phase') or 'unknown'}): nothing to expand"
    if not spec.get("storageClassName") or storage_class is None:
        return f"{name} has no storage class: it cannot be expanded"
    if storage_class.get("allowVolumeExpansion") is not True:
        return f"its StorageClass {_name(storage_class)} does not allow volume expansion (allowVolumeExpansion)"
    resizing = sorted(c.get("type") for c in status.get("conditions") or [] if c.get("type") in RESIZING)
    requested, capacity = _requested(claim), (status.get("capacity") or {}).get("storage")
    if resizing:
        return f"{name}: a resize is already in progress ({', '.join(resizing)})"
    if requested is None or capacity is None:
        return f"{name} shows no storage request or no capacity: nothing to expand from"
    if quantity.parse(requested) > quantity.parse(capacity):
        return f"{name}: a resize is already in progress (requested {requested}, capacity {capacity})"
    if quantity.parse(requested) >= quantity.parse(cap):
        return f"{name} is already at the cap {cap} (requested {requested}): not expanded"
    return None


def _name(obj: Body) -> str:
    return str((obj.get("metadata") or {}).get("name"))


def _requested(claim: Body) -> str | None:
    found = ((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}
    return found.get("storage")


async def expand_pvc(cluster: Cluster, namespace: str, name: str, *, by: str, cap: str) -> Effect:
    """Grow the claim's request as ``grown`` decides, unless ``refusal`` says why not (ActionFailed)."""
    target = Ref(PVC, namespace, name)

    def decide(obj: Body) -> Body | None:
        class_name = (obj.get("spec") or {}).get("storageClassName")
        storage_class = cluster.get(Ref(STORAGECLASS, None, class_name)) if class_name else None
        refused = refusal(obj, storage_class, cap)
        if refused is not None:
            raise ActionFailed(refused)
        return {"spec": {"resources": {"requests": {"storage": grown(str(_requested(obj)), by, cap)}}}}

    def state(obj: Body | None) -> dict[str, Any]:
        capacity = (((obj or {}).get("status") or {}).get("capacity") or {}).get("storage")
        return {"requested": _requested(obj or {}), "capacity": capacity}

    def predict(before: Mapping[str, Any], body: Body) -> dict[str, Any]:
        return {**before, "requested": body["spec"]["resources"]["requests"]["storage"]}

    return await patch_one(cluster, "expand_pvc", target, decide, state, predict)


async def _execute(cluster: Cluster, i: Inputs) -> Effect:
    return await expand_pvc(cluster, i["namespace"], i["name"], by=i["by"], cap=i["cap"])


ACTION = Action(
    "expand_pvc",
    ExpandPvc,
    plan,
    on_cluster(_execute),
    grants={"PersistentVolumeClaim": (Grant(PVC, ("get", "patch")), Grant(STORAGECLASS, ("get",)))},
    default_kind="PersistentVolumeClaim",
    example={
        "action": "expand_pvc",
        "target": {"namespace": "shop", "name": "data-db-0"},
        "by": "50%",
        "cap": "200Gi",
    },
)
