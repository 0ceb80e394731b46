"""``--method teacher``: teacher-student pretraining as data2vec 2.0 / EAT.

An EMA teacher encodes the whole clip; its targets are the average of its top-K block outputs,
each instance-normalised over the patches, then layer-normalised (EAT's settings). The student
encodes only the visible patches of ``views`` differently masked copies of each clip, which share
one teacher pass (EAT's ``clone_batch``); a light decoder regresses the targets at the masked
positions (frame loss), and the student's CLS token regresses the teacher's mean target (EAT's
utterance loss, weight ``clip_loss``)::

    mosquito-ssl pretrain data/unlabelled --method teacher --mask-ratio 0.8 --views 4 --preset tiny
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from transformers import ASTModel

from ..errors import ConfigError
from .base import SSLModel, SSLOutput, check_input
from .ema import ema_decay_at, ema_update, frozen_copy
from .mae import decoder_shape, masked_mean
from .method_settings import TeacherSettings
from .presets import patch_grid
from .visible import (
    N_SPECIAL,
    TokenDecoder,
    encode_visible,
    patch_size,
    random_patch_mask,
    set_patch_stride,
)


def teacher_targets(states: list[torch.Tensor], top_k: int) -> torch.Tensor:
    """Average of the last ``top_k`` block outputs (patch tokens), each instance-normed, then layer-normed."""
    layers = [s[:, N_SPECIAL:].float() for s in states[-top_k:]]
    normed = [F.instance_norm(h.transpose(1, 2)).transpose(1, 2) for h in layers]
    target = torch.stack(normed).mean(dim=0)
    return F.layer_norm(target, target.shape[-1:])


class ASTTeacher(SSLModel):
    """data2vec 2.0 / EAT-style student (``self.encoder``) with an EMA teacher (``self.teacher``)."""

    method = "teacher"

    def __init__(self, encoder: ASTModel, settings: TeacherSettings = TeacherSettings()) -> None:
        super().__init__()
        cfg = encoder.config
        self.encoder = set_patch_stride(encoder, patch_size(encoder))
        dim, heads = decoder_shape(cfg.hidden_size, settings.decoder_dim, settings.decoder_heads)
        top_k = settings.top_k or cfg.num_hidden_layers
        if top_k > cfg.num_hidden_layers:
            raise ConfigError(f"--top-k {top_k} exceeds the encoder's {cfg.num_hidden_layers} blocks")
        self.settings = dataclasses.replace(settings, decoder_dim=dim, decoder_heads=heads, top_k=top_k)
        self.top_k = top_k
        self.n_patches = math.prod(patch_grid(self.encoder.config))
        self.decoder = TokenDecoder(
            cfg.hidden_size, dim, settings.decoder_layers, heads, self.n_patches, cfg.hidden_size
        )
        self.teacher = frozen_copy(self.encoder)

    def forward(self, input_values: torch.Tensor, **kwargs: object) -> SSLOutput:
        """One teacher pass, ``views`` masked student passes; frame + clip loss; ``clip_index`` seeds the masks."""
        x, s = input_values, self.settings
        check_input(self.encoder, x)
        with torch.no_grad():
            _, states = encode_visible(self.teacher, x)
            target = teacher_targets(states, self.top_k)
        # The views share the clip's patch embedding and the teacher's targets: (B * views) rows,
        # clip i's views at rows i * views ..., compared with (B, 1, ...) targets by broadcasting.
        batch, views = x.shape[0], s.views
        keep, masked = random_patch_mask(
            batch * views,
            self.n_patches,
            s.mask_ratio,
            self.batch_generator(x.device, kwargs.get("clip_index")),
            x.device,
        )
        tokens, _ = encode_visible(self.encoder, x, keep, views)
        pred = self.decoder(tokens[:, N_SPECIAL:], keep, self.n_patches)
        err = (pred.view(batch, views, *target.shape[1:]) - target[:, None]) ** 2
        loss = masked_mean(err.mean(dim=-1).view(batch * views, -1), masked)
        if s.clip_loss > 0:
            clip = ((tokens[:, 0].view(batch, views, -1) - target.mean(dim=1)[:, None]) ** 2).mean()
            loss = loss + s.clip_loss * clip
        return SSLOutput(loss=loss, prediction=pred, mask=masked)

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        s = self.settings
        ema_update(
            self.teacher, self.encoder, ema_decay_at(step, total_steps, s.ema_decay, s.ema_end_decay, s.ema_anneal)
        )
