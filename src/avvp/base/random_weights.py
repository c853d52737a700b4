"""The warning that numbers, events or figures come from features of RANDOM extractor weights,
worded once for every place that shows it (metrics, report figures, parsed videos), from the
weights records of the kinds that made the features (`avvp.features.weights`)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def random_weight_kinds(records: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The kinds, in the records' order, whose features (all or some shards: a `mixed` record lists
    its shards' `records`) come from random weights."""
    return [kind for kind, record in records.items()
            if record.get("weights") == "random"
            or any(r.get("weights") == "random" for r in record.get("records", ()))]


def random_weights_text(kinds: Sequence[str], consequence: str) -> str | None:
    """`features from RANDOM weights (KIND, ...): CONSEQUENCE`, or None when no kind is random."""
    if not kinds:
        return None
    return f"features from RANDOM weights ({', '.join(kinds)}): {consequence}"
