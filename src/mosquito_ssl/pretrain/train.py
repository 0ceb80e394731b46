"""Self-supervised pretraining of AST (``--method``) with the Hugging Face ``Trainer``.

    mosquito-ssl pretrain data/synth --preset tiny --epochs 20 --run-name demo

Owns ``PretrainConfig`` (the original pipeline's settings as defaults) and
``pretrain(cfg) -> run_dir``: data -> feature cache -> 90/10 split -> Trainer (checkpoints
every epoch, best by ``eval_mse``, early stopping, TensorBoard) -> ``final/`` (HF encoder
checkpoint, preprocessor config, the whole SSL model as ``model.pth``) -> metrics and a DONE
marker. A run killed at any moment continues with ``resume=True`` from its last complete
checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import runs
from ..errors import ConfigError
from ..model.freeze import Freeze, parse_freeze
from ..model.masking import MaskSettings
from ..model.methods import METHOD_FIELDS, method_settings
from .evaluate import final_metrics, result_line
from .trainer import build_trainer, last_complete_checkpoint

log = logging.getLogger(__name__)
# Settings that only shape the reconstruct method (the original pipeline's masking and loss).
# Front-end settings as every run had them before they could be set (kept out of run hashes).
LEGACY_FRONT_END = {"sample_rate": 16000, "num_mel_bins": 128, "normalize": "audioset"}
RECONSTRUCT_ONLY = ("mask_strength", "mask_kind", "time_width", "freq_width", "time_masks", "freq_masks", "loss_on")


@dataclass(frozen=True)
class PretrainConfig:
    data: Path
    out: Path = Path("runs")
    run_name: str | None = None
    layout: str = "auto"
    clip_seconds: float = 1.0
    sample_rate: int = 16000
    num_mel_bins: int = 128
    normalize: str = "audioset"
    window: float | None = None
    hop: float | None = None
    preset: str = "base"
    pretrained: Path | None = None
    init_from: Path | None = None
    mask_strength: float = 1.0
    mask_kind: str = "specaugment"
    time_width: int = 20
    freq_width: int = 24
    time_masks: int = 2
    freq_masks: int = 2
    loss_on: str = "all"
    # --method and its settings (model/methods.py); None = the method's own default. The
    # reconstruct-only settings above (mask_*, *_width, *_masks, loss_on) keep the original defaults.
    # mae by evidence (README "Which SSL method?"): best or tied linear probes, and the fastest
    method: str = "mae"
    mask_ratio: float | None = None
    views: int | None = None
    top_k: int | None = None
    ema_decay: float | None = None
    ema_end_decay: float | None = None
    ema_anneal: float | None = None
    clip_loss: float | None = None
    decoder_dim: int | None = None
    decoder_layers: int | None = None
    decoder_heads: int | None = None
    norm_pix_loss: bool | None = None
    proj_dim: int | None = None
    proj_hidden: int | None = None
    mixup: float | None = None
    min_crop: float | None = None
    freeze: str = "full"  # model/freeze.py: full (default), frozen or partial:K
    freeze_layers: int | None = None  # deprecated: --freeze-layers K is --freeze partial:K
    lr: float = 1e-4
    batch_size: int = 8
    epochs: int = 150
    max_steps: int = -1
    grad_accum: int = 2
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    workers: int = 2
    precision: str = "auto"
    compile: bool = False
    patience: int = 10
    threshold: float = 1e-4
    save_total_limit: int = 2
    val_fraction: float = 0.1
    split_seed: int = 42
    seed: int = 42
    logging_steps: int = 10
    resume: bool = False
    force: bool = False
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.loss_on not in ("all", "masked"):
            raise ConfigError(f"--loss-on must be 'all' or 'masked', not {self.loss_on!r}")
        if self.precision not in ("auto", "fp32", "fp16", "bf16"):
            raise ConfigError(f"--precision must be auto, fp32, fp16 or bf16, not {self.precision!r}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"--val-fraction must be between 0 and 1, not {self.val_fraction}")
        object.__setattr__(self, "freeze", str(self._parse_freeze()))
        object.__setattr__(self, "freeze_layers", None)  # folded into freeze
        _ = self.mask  # validates the mask settings early
        _ = self.features  # validates the front end early
        self.method_settings()  # validates --method and its settings early

    def _parse_freeze(self) -> Freeze:
        """``freeze`` validated (against the preset's depth when known), ``freeze_layers`` folded in."""
        from ..model.presets import PRESETS

        freeze = self.freeze
        if self.freeze_layers is not None:
            if self.freeze_layers < 0:
                raise ConfigError(f"--freeze-layers {self.freeze_layers} is not valid: use --freeze partial:K, K >= 0")
            if parse_freeze(freeze) != Freeze("full"):
                raise ConfigError("--freeze-layers K is the old spelling of --freeze partial:K: give only --freeze")
            freeze = f"partial:{self.freeze_layers}"
        preset = PRESETS.get(self.preset) if self.pretrained is None else None
        return parse_freeze(freeze, preset["num_hidden_layers"] if preset else None)

    @property
    def mask(self) -> MaskSettings:
        # The mask fields are repeated flat here so that TOML keys and CLI flags stay flat.
        return MaskSettings(**{f.name: getattr(self, f.name) for f in dataclasses.fields(MaskSettings)})

    def science(self) -> dict:
        """Settings that change what is learned (not where it is written or how it is run)."""
        skip = {"out", "run_name", "resume", "force", "workers", "cache_dir", "logging_steps", "compile", "freeze"}
        science = {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}
        science.update(_freeze_science(self.freeze))
        # Unset method options and the default method stay out, so run-directory hashes of
        # reconstruct runs made before --method existed do not change.
        science = {k: v for k, v in science.items() if not (k in METHOD_FIELDS and v is None)}
        # Likewise the front end at the values every run had before it could be set.
        science = {k: v for k, v in science.items() if LEGACY_FRONT_END.get(k, ...) != v}
        if science["method"] == "reconstruct":
            del science["method"]
        else:  # the reconstruct-only settings do not shape other methods
            for key in RECONSTRUCT_ONLY:
                science.pop(key)
        return science

    @property
    def features(self):
        """The front end (its mean/std are AudioSet's until ``--normalize dataset`` measures them)."""
        from ..data.feature_settings import FRONT_END, FeatureSettings

        return FeatureSettings(clip_seconds=self.clip_seconds, **{k: getattr(self, k) for k in FRONT_END})

    def method_settings(self):
        """The method's settings dataclass (None for reconstruct, whose settings are the mask fields)."""
        return method_settings(self.method, {k: getattr(self, k) for k in METHOD_FIELDS})

    def run_dir(self) -> Path:
        name = self.run_name or f"pretrain-{self.preset}-{runs.settings_hash(self.science(), 8)}"
        return Path(self.out) / name


def _freeze_science(freeze: str) -> dict:
    """``freeze`` as it enters the run-directory hash.

    Runs made with ``--freeze-layers K`` (``K = 0`` by default) hashed ``freeze_layers: K``;
    ``full`` and ``partial:K`` (K >= 1) keep that key so their run directories keep their names.
    """
    parsed = parse_freeze(freeze)
    if parsed.kind == "full":
        return {"freeze_layers": 0}
    if parsed.kind == "partial" and parsed.blocks > 0:
        return {"freeze_layers": parsed.blocks}
    return {"freeze": str(parsed)}


def load_pretrain_data(cfg: PretrainConfig):
    """Dataset -> feature cache -> (train indices, val indices). Fails before any training."""
    from ..data.features import build_features
    from ..data.manifest import read_dataset
    from ..data.splits import split_indices

    dataset = read_dataset(cfg.data, layout=cfg.layout, clip_seconds=cfg.clip_seconds, window=cfg.window, hop=cfg.hop)
    cache = build_features(dataset, cfg.features.raw(), cache_dir=cfg.cache_dir)  # the cache probes read too
    # Pretraining is unsupervised: the split only keeps recordings (groups) on one side.
    parts = split_indices(
        len(cache), groups=cache.groups, fractions=(1 - cfg.val_fraction, cfg.val_fraction), seed=cfg.split_seed
    )
    if cfg.normalize == "dataset":  # statistics of the training clips only (same rows, same order)
        from ..data.normalize import dataset_normalized

        cache = dataset_normalized(dataset, cache, parts["train"], cache_dir=cfg.cache_dir)
    return cache, parts["train"], parts["val"]


def build_model(cfg: PretrainConfig, features):
    from ..model.encoder import build_encoder
    from ..model.freeze import apply_freeze
    from ..model.methods import build_ssl_model
    from ..model.ssl import ASTSSL

    torch.manual_seed(cfg.seed)
    encoder = build_encoder(cfg.preset, features=features, pretrained=cfg.pretrained, seed=cfg.seed)
    model: torch.nn.Module
    if cfg.method == "reconstruct":
        model = ASTSSL(encoder, mask=cfg.mask, loss_on=cfg.loss_on)
    else:
        model = build_ssl_model(cfg.method, encoder, cfg.method_settings())
    if cfg.init_from is not None:
        load_init_weights(model, cfg.init_from)
    if cfg.freeze != "full":  # "full" trains everything: leave requires_grad as the method set it
        trainable = apply_freeze(model.get_submodule("encoder"), cfg.freeze)
        log.info("--freeze %s: %d trainable encoder parameters", cfg.freeze, trainable)
    return model


def load_init_weights(model: torch.nn.Module, path: Path) -> None:
    """Start from a saved SSL model state dict (the original pipeline's ``resume_from_checkpoint``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--init-from {path} does not exist: pass a model.pth saved by a pretrain run")
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # same names, other shapes (another preset or --method)
        raise ConfigError(
            f"--init-from {path} does not fit this model ({str(exc).splitlines()[1].strip()}): "
            "use the --preset and --method it was saved with"
        ) from exc
    if missing or unexpected:
        raise ConfigError(
            f"--init-from {path} does not match this model (missing {len(missing)}, unexpected "
            f"{len(unexpected)} keys, e.g. {(missing or unexpected)[:3]}): use the --preset and --method it was saved with"
        )


def _check_run_dir(cfg: PretrainConfig, run_dir: Path) -> str | None:
    """Return the checkpoint to resume from, or None; refuse to clobber an unfinished run."""
    if cfg.force or not run_dir.exists():
        return None
    checkpoint = last_complete_checkpoint(run_dir)
    if checkpoint is not None and not cfg.resume:
        raise ConfigError(f"{run_dir} holds an unfinished run: pass --resume to continue it or --force to start over")
    return checkpoint


def pretrain(cfg: PretrainConfig) -> Path:
    """Run (or resume, or skip if done) one pretraining and return its run directory."""
    run_dir = cfg.run_dir()
    if runs.should_skip(run_dir, cfg.force):
        log.info("pretraining %s is done; skipping (use --force to redo it)", run_dir)
        return run_dir
    checkpoint = _check_run_dir(cfg, run_dir)
    if cfg.force and int(os.environ.get("RANK", "0")) == 0:
        runs.begin(run_dir)  # start over, before other ranks write; without --force checkpoints stay
    started = time.time()
    cache, train_idx, val_idx = load_pretrain_data(cfg)
    log.info("pretraining %s: %d train / %d val clips, %s", run_dir, len(train_idx), len(val_idx), _summary(cfg))
    log.debug("settings %s", cfg.science())
    runs.prepare_run_dir(run_dir, cfg, force=True)
    runs.write_json_atomic(run_dir / "data_summary.json", cache.summary())
    model = build_model(cfg, cache.settings)
    trainer = build_trainer(cfg, model, cache, train_idx, val_idx, run_dir)
    if checkpoint:
        log.info("resuming from %s", checkpoint)
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():  # log lines print above the progress bar, not through it
        trainer.train(resume_from_checkpoint=checkpoint)
    if not trainer.is_world_process_zero():
        return run_dir
    metrics = final_metrics(cfg.method, trainer.model, cache, train_idx, val_idx, cfg.batch_size)
    metrics["epochs_run"] = trainer.state.epoch
    metrics["best_checkpoint"] = trainer.state.best_model_checkpoint
    runs.write_json_atomic(run_dir / "log_history.json", trainer.state.log_history)
    save_final(trainer.model, cache, cfg, run_dir / "final", metrics)
    runs.finish_run(run_dir, metrics, started)
    log.info(result_line(metrics))
    return run_dir


def _summary(cfg: PretrainConfig) -> str:
    """The few settings a reader checks first; every setting is in config.json."""
    model = f"preset {cfg.preset}" if cfg.pretrained is None else f"from {cfg.pretrained}"
    return (
        f"method {cfg.method}, {model}, freeze {cfg.freeze}, {cfg.epochs} epochs, batch {cfg.batch_size}, lr {cfg.lr:g}"
    )


def save_final(model, cache, cfg: PretrainConfig, final: Path, metrics: dict) -> Path:
    """``final/``: the model's own checkpoint files plus the run's config, data summary, metrics."""
    from ..model.checkpoints import hf_progress_off

    with hf_progress_off():
        model.save(final, cache.settings)
    runs.write_json_atomic(final / "run_config.json", cfg)
    runs.write_json_atomic(final / "data_summary.json", cache.summary())
    runs.write_json_atomic(final / "metrics.json", metrics)
    return final
