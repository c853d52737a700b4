"""Building blocks that the feature kinds share: frame picks, random-weight calibration, fused
ResNet inference, Hugging Face model loading, published-weights downloads, the VGGish TF converter."""
