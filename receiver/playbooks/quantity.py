"""Kubernetes resource quantities (``10Gi``, ``500M``, ``1.5Ti``, ``1e9``): read as bytes, written back readably.

Expanding a volume claim is arithmetic on its ``storage`` request, which the
API server writes as a quantity: a decimal number and a suffix, binary
(``Ki`` ... ``Ei``, powers of 1024), decimal (``k`` ... ``E``, powers of
1000, and ``m``, ``u``, ``n`` below one) or an exponent (``e6``). Sizes are
whole bytes here (a fraction rounds up, as a request must fit); a size is
written in the unit it was read in when it is a whole number of that unit,
else the largest unit it is a whole number of, else in bytes; a grown size
is rounded up to its unit, or to a Gi (a G) for larger units (``step``). Pure.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

BINARY = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "Pi": 1024**5, "Ei": 1024**6}
DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
SMALL = {"m": Fraction(1, 10**3), "u": Fraction(1, 10**6), "n": Fraction(1, 10**9)}
_QUANTITY = re.compile(
    r"^\+?(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][-+]?[0-9]+)?$"
)
LARGEST = 10**30
"""Bytes beyond any volume (1,000 yottabytes): a larger quantity is refused rather than computed with."""


class InvalidQuantity(ValueError):
    """Not a Kubernetes quantity of bytes."""


def parse(text: str) -> int:
    """The whole bytes ``text`` says (a fraction rounds up). InvalidQuantity if it is not a quantity."""
    found = _QUANTITY.match(text.strip())
    if found is None:
        raise InvalidQuantity(f"{text!r} is not a Kubernetes quantity (e.g. 10Gi, 500M, 1073741824)")
    suffix = found["suffix"] or ""
    factor = Fraction(BINARY.get(suffix) or DECIMAL.get(suffix) or SMALL.get(suffix) or 1)
    if suffix and factor == 1:  # an exponent: e6, E-3
        exponent = int(suffix[1:])
        if abs(exponent) > 30:
            raise InvalidQuantity(f"{text!r}: the exponent is out of range")
        factor = Fraction(10) ** exponent
    value = math.ceil(Fraction(found["number"]) * factor)
    if value > LARGEST:
        raise InvalidQuantity(f"{text!r} is larger than any volume")
    return value


def unit(text: str) -> str:
    """The suffix of a quantity (``Gi`` of ``10Gi``; ``""`` for bytes or an exponent)."""
    suffix = text.strip().lstrip("+0123456789.")
    return suffix if suffix in BINARY or suffix in DECIMAL else ""


def size(unit_of: str) -> int:
    """The bytes of one ``unit_of`` (1 for ``""``)."""
    return BINARY.get(unit_of) or DECIMAL.get(unit_of) or 1


def step(unit_of: str) -> int:
    """What a size in ``unit_of`` is rounded up to: one of it, but at most a Gi (or a G): a 1Ti claim grown by
    half is 1536Gi, not 2Ti."""
    return min(size(unit_of), BINARY["Gi"] if unit_of in BINARY else DECIMAL["G"])


def format_bytes(value: int, prefer: str = "") -> str:
    """``value`` bytes as a quantity: in ``prefer`` if a whole number of it, else the largest whole unit (binary
    first), else plain bytes."""
    if value < 0:
        raise ValueError(f"a size cannot be negative: {value}")
    units = [prefer] if prefer else []
    units += sorted(BINARY, key=BINARY.__getitem__, reverse=True) + sorted(
        DECIMAL, key=DECIMAL.__getitem__, reverse=True
    )
    for suffix in units:
        if value and value % size(suffix) == 0:
            return f"{value // size(suffix)}{suffix}"
    return str(value)
