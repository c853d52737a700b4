"""Modality-aware label refinement on top of HAN: MA-MMIL (Wu and Yang, CVPR 2021) and JoMoLD
(Cheng et al., ECCV 2022).

Each stage is a library function and an `avvp` command whose outputs are files, so a workflow can
cache every stage on its own: `contrastive` (the segment-matching term both methods add),
`objectives` (the training losses the generic loop in `avvp.training` takes), `ma_mmil` (partner
draw, modality swaps, noise judgment, refined label tables), `jomold` (noise ratios, per-batch
label dropping), `recipes` (each method's schedule, model options and checkpoint choice).
"""
