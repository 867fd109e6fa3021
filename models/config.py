"""Model and training knobs as dataclasses; each one settable from a plain dict (params.yaml)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from common.params import ParamsSection


# Named variants: the model class they build and the knobs they pin (ablations win over the dict).
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "base": ("base", {}),
    "dropout": ("dropout", {}),
    "gaussian": ("gaussian", {}),
    "asymdiffrec": ("asymdiffrec", {}),
    "asymdiffrec_no_aux": ("asymdiffrec", {"lambda_aux": 0.0}),
    "asymdiffrec_no_rec": ("asymdiffrec", {"lambda_rec": 0.0}),
    "multimask": ("multimask", {}),
}


@dataclass
class ModelConfig(ParamsSection):
    """What to build: the variant, the base model and the diffusion knobs."""

    SECTION = "model"

    variant: str = "asymdiffrec"  # one of VARIANTS
    base: str = "dnn"  # a registered base model: dnn, dcnv2, deepfm
    embed_dim: int = 16
    hidden: tuple[int, ...] = (256, 128)  # the deep tower; `latent_layer` says where in it z is taken
    dropout: float = 0.0
    embed_dropout: float = 0.0  # dropout on the concatenated field embeddings the networks read
    cross_layers: int = 3  # dcnv2
    latent_layer: int = 1  # where z is taken in the deep tower: -1 after the last hidden layer, 0 the field embeddings, k after hidden layer k
    # reverse process g
    denoiser_hidden: int = 256
    residual: bool = False  # z0' = z_t + g([s, z_t]) instead of g([s, z_t])
    reverse_steps: int = 1  # >1: a chain of g steps with the mask fading to zero
    step_cond: bool = False  # g also sees a sinusoidal embedding of the missing count |s|
    serve: str = "denoised"  # denoised: f(g([s, h(x)])) | ensemble: mean of the logits f(h(x)) and f(g([s, h(x)]))
    # loss
    lambda_rec: float = 1.0
    lambda_aux: float = 1.0
    stop_grad: bool = True  # no gradient through the target h(x0) of the reconstruction loss
    # forward process
    group_drop_prob: float = 0.5  # share of samples whose drops are whole feature views
    t_schedule: str = "uniform"  # uniform | fitted (to the training missing-count distribution)
    fitted_smoothing: float = 0.2  # fitted: weight of a uniform floor over the allowed counts
    merge_views: tuple[str, ...] = ()  # views dropped together as one group (e.g. user_profile, user_activity)
    # multimask rival (AdaF2M2-style)
    mask_copies: int = 1  # masked copies of every sample per training step
    adapter_hidden: int = 64  # width of the mask-conditioned field adapter
    # gaussian baseline
    gaussian_steps: int = 50
    gaussian_noise_scale: float = 0.1
    gaussian_serve_step: int = 0

    def validate(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"model.variant '{self.variant}' is unknown; use one of {sorted(VARIANTS)}")
        if self.t_schedule not in ("uniform", "fitted"):
            raise ValueError(f"model.t_schedule '{self.t_schedule}' is unknown; use 'uniform' or 'fitted'")
        if not 0.0 <= self.group_drop_prob <= 1.0:
            raise ValueError(f"model.group_drop_prob must lie in [0, 1], got {self.group_drop_prob}")
        if self.serve not in ("denoised", "ensemble"):
            raise ValueError(f"model.serve '{self.serve}' is unknown; use 'denoised' or 'ensemble'")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.embed_dropout < 1.0:
            raise ValueError("model.dropout and model.embed_dropout must lie in [0, 1)")
        if not -1 <= self.latent_layer <= len(self.hidden):
            raise ValueError(f"model.latent_layer must be -1 (last hidden layer) or lie in 0..len(hidden), got {self.latent_layer}")
        if self.reverse_steps < 1 or self.embed_dim < 1 or not self.hidden:
            raise ValueError("model.reverse_steps and model.embed_dim must be >= 1 and model.hidden non-empty")
        if self.mask_copies < 1 or self.adapter_hidden < 1:
            raise ValueError(f"model.mask_copies and model.adapter_hidden must be >= 1, got {self.mask_copies}, {self.adapter_hidden}")
        if not 0 <= self.gaussian_serve_step < self.gaussian_steps:
            raise ValueError(f"model.gaussian_serve_step must lie in [0, gaussian_steps), got {self.gaussian_serve_step}")

    def resolved(self) -> "ModelConfig":
        """The config with the variant's pinned knobs applied."""
        return dataclasses.replace(self, **VARIANTS[self.variant][1])

    @property
    def kind(self) -> str:
        return VARIANTS[self.variant][0]


@dataclass
class TrainConfig(ParamsSection):
    """How to train: optimiser, batches, early stopping, device."""

    SECTION = "train"

    epochs: int = 20
    batch_size: int = 1024
    lr: float = 3e-4
    weight_decay: float = 0.0
    patience: int = 3  # epochs without a better validation AUC before stopping
    min_delta: float = 0.0
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # mixed precision on CUDA (ignored on CPU)
    eval_batch_size: int = 8192
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes kept with the checkpoint

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"train.lr must be positive, got {self.lr}")
