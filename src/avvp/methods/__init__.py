"""Training methods as registered stages (`avvp.methods.stages`): HAN (`han`), MA-MMIL (Wu and
Yang, CVPR 2021; `ma_mmil`), JoMoLD (Cheng et al., ECCV 2022; `jomold`) and VALOR (Lai, Chen,
Wang, NeurIPS 2023; `valor`), each registered by its module of that name.

Each stage is a library function and an `avvp` command whose outputs are files, so a workflow can
cache every stage on its own: `training` (the shared loop), `training_data` (the packed splits and
validation ground truth it reads), `settings` (a stage's hyper-parameters), `objectives` and
`denoising` (the losses), `contrastive` (the segment-matching term MA-MMIL and JoMoLD add), `passes`
(frozen-model passes), `label_tables` (per-modality label files), `stage_files` (a stage's log and
summary).
"""
