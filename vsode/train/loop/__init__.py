"""Training a VidStyleODE: the objective, the optimisers, the run directory, DDP.

One step follows the released ``VidStyleODE.training_step`` (design §9.6): encode all T loaded
frames with the ODE-ConvGRU, solve the latent ODE at ``n`` supervised times, run the modulation
network and the mapper twice (reconstruction with ``z_S = CLIP_I(G(z_C))``, edit with the text
direction towards another video's caption), render both with the frozen generator and sum

    λ_rec·MSE + λ_D·directional + λ_L·latent hinge + λ_vgg·(DINO structure + appearance) + λ_C·consistency

with the released schedules. Two Adam optimisers: the dynamics encoder at 5η with betas
(0.9, 0.999), modulation + mapper at η with (0.9, 0.99), η = batch × world size × 2e-6.

A run is a directory (STYLE habit 13)::

    RUN_DIR/config.json            train + model config, written before step one
    RUN_DIR/stats.jsonl            one JSON line per logged step and per validation
    RUN_DIR/checkpoints/last.pt    vsode/train-state@1: weights, both optimisers, step, data position
    RUN_DIR/model.pt               vsode/vidstyleode@1 of the newest weights (usable with --model)
    RUN_DIR/samples/step-N.mp4     real | reconstruction of a validation video

Exact resume: the data order is a function of (seed, epoch, position) and every random draw of a
step comes from a generator seeded with (seed, step, rank), so a resumed run repeats the losses
of an uninterrupted one bit for bit (same machine, same thread count).

Several processes (``torchrun``): ranks take whole bins (``BinSampler`` sharding), gradients are
averaged with ``all_reduce`` (gloo on CPU, nccl on CUDA); rank 0 writes the run directory.
"""


from .distributed import Distributed, average_gradients, init_distributed
from .objective import (
    FrozenModels,
    compute_losses,
    observation_mask,
    step_generator,
    supervised_frames,
    target_captions,
)
from .options import RUN_FORMAT, SAMPLING, STATE_FORMAT, TrainOptions, split_overrides
from .run import TrainResult, load_train_state, run_config, train
from .setup import train_preset
from .validate import reconstruct_video

__all__ = [
    "RUN_FORMAT",
    "SAMPLING",
    "STATE_FORMAT",
    "Distributed",
    "FrozenModels",
    "TrainOptions",
    "TrainResult",
    "average_gradients",
    "compute_losses",
    "init_distributed",
    "load_train_state",
    "observation_mask",
    "reconstruct_video",
    "run_config",
    "split_overrides",
    "step_generator",
    "supervised_frames",
    "target_captions",
    "train",
    "train_preset",
]
