"""Which network class a model is: HAN, or a method's own network built on it (CMPAE's, CoLeaF's, UWAV's).

Checkpoints store `network` in their model options only where it is not HAN; a released state
dict is recognised by the modules only its network has."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from avvp.model.cmpae import CMPAENet
from avvp.model.coleaf import CoLeaFNet
from avvp.model.han import HAN
from avvp.model.uwav_han import UwavHAN

NETWORKS: dict[str, type[HAN]] = {"han": HAN, "cmpae": CMPAENet, "coleaf": CoLeaFNet, "uwav": UwavHAN}
# A module that only one network has, by which its released state dicts are recognised.
# CoLeaF's network is CMPAE's plus unused tokens, so it is looked for first.
SIGNATURES = {"coleaf": "hat_encoder.layers.0.cls_tokens_a", "cmpae": "fc_prob_beta.weight",
              "uwav": "fc_fusion.layers.0.weight"}


def build_network(n_classes: int, network: str = "han", **options: Any) -> HAN:
    """The network called `network` with its constructor `options` (a checkpoint's model options)."""
    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}; known: {', '.join(NETWORKS)}")
    return NETWORKS[network](n_classes, **options)


def released_network(state: Mapping[str, Any]) -> str:
    """The network a released state dict (possibly DataParallel-prefixed) belongs to."""
    keys = {k.removeprefix("module.") for k in state}
    return next((name for name, key in SIGNATURES.items() if key in keys), "han")
