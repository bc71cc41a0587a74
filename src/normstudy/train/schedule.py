"""The optimizer and its learning-rate schedule (Frankle et al. 2020, §3)."""

from __future__ import annotations

import math

import torch
from torch import nn

from normstudy.config import ConfigError
from normstudy.freeze import parameter_roles


def learning_rate_factor(step: int, total_steps: int, steps_per_epoch: int, config: dict) -> float:
    """Multiplier of the base lr at optimizer step ``step`` (0-based).

    ``multistep``: times ``lr_decay`` at each milestone, given as a fraction of training
    (0.5 and 0.75 of 160 epochs are Frankle et al.'s epochs 80 and 120);
    ``cosine``: half-cosine to 0; ``constant``. An optional linear warm-up over
    ``warmup_epochs`` multiplies any of them.
    """
    warmup_steps = config["warmup_epochs"] * steps_per_epoch
    warmup = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    schedule = config["schedule"]
    if schedule == "constant":
        factor = 1.0
    elif schedule == "multistep":
        passed = sum(step >= round(m * total_steps) for m in config["milestones"])
        factor = config["lr_decay"] ** passed
    elif schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    else:
        raise ConfigError(f"unknown schedule {schedule!r}; valid: multistep, cosine, constant")
    return warmup * factor


def optimizer_for(model: nn.Module, trainable: list[nn.Parameter], config: dict):
    """SGD (momentum, optional Nesterov) or Adam over the trainable parameters only.

    Weight decay applies to every trainable parameter, gamma and beta included
    (Frankle et al. 2020 §3); ``weight_decay_norm: false`` exempts gamma and beta.
    """
    roles = parameter_roles(model)
    role_of = {id(p): roles[name] for name, p in model.named_parameters()}
    decayed, exempt = [], []
    for param in trainable:
        is_norm = role_of[id(param)] in ("norm_gamma", "norm_beta")
        (exempt if is_norm and not config["weight_decay_norm"] else decayed).append(param)
    groups = [{"params": decayed, "weight_decay": config["weight_decay"]}]
    if exempt:
        groups.append({"params": exempt, "weight_decay": 0.0})
    if config["optimizer"] == "sgd":
        return torch.optim.SGD(
            groups, lr=config["lr"], momentum=config["momentum"], nesterov=config["nesterov"]
        )
    return torch.optim.Adam(groups, lr=config["lr"], betas=tuple(config["adam_betas"]))
