"""One source of truth for every run: typed defaults (dataclasses) + a YAML file + `key=value` overrides.

OmegaConf validates types on merge, so a typo in a key or a string where a number belongs is an
error before anything trains. The resolved config is written into every run folder and into
every checkpoint as a plain dict.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dlcv.errors import ConfigError
from dlcv.models.classifier_config import ModelConfig, upgrade


@dataclass
class RunConfig:
    name: str = ""  # default: the config file's stem
    dir: str = "runs"  # the run folder is <dir>/<name>
    seed: int = 0
    data_kind: str = "auto"  # demo | real | auto (auto: a DEMO_DATA marker in the data root means demo)


@dataclass
class TrainerConfig:
    epochs: int = 10
    accelerator: str = "auto"  # auto | cpu | gpu
    devices: Any = "auto"  # an int, a list of GPU ids, or "auto"
    num_nodes: int = 1
    strategy: str = "auto"  # auto | ddp | ddp_spawn ...; several devices -> ddp
    precision: str = "auto"  # auto: bf16-mixed on bf16 GPUs, 16-mixed on older GPUs, 32-true on CPU
    sync_batchnorm: bool = False
    deterministic: bool = False  # torch deterministic algorithms (slower); seeding is always on
    compile: bool = False  # torch.compile the model
    channels_last: bool = True
    grad_clip: float = 0.0  # 0 = off
    accumulate: int = 1
    limit_train_batches: float = 1.0  # float = fraction, >1 = number of batches (smoke tests)
    limit_val_batches: float = 1.0
    val_every: int = 1
    # epochs (1-based) whose checkpoint is kept besides best and last; empty = first, middle, last
    checkpoint_epochs: list[int] = field(default_factory=list)
    progress: bool = True
    # live curves (runs/<name>/logs/: TensorBoard + CSV): the per-step values every N optimizer steps
    log_every_n_steps: int = 10
    # EMA of the weights (and BN buffers) after every optimizer step k: e = d * e + (1 - d) * w with
    # d = min(ema_decay, k / (9 + k)) (dlcv.callbacks.warmup_ema_avg_fn); validation, best.ckpt and
    # model.pt use it. 0 = off; e.g. 0.999 (about the last 1000 steps)
    ema_decay: float = 0.0
    ema_warmup_epochs: int = 0  # the average just copies the weights during the first N epochs


@dataclass
class OptimConfig:
    name: str = "adam"  # adam | adamw | sgd | lars
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd / lars
    nesterov: bool = False  # sgd: Nesterov momentum
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    schedule: str = "constant"  # constant | cosine | poly | step
    warmup_epochs: float = 0.0
    min_lr_ratio: float = 0.0  # cosine floor as a fraction of lr
    step_epochs: list[int] = field(default_factory=list)  # step schedule milestones
    step_gamma: float = 0.1
    # LARS (BYOL paper): no weight decay and no adaptation for biases and norm layers
    lars_eta: float = 0.001
    # classifiers' per-group LRs (dlcv.optim.layerwise_lr_scales): the head trains at lr, the backbone
    # at lr * backbone_lr_scale * layer_decay ** depth (depth: layers between it and the head, from
    # the model's layer map); the schedule scales every group alike. 1 and 1 = one lr for all
    backbone_lr_scale: float = 1.0
    layer_decay: float = 1.0  # e.g. 0.8: each layer down from the head gets 0.8x the LR of the one above


@dataclass
class DataConfig:
    root: str = "hw1_data"
    batch_size: int = 32
    eval_batch_size: int = 0  # 0 = 2 x batch_size
    num_workers: int = 0  # the caches are in memory; workers only pay off for slow storage
    cache_dir: str = ""  # "" = <root>/.dlcv_cache
    limit: int = 0  # >0: use only the first N training items (smoke tests)


@dataclass
class FeaturesConfig:
    # epochs (1-based) at which penultimate-layer outputs on the validation set are saved;
    # empty = first, middle, last
    epochs: list[int] = field(default_factory=list)
    enabled: bool = True
    tsne_perplexity: float = 30.0
    max_points: int = 0  # 0 = every validation image


@dataclass
class MixConfig:
    """MixUp / CutMix of each training batch (dlcv.data.augment.mix; torchvision v2 semantics)."""
    mixup_alpha: float = 0.0  # > 0: MixUp with lam ~ Beta(alpha, alpha)
    cutmix_alpha: float = 0.0  # > 0: CutMix with lam ~ Beta(alpha, alpha)
    prob: float = 1.0  # the chance that a batch is mixed at all
    switch_prob: float = 0.5  # both on: the chance of CutMix rather than MixUp for a batch


@dataclass
class ClassifyConfig:
    task: str = "classify"
    dataset: str = "p1"  # p1 | office
    # dlcv.data.augment.classify.AUGMENTS: none | crop | crop_flip[_jitter|_ta|_ra] | rrc_flip[_jitter|_ta]
    augment: str = "none"
    label_smoothing: float = 0.0
    run: RunConfig = field(default_factory=RunConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    mix: MixConfig = field(default_factory=MixConfig)


def _byol_schema() -> type:
    from dlcv.jobs.byol import ByolConfig

    return ByolConfig


def _segment_schema() -> type:
    from dlcv.jobs.segment import SegmentConfig

    return SegmentConfig


# task -> its schema; the other jobs keep theirs beside their code, imported when a config needs it
SCHEMAS: dict[str, Callable[[], type]] = {
    "classify": lambda: ClassifyConfig,
    "byol": _byol_schema,
    "segment": _segment_schema,
}


def schema_for(task: str) -> type:
    return SCHEMAS[task]()


PACKAGED_CONFIGS = Path(__file__).resolve().parent / "configs"  # the checkout's configs/ links here


def find_config(path: str | Path) -> Path:
    """`path` as given, else the same name among the configs shipped inside the package: so
    `dlcv train configs/p1/seed_a.yaml` also works after a plain `pip install .`, from any folder."""
    path = Path(path)
    if path.is_file():
        return path
    parts = path.parts[1:] if path.parts[:1] == ("configs",) else path.parts
    packaged = PACKAGED_CONFIGS.joinpath(*parts) if parts else PACKAGED_CONFIGS
    return packaged if packaged.is_file() else path


def load_config(path: Optional[str | Path] = None, overrides: list[str] | tuple[str, ...] = (),
                base: Optional[dict] = None) -> DictConfig:
    """Merge typed defaults <- YAML file (or `base` dict) <- `key=value` overrides; validate types."""
    raw: dict = {}
    if path is not None:
        path = find_config(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            raw = OmegaConf.to_container(OmegaConf.load(path)) or {}
        except Exception as exc:  # yaml errors carry line numbers
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if base is not None:
        raw = base
    dotlist = [o for o in overrides]
    for o in dotlist:
        if "=" not in o:
            raise ConfigError(f"override {o!r} is not key=value")
    cli = OmegaConf.from_dotlist(dotlist)
    task = cli.get("task", raw.get("task", "classify"))
    if task not in SCHEMAS:
        raise ConfigError(f"{path}: unknown task {task!r}; known: {sorted(SCHEMAS)}")
    schema = OmegaConf.structured(schema_for(task))
    try:
        cfg = OmegaConf.merge(schema, raw, cli)
    except OmegaConfBaseException as exc:
        where = f"{path}" if path else "config"
        raise ConfigError(f"{where}: {exc.__class__.__name__}: {exc}".split("\n    full_key")[0]) from exc
    if not cfg.run.name:
        cfg.run.name = Path(path).stem if path else task
    OmegaConf.set_readonly(cfg, False)
    return cfg


def to_dict(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)


def from_dict(d: dict) -> DictConfig:
    """Rebuild a typed config from the plain dict stored in a checkpoint (an older classifier
    layout is upgraded first: dlcv.models.classifier_config.upgrade)."""
    if d.get("task", "classify") == "classify" and isinstance(d.get("model"), dict):
        d = {**d, "model": upgrade(d["model"])}
    return load_config(base=d)


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)
