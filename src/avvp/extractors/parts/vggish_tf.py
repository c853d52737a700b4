"""Convert the official TensorFlow VGGish checkpoint (`vggish_model.ckpt`) to the port's state dict.

    python -m avvp.extractors.parts.vggish_tf vggish_model.ckpt vggish.pth

Needs TensorFlow (`pip install 'avvp[tf]'`), imported only here and only when a checkpoint is read.
The result loads into `avvp.extractors.vggish.VGGish` (and the PyTorch port) with strict names: TF-Slim's
convolution kernels (H, W, in, out) become (out, in, H, W), its fully connected matrices (in, out)
become (out, in). The first fully connected layer needs no reordering, because VGGish flattens its
last feature map in TensorFlow's (H, W, C) order.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from avvp.base.atomic import atomic_output

# port parameter prefix -> TF-Slim variable scope in the official graph
LAYERS = {
    "features.0": "vggish/conv1",
    "features.3": "vggish/conv2",
    "features.6": "vggish/conv3/conv3_1",
    "features.8": "vggish/conv3/conv3_2",
    "features.11": "vggish/conv4/conv4_1",
    "features.13": "vggish/conv4/conv4_2",
    "embeddings.0": "vggish/fc1/fc1_1",
    "embeddings.2": "vggish/fc1/fc1_2",
    "embeddings.4": "vggish/fc2",
}


def convert(get_tensor: Callable[[str], np.ndarray]) -> dict[str, torch.Tensor]:
    """The port's state dict from a reader of TF variables by name."""
    state: dict[str, torch.Tensor] = {}
    for prefix, scope in LAYERS.items():
        kernel = np.asarray(get_tensor(f"{scope}/weights"), dtype=np.float32)
        kernel = kernel.transpose(3, 2, 0, 1) if kernel.ndim == 4 else kernel.T
        state[f"{prefix}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel))
        state[f"{prefix}.bias"] = torch.from_numpy(np.asarray(get_tensor(f"{scope}/biases"), dtype=np.float32))
    return state


def convert_checkpoint(checkpoint: str | Path, out: str | Path) -> None:
    """Read a TF checkpoint, check the result against the network, write a .pth atomically."""
    try:
        import tensorflow as tf
    except ImportError as err:
        raise RuntimeError("converting a TensorFlow checkpoint needs tensorflow: pip install 'avvp[tf]'") from err
    from avvp.extractors.vggish import VGGish

    try:
        reader = tf.train.load_checkpoint(str(checkpoint))
    except Exception as err:  # TF raises several error types for unreadable checkpoints
        raise ValueError(f"{checkpoint}: not a readable TensorFlow checkpoint ({err})") from err
    try:
        state = convert(reader.get_tensor)
    except Exception as err:
        raise ValueError(f"{checkpoint}: not a VGGish checkpoint ({err})") from err
    VGGish().load_state_dict(state, strict=True)
    with atomic_output(out) as fh:
        torch.save(state, fh)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m avvp.extractors.parts.vggish_tf", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="the official vggish_model.ckpt")
    parser.add_argument("out", help="the PyTorch state dict to write (.pth)")
    args = parser.parse_args(argv)
    try:
        convert_checkpoint(args.checkpoint, args.out)
    except (ValueError, RuntimeError) as err:
        print(f"avvp.extractors.parts.vggish_tf: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
