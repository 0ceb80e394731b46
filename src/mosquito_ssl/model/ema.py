"""Exponential-moving-average (EMA) teachers, shared by the ``teacher`` and ``byol`` methods.

The decay goes linearly from ``start`` to ``end`` over the first ``anneal`` fraction of training
(data2vec 2.0 / EAT anneal 0.9998 -> 0.99999 over 100k of 400k updates; BYOL(-A) keeps 0.99 or
cosine-anneals to 1). The teacher is a frozen copy: its parameters never reach the optimizer::

    teacher = frozen_copy(student)
    ema_update(teacher, student, ema_decay_at(step, total, 0.999, 0.9999, anneal=1.0))
"""

from __future__ import annotations

import copy
from typing import TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


def frozen_copy(module: M) -> M:
    """A deep copy with requires_grad off everywhere (the optimizer skips it)."""
    teacher = copy.deepcopy(module)
    teacher.requires_grad_(False)
    return teacher


def ema_decay_at(step: int, total_steps: int, start: float, end: float, anneal: float) -> float:
    """Decay after ``step`` of ``total_steps``: linear from start to end over ``anneal * total``."""
    anneal_steps = max(1, round(anneal * max(total_steps, 1)))
    if step >= anneal_steps:
        return end
    return start + (end - start) * step / anneal_steps


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """teacher <- decay * teacher + (1 - decay) * student, parameter by parameter (buffers copied)."""
    t_params: list[torch.Tensor] = [p for _, p in sorted(teacher.named_parameters())]
    s_params: list[torch.Tensor] = [p.detach() for _, p in sorted(student.named_parameters())]
    if len(t_params) != len(s_params):
        raise ValueError("teacher and student have different parameters")
    torch._foreach_lerp_(t_params, s_params, 1.0 - decay)
    for (_, tb), (_, sb) in zip(sorted(teacher.named_buffers()), sorted(student.named_buffers()), strict=True):
        tb.copy_(sb)
