"""VGGish in PyTorch: the official AudioSet front end, the network, and the optional post-processor.

The front end follows the official `mel_features`/`vggish_input` step by step (PROTOCOL §2), in
float64 numpy like the original: mono by channel mean, 16 kHz, frames of 400 samples every 160
without centring or padding, periodic Hann window, |rfft| of length 512, a 64-band HTK mel matrix
(125-7500 Hz, triangles drawn in mel space over the spectrogram bins, DC bin zeroed),
log(mel + 0.01), then non-overlapping 96-frame examples with the incomplete tail dropped.

The network keeps the parameter names of the PyTorch port (`features.N.*`, `embeddings.N.*`) so that
its `vggish-10086976.pth` loads with strict=True. The last fully connected layer is followed by a
ReLU by default, as in the graph the LLP authors used (PROTOCOL §2); `final_relu=False` gives the
newer official graph.

Random weights (`random_network`): He-normal weights and zero biases, which keep activations at
the input's scale through its ReLU stack (VGGish has no batch norm to calibrate).

Resampling (only for WAVs not already at 16 kHz; the pipeline's audio step writes 16 kHz) uses a
Hann-windowed sinc filter (32 zero crossings, cutoff 0.99 of the lower Nyquist), not resampy's Kaiser
filter, so resampled input agrees with the official front end up to the filter's difference.
"""
from __future__ import annotations

import math
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from avvp.base.files import load_refusal
from avvp.extractors import Extractor
from avvp.extractors.parts.calibration import seeded

SAMPLE_RATE = 16000
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
FFT_LENGTH = 512
N_BANDS = 64
MEL_LOW_HZ = 125.0
MEL_HIGH_HZ = 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96  # 0.96 s, examples do not overlap
EMBEDDING_SIZE = 128
QUANTIZE_RANGE = (-2.0, 2.0)
PCA_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish_pca_params-970ea276.pth"


# ----------------------------------------------------------------------------- audio input


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A PCM WAV as float64 samples in [-1, 1], shape (n,) or (n, channels), and its rate.

    16-bit samples are divided by 32768 as in the official `wavfile_to_examples`.
    """
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as wav:
            width, channels, rate = wav.getsampwidth(), wav.getnchannels(), wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as err:
        raise ValueError(f"{path}: not a readable PCM WAV file ({err})") from err
    if width == 1:
        data = (np.frombuffer(raw, np.uint8).astype(np.float64) - 128.0) / 128.0
    elif width == 3:
        triples = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        ints = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        data = np.where(ints >= 1 << 23, ints - (1 << 24), ints) / float(1 << 23)
    elif width in (2, 4):
        data = np.frombuffer(raw, f"<i{width}").astype(np.float64) / float(1 << (8 * width - 1))
    else:
        raise ValueError(f"{path}: unsupported WAV sample width of {width} bytes")
    return (data.reshape(-1, channels) if channels > 1 else data), rate


def resample(signal: np.ndarray, rate_in: int, rate_out: int, zero_crossings: int = 32) -> np.ndarray:
    """Band-limited resampling of a 1-D signal by a rational factor (polyphase windowed sinc)."""
    if rate_in == rate_out:
        return signal
    g = math.gcd(rate_in, rate_out)
    step, phases = rate_in // g, rate_out // g  # `phases` outputs for every `step` inputs
    cutoff = 0.99 * min(step, phases)
    half = math.ceil(zero_crossings * step / cutoff)
    # Kernel row p gives output p of a block from inputs at offsets -half .. half+step-1.
    offsets = np.arange(-half, half + step) / step
    t = (offsets[None, :] - np.arange(phases)[:, None] / phases) * cutoff
    t = np.clip(t, -zero_crossings, zero_crossings)
    window = np.cos(t * math.pi / zero_crossings / 2) ** 2
    kernel = np.sinc(t) * window * (cutoff / step)
    n_out = math.ceil(len(signal) * phases / step)
    n_blocks = math.ceil(n_out / phases)
    padded = np.zeros(n_blocks * step + kernel.shape[1])
    padded[half:half + len(signal)] = signal
    blocks = np.lib.stride_tricks.sliding_window_view(padded, kernel.shape[1])[::step][:n_blocks]
    return (blocks @ kernel.T).reshape(-1)[:n_out]


# ----------------------------------------------------------------------------- front end


def hertz_to_mel(hertz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: 1127 ln(1 + f / 700)."""
    return 1127.0 * np.log(1.0 + np.asarray(hertz, dtype=np.float64) / 700.0)


def mel_matrix(n_bins: int = FFT_LENGTH // 2 + 1, n_bands: int = N_BANDS, rate: int = SAMPLE_RATE,
               low_hz: float = MEL_LOW_HZ, high_hz: float = MEL_HIGH_HZ) -> np.ndarray:
    """(n_bins, n_bands) weights: triangles linear in mel over the spectrogram bins, DC bin zero."""
    bins_mel = hertz_to_mel(np.linspace(0.0, rate / 2.0, n_bins))
    edges = np.linspace(hertz_to_mel(low_hz), hertz_to_mel(high_hz), n_bands + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (centre - lower)
    falling = (upper - bins_mel[:, None]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0  # HTK leaves out the DC bin
    return weights


def log_mel_spectrogram(signal: np.ndarray) -> np.ndarray:
    """(n_frames, 64) log mel magnitudes of a 16 kHz mono signal; frames that do not fit are dropped."""
    if len(signal) < WINDOW:
        return np.zeros((0, N_BANDS))
    frames = np.lib.stride_tricks.sliding_window_view(signal, WINDOW)[::HOP]
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi / WINDOW * np.arange(WINDOW))  # periodic
    magnitude = np.abs(np.fft.rfft(frames * hann, FFT_LENGTH))
    # einsum, not `@`: this runs beside the network while it extracts (avvp.features.pipeline), and
    # numpy's multi-threaded BLAS there fights the network's threads for the cores (on 2 cores a
    # VGGish clip took 1.5x the network's time); einsum's own loop is single-threaded, 5 ms a clip.
    return np.log(np.einsum("fb,bm->fm", magnitude, mel_matrix()) + LOG_OFFSET)


def mono_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    """Samples (n,) or (n, channels) at `rate` -> float64 mono (channel mean) at 16 kHz."""
    signal = np.asarray(samples, dtype=np.float64)
    if signal.ndim > 1:
        signal = signal.mean(axis=1)
    return resample(signal, rate, SAMPLE_RATE)


def waveform_to_examples(samples: np.ndarray, rate: int) -> np.ndarray:
    """The official front end: samples (n,) or (n, channels) -> (n_examples, 96, 64) float32."""
    log_mel = log_mel_spectrogram(mono_16k(samples, rate))
    n_examples = len(log_mel) // EXAMPLE_FRAMES
    examples = log_mel[: n_examples * EXAMPLE_FRAMES].reshape(n_examples, EXAMPLE_FRAMES, N_BANDS)
    return examples.astype(np.float32)


def clip_examples(wav: str | Path, n_examples: int = 10) -> np.ndarray:
    """Exactly `n_examples` examples of a WAV, as the released (10, 128) layout needs.

    The 16 kHz signal is padded with silence (or cut) to n_examples x 0.96 s plus one window, so a
    clip a little shorter than 10 s still gives 10 rows (the missing tail reads as silence,
    log(0.01)) and a longer one keeps its first 10 examples, exactly those the official front end
    would give first.
    """
    signal = mono_16k(*read_wav(wav))
    needed = (n_examples * EXAMPLE_FRAMES - 1) * HOP + WINDOW
    fitted = np.zeros(needed)
    fitted[: min(needed, len(signal))] = signal[:needed]
    return waveform_to_examples(fitted, SAMPLE_RATE)


# ----------------------------------------------------------------------------- network


class VGGish(nn.Module):
    """VGGish up to the 128-d embedding; input (N, 96, 64) or (N, 1, 96, 64) log-mel examples."""

    def __init__(self, final_relu: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for width in (64, "pool", 128, "pool", 256, 256, "pool", 512, 512, "pool"):
            if width == "pool":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, int(width), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = int(width)
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 6 * 4, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, EMBEDDING_SIZE), nn.ReLU(inplace=True) if final_relu else nn.Identity(),
        )

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        x = examples.unsqueeze(1) if examples.dim() == 3 else examples
        x = self.features(x)
        # TensorFlow flattened (N, H, W, C); the fc weights expect that order.
        return self.embeddings(x.permute(0, 2, 3, 1).flatten(1))


# ----------------------------------------------------------------------------- post-processor


def load_pca_params(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(eigen_vectors (128, 128), means (128,)) from the official `.npz` or the port's `.pth`."""
    path = Path(path)
    try:  # never unpickled: object arrays and code in the pickle are refused
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                params = {k: data[k] for k in data.files}
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
            params = {k: np.asarray(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
    except OSError:
        raise
    except Exception as err:  # numpy's and torch's errors for a file that is not theirs vary
        raise ValueError(f"{path}: not a readable PCA parameter file ({load_refusal(err)})") from None
    missing = {"pca_eigen_vectors", "pca_means"} - set(params)
    if missing:
        raise ValueError(f"{path}: PCA parameters lack {sorted(missing)}")
    vectors = np.asarray(params["pca_eigen_vectors"], dtype=np.float64)
    means = np.asarray(params["pca_means"], dtype=np.float64).reshape(-1)
    if vectors.shape != (EMBEDDING_SIZE, EMBEDDING_SIZE) or means.shape != (EMBEDDING_SIZE,):
        raise ValueError(f"{path}: PCA shapes {vectors.shape} and {means.shape}, "
                         f"expected ({EMBEDDING_SIZE}, {EMBEDDING_SIZE}) and ({EMBEDDING_SIZE},)")
    return vectors, means


def postprocess(embeddings: np.ndarray, eigen_vectors: np.ndarray, means: np.ndarray) -> np.ndarray:
    """The official post-processor: PCA (with whitening), clip to [-2, 2], scale to 0..255, truncate to uint8."""
    projected = (np.asarray(embeddings, dtype=np.float64) - means) @ eigen_vectors.T
    low, high = QUANTIZE_RANGE
    scaled = (np.clip(projected, low, high) - low) * (255.0 / (high - low))
    return scaled.astype(np.uint8)


def pca_postprocessor(spec: str) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """The official post-processor with PCA parameters `pretrained` (the port's file, cached like
    the weights) or a parameter file; its uint8 values are stored as float32."""
    from avvp.extractors.parts.downloads import fetch

    path = fetch(PCA_URL) if spec == "pretrained" else Path(spec)
    vectors, means = load_pca_params(path)
    return (lambda embeddings: postprocess(embeddings, vectors, means).astype(np.float32),
            f"official post-processor with PCA parameters {path.name} (uint8 values stored as float32)")


# ----------------------------------------------------------------------------- as an extractor


def he_init(model: nn.Module) -> None:
    """He-normal weights (fan-in, ReLU gain) and zero biases for every conv and linear layer."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)


def random_network(seed: int) -> tuple[nn.Module, str]:
    with seeded(seed):
        model = VGGish()
        he_init(model)
    return model.eval(), f"random: He-normal weights, zero biases, torch seed {seed} (VGGish has no batch norm)"


def feature_network(model: nn.Module, device: torch.device) -> nn.Module:
    return model.to(device=device, memory_format=torch.channels_last).eval()


def prepare(examples: torch.Tensor) -> torch.Tensor:
    """(N, 96, 64) examples -> (N, 1, 96, 64) network input."""
    return examples.unsqueeze(1)


EXTRACTOR = Extractor(
    build=VGGish,
    random=random_network,
    features=feature_network,
    load=clip_examples,  # module-level functions: picklable for decoding worker processes
    prepare=prepare,
    memory_format=lambda: torch.channels_last,
    postprocessor=pca_postprocessor,
)
