"""The model: HAN, its checkpoints (ours and the released formats), inference on a packed split,
and the predictions file."""
