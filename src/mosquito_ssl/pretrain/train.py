"""Self-supervised pretraining of AST (``--method``) with the Hugging Face ``Trainer``.

    mosquito-ssl pretrain data/synth --preset tiny --epochs 20 --run-name demo

Owns ``pretrain(cfg) -> run_dir`` (the settings are ``config.PretrainConfig``): data -> feature
cache -> 90/10 split -> Trainer (checkpoints every epoch, best by ``eval_loss`` and early stopping
unless the method keeps an EMA target, TensorBoard) -> ``final/`` (HF encoder
checkpoint, preprocessor config, the whole SSL model as ``model.pth``) -> metrics and a DONE
marker. A run killed at any moment continues with ``resume=True`` from its last complete
checkpoint.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import torch

from .. import runs
from ..errors import ConfigError
from ..model import methods
from .config import PretrainConfig
from .evaluate import final_metrics, result_line
from .trainer import build_trainer, last_complete_checkpoint

log = logging.getLogger(__name__)


def load_pretrain_data(cfg: PretrainConfig):
    """Dataset -> feature cache -> (train indices, val indices). Fails before any training."""
    from ..data.features import load_features
    from ..data.manifest import read_dataset
    from ..data.splits import split_indices

    def split(cache):
        # Pretraining is unsupervised: the split only keeps recordings (groups) on one side.
        fractions = (1 - cfg.val_fraction, cfg.val_fraction)
        return split_indices(len(cache), groups=cache.groups, fractions=fractions, seed=cfg.split_seed)

    dataset = read_dataset(cfg.data, layout=cfg.layout, clip_seconds=cfg.clip_seconds, window=cfg.window, hop=cfg.hop)
    # --normalize dataset: statistics of the training clips only. The normalised cache keeps the
    # raw one's rows in the same order, so splitting either gives the same parts.
    cache = load_features(dataset, cfg.features, cfg.cache_dir, lambda raw: split(raw)["train"])  # probes read it too
    parts = split(cache)
    return cache, parts["train"], parts["val"]


def build_model(cfg: PretrainConfig, features, init_state: dict | None = None):
    """The method's model around a fresh (or ``--pretrained``) encoder; ``init_state``: ``--init-from``'s
    weights (``read_init_state``; read here when not given)."""
    from ..model.encoder import build_encoder
    from ..model.freeze import apply_freeze

    torch.manual_seed(cfg.seed)
    encoder = build_encoder(
        cfg.preset, features=features, pretrained=cfg.pretrained, seed=cfg.seed, patch_size=cfg.patch_size
    )
    model = methods.build_ssl_model(cfg.method, encoder, cfg.method_settings())
    if init_state is None and cfg.init_from is not None:
        init_state = read_init_state(cfg)
    if init_state is not None:
        load_init_state(model, init_state, cfg.init_from)
    if cfg.freeze != "full":  # "full" trains everything: leave requires_grad as the method set it
        trainable = apply_freeze(model.get_submodule("encoder"), cfg.freeze)
        log.info("--freeze %s: %d trainable encoder parameters", cfg.freeze, trainable)
    return model


def read_init_state(cfg: PretrainConfig) -> dict | None:
    """``--init-from``'s state dict (the original pipeline's ``resume_from_checkpoint``), checked
    before any data is read: it exists, loads as weights and was saved by the same method."""
    if cfg.init_from is None:
        return None
    path = Path(cfg.init_from)
    if not path.is_file():
        raise ConfigError(f"--init-from {path} does not exist: pass a model.pth saved by a pretrain run")
    if (path.parent / "ssl_config.json").is_file():  # a run's final/: the method it was saved with
        saved, _ = methods.read_ssl_config(path.parent)
        if saved.name != cfg.method:
            raise ConfigError(f"--init-from {path} was saved by --method {saved.name}: pass --method {saved.name}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # text, truncated or pickled files: torch raises several kinds
        raise ConfigError(
            f"--init-from {path} is not a model.pth saved by a pretrain run ({type(exc).__name__})"
        ) from exc


def load_init_state(model: torch.nn.Module, state: dict, path: Path | None) -> None:
    """Load ``--init-from``'s weights; another preset's or method's are an error naming the fix."""
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # same names, other shapes (another preset, patch size or --method)
        raise ConfigError(
            f"--init-from {path} does not fit this model ({str(exc).splitlines()[1].strip()}): "
            "use the --preset, --patch-size and --method it was saved with"
        ) from exc
    if missing or unexpected:
        raise ConfigError(
            f"--init-from {path} does not match this model (missing {len(missing)}, unexpected "
            f"{len(unexpected)} keys, e.g. {(missing or unexpected)[:3]}): "
            "use the --preset, --patch-size and --method it was saved with"
        )


def _check_batches(cfg: PretrainConfig, train: int, val: int) -> None:
    """A method that drops the last partial batch (``drop_last``: byol's BatchNorm) needs a full one
    in each split, or it would train or evaluate on nothing."""
    if methods.get(cfg.method).drop_last and min(train, val) < cfg.batch_size:
        raise ConfigError(
            f"--method {cfg.method} drops the last partial batch, and the {'validation' if val < train else 'training'} "
            f"split has {min(train, val)} clips, fewer than --batch-size {cfg.batch_size}: lower --batch-size "
            "(or raise --val-fraction)"
        )


def _check_run_dir(cfg: PretrainConfig, run_dir: Path) -> str | None:
    """Return the checkpoint to resume from, or None; refuse to clobber an unfinished run."""
    if cfg.force or not run_dir.exists():
        return None
    checkpoint = last_complete_checkpoint(run_dir)
    if checkpoint is not None and not cfg.resume:
        raise ConfigError(f"{run_dir} holds an unfinished run: pass --resume to continue it or --force to start over")
    return checkpoint


@runs.lock_scope()  # the run dir's lock (should_skip takes it) is let go also when this raises
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
    init_state = read_init_state(cfg)  # a bad --init-from fails before any data is read
    cache, train_idx, val_idx = load_pretrain_data(cfg)
    _check_batches(cfg, len(train_idx), len(val_idx))
    model = build_model(cfg, cache.settings, init_state)  # and one that does not fit, before the run dir
    log.info("pretraining %s: %d train / %d val clips, %s", run_dir, len(train_idx), len(val_idx), _summary(cfg))
    log.debug("settings %s", cfg.science())
    runs.prepare_run_dir(run_dir, cfg, force=True)
    runs.write_json_atomic(run_dir / "data_summary.json", cache.summary())
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
    if cfg.patch_size is not None:
        model += f", patch {cfg.patch_size}"
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
