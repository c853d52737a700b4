"""avvp: weakly-supervised audio-visual video parsing, from clips to the ten LLP numbers."""

__version__ = "0.1.0"
