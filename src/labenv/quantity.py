"""Kubernetes resource quantities: parse, add up and format back, for quota sizing and plans."""

from __future__ import annotations

import re
from decimal import Decimal

from labenv.errors import InvalidInput

_SUFFIX = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")


def parse(text: str | int | float, field: str = "quantity") -> Decimal:
    """`250m` -> 0.25, `1Gi` -> 1073741824; anything else is an error naming the field."""
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise InvalidInput(f"{field}: {text!r} is not a Kubernetes quantity such as 250m, 1, 512Mi or 2Gi")
    return Decimal(match.group(1)) * _SUFFIX[match.group(2) or ""]


def cpu(value: Decimal) -> str:
    """Cores -> the shortest exact form (`1500m`, `2`)."""
    millis = int((value * 1000).to_integral_value(rounding="ROUND_CEILING"))
    return f"{millis // 1000}" if millis % 1000 == 0 else f"{millis}m"


def memory(value: Decimal) -> str:
    """Bytes -> Mi (rounded up), or Gi when exact."""
    mebibytes = int((value / _SUFFIX["Mi"]).to_integral_value(rounding="ROUND_CEILING"))
    return f"{mebibytes // 1024}Gi" if mebibytes % 1024 == 0 and mebibytes else f"{mebibytes}Mi"
