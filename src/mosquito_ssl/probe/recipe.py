"""The fine-tuning recipe: parameter groups, layer-wise lr decay, input augmentation, balancing.

    mosquito-ssl probe finetune field.csv --encoder runs/mae --freeze full --folds 5 \
        --head-init probe --lr 1e-3 --layer-decay 0.75 --specaugment 1 --mixup 0.5 --balance sampler

What the AST and AudioMAE fine-tuning code does, at the scale of a few thousand clips:

- ``parameter_groups``: the head learns at ``head_lr``; the encoder's top block (and its final
  LayerNorm) at ``lr``, each block below at ``layer_decay`` times the one above, the patch and
  position embeddings one step below block 0 (BEiT / AudioMAE ``param_groups_lrd``). Biases,
  norms and embeddings get no weight decay. The Trainer's warm-up + cosine schedule scales
  every group by the same factor, so the ratios hold all run long.
- ``augment``: SpecAugment bands (``model/masking.py``'s sampler at ``specaugment`` strength,
  set to 0, the normalised mean) and mixup of inputs and one-hot targets with weight
  ``Beta(mixup, mixup)``, in training only.
- ``probe_head`` (``--head-init probe``): LP-FT, the head starts as the frozen encoder's
  linear probe (refit on train + val for the refit of ``--refit``).
- ``balance``: ``weights`` (class-weighted loss), ``sampler`` (class-balanced sampling with
  replacement) or ``none``.
"""

from __future__ import annotations

import numpy as np

BALANCE = ("weights", "sampler", "none")
HEAD_INIT = ("probe", "random")
REFIT = ("head", "all", "none")  # how fine-tuning scores test after its epoch choice (finetune.py)


def layer_scales(encoder, decay: float) -> dict[str, float]:
    """{encoder parameter name: lr multiplier}: 1 for the top block and the final norm, decay^k below."""
    from ..model.layout import blocks

    stack = blocks(encoder)
    depth = len(stack)
    prefix = {id(p): i for i, block in enumerate(stack) for p in block.parameters()}
    scales = {}
    for name, param in encoder.named_parameters():
        if id(param) in prefix:
            scales[name] = decay ** (depth - 1 - prefix[id(param)])
        elif name.startswith("embeddings."):
            scales[name] = decay**depth
        else:  # the final LayerNorm sits on top of the last block
            scales[name] = 1.0
    return scales


def _no_decay(name: str, param) -> bool:
    return param.ndim < 2 or "embeddings" in name or "token" in name


def parameter_groups(model, lr: float, head_lr: float, layer_decay: float, weight_decay: float) -> list[dict]:
    """AdamW groups of the trainable parameters: (lr, weight decay) per encoder depth, the head apart."""
    scales = layer_scales(model.encoder, layer_decay)
    groups: dict[tuple[float, float], list] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.startswith("encoder."):
            group_lr = lr * scales[name.removeprefix("encoder.")]
        else:
            group_lr = head_lr
        decay = 0.0 if _no_decay(name, param) else weight_decay
        groups.setdefault((group_lr, decay), []).append(param)
    return [{"params": ps, "lr": g_lr, "weight_decay": wd} for (g_lr, wd), ps in sorted(groups.items())]


def augment(x, target, specaugment: float, mixup: float):
    """(inputs, soft targets) for one training batch of one-hot ``target``: SpecAugment bands, then mixup."""
    import torch

    from ..model.masking import MaskSettings, sample_masks

    if specaugment > 0:
        mask = sample_masks(
            x.shape[0], x.shape[1], x.shape[2], MaskSettings(mask_strength=specaugment), device=x.device
        )
        x = x.masked_fill(mask, 0.0)
    if mixup > 0 and x.shape[0] > 1:
        lam = float(torch.distributions.Beta(mixup, mixup).sample())
        perm = torch.randperm(x.shape[0], device=x.device)
        x = lam * x + (1 - lam) * x[perm]
        target = lam * target + (1 - lam) * target[perm]
    return x, target


def balanced_sampler(labels, seed: int):
    """Class-balanced sampling with replacement: every class is drawn equally often on average."""
    import numpy as np
    import torch

    counts = np.bincount(labels)
    weights = 1.0 / counts[labels]
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.WeightedRandomSampler(weights.tolist(), len(labels), replacement=True, generator=generator)


def probe_head(
    head, X: np.ndarray, y: np.ndarray, parts: dict, n_classes: int, grid, seed: int, refit: bool = False
) -> float:
    """LP-FT (Kumar et al. 2022): set ``head`` (a StandardizedHead) to the linear probe of ``X``.

    The probe is ``linear.logistic`` with C chosen on val (train-only fits); with ``refit`` it is
    then fit again on train + val, as ``probe linear`` scores test. Its StandardScaler becomes the
    head's fixed standardisation and its weights the head's linear layer, so the classifier starts
    exactly where the linear probe ends and fine-tuning does not first tear the pretrained
    features apart with a random head's gradients. Returns the probe's validation balanced accuracy.
    """
    import torch

    from .linear import logistic, select

    c, score, best = select(logistic, sorted(grid), X, y, parts, seed)  # the linear probe's choice of C
    if refit:
        both = np.concatenate([parts["train"], parts["val"]])
        best = logistic(c, seed).fit(X[both], y[both])
    scaler, lr = best.steps[0][1], best.steps[-1][1]
    coef, intercept = lr.coef_, lr.intercept_
    if coef.shape[0] == 1:  # binary: sklearn keeps one row, the logit of classes_[1]
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    weight = np.zeros((n_classes, X.shape[1]))
    bias = np.full(n_classes, -10.0)  # a class absent from train is never predicted, as in the probe
    weight[lr.classes_], bias[lr.classes_] = coef, intercept
    with torch.no_grad():
        for tensor, value in ((head.linear.weight, weight), (head.linear.bias, bias)):
            tensor.copy_(torch.as_tensor(value, dtype=tensor.dtype))
        head.mean.copy_(torch.as_tensor(scaler.mean_, dtype=head.mean.dtype))
        head.scale.copy_(torch.as_tensor(scaler.scale_, dtype=head.scale.dtype))
    return score
