"""Experiment configs: dataclass schemas, YAML files and `key=value` overrides merged by OmegaConf."""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import importlib.resources
import inspect
import io
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, TypeVar

import yaml
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from spotter.errors import SpotterError

# the shipped experiment configs, one folder per task, inside the package (so an installed wheel has them)
CONFIG_ROOT = Path(str(importlib.resources.files("spotter") / "configs"))
DEFAULT_CONFIG = "cpu"  # the shipped config that fits a 2-core laptop

MIXED_PRECISION = ("auto", "fp32", "bf16", "fp16")  # not "no": YAML reads that as false


@dataclass
class MixingConfig:
    """Batch mixing (mixup family); see `spotter.engine.mixing`."""

    name: str = "none"  # none | mixup | or_mixup | cutmix | or_cutmix
    alpha: float = 1.0  # Beta(alpha, alpha) for the mixing weight
    prob: float = 0.5  # chance that a batch is mixed
    until: float = 1.0  # active for this fraction of the epochs (2nd place SETI: 0.8)


@dataclass
class LossConfig:
    """Training loss; see `spotter.models.losses`."""

    name: str = "bce"  # bce | focal | ce
    gamma: float = 2.0  # focal only
    alpha: Optional[float] = None  # focal only: weight of the positive class
    label_smoothing: float = 0.0  # ce only


@dataclass
class TrainConfig:
    """Keys every training config has; tasks subclass it to add their own sections."""

    seed: int = 42  # the one seed of a run: weights, data order, augmentation (same seed, same OOF predictions)
    fold_seed: Optional[int] = None  # shuffle seed of the folds; None = `seed` (set it to blend seed variants)
    epochs: int = 5  # passes over the training samples of each fold
    full_fit_epochs: Optional[int] = None  # passes of the fit on all data (fold -1); None = `epochs`
    batch_size: int = 32  # samples per step and process
    lr: float = 1e-3  # peak learning rate of the backbone
    n_folds: int = 5  # folds of the cross-validation split
    train_folds: list[int] = field(default_factory=list)  # folds to train: [] = every fold; [-1] = one fit on all data
    num_workers: int = 0  # data-loader worker processes (0 loads in the training process)
    image_size: int = 0  # side the inputs are resized to; 0 keeps the native size

    optimizer: str = "adamw"  # adamw | adam | sgd | madgrad | radam
    weight_decay: float = 1e-2  # decoupled weight decay (AdamW) or L2 (the others)
    head_lr_mult: float = 1.0  # head LR = lr * head_lr_mult (parameters outside `backbone.`)
    warmup_epochs: float = 0.0  # epochs of linear warmup before the cosine decay
    min_lr_ratio: float = 0.0  # cosine floor, as a fraction of the peak LR
    grad_accum: int = 1  # steps whose gradients are summed before an update
    grad_clip: float = 0.0  # max gradient norm; 0 disables clipping
    ema: bool = False  # keep an EMA of the weights; validation and the best checkpoint use it
    ema_decay: float = 0.999  # EMA decay per update
    mixed_precision: str = "auto"  # auto = bf16 on a GPU that has it, otherwise fp32
    channels_last: bool = False  # NHWC memory layout (faster convolutions on recent GPUs and on CPUs)
    threads: int = 0  # torch CPU threads per process; 0 keeps torch's default
    stratify_by: Optional[str] = None  # column for stratified folds; None = the task's target
    group_by: Optional[str] = None  # column for grouped folds (overrides stratify_by)
    resume: bool = False  # continue the interrupted run in --out (a finished run is left as it is)
    mixing: MixingConfig = field(default_factory=MixingConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def check(self) -> None:
        """Checks values whose type is right but whose range is not; task configs extend it with their keys.

        Runs when the config loads, before any slow work (and before torch is imported).

        Raises:
            SpotterError: Naming the first key out of range.
        """
        require_all(self, [
            (self.epochs >= 1, "epochs", "at least 1"),
            (self.full_fit_epochs is None or self.full_fit_epochs >= 1, "full_fit_epochs", "at least 1 (or null)"),
            (self.batch_size >= 1, "batch_size", "at least 1"),
            (self.lr > 0, "lr", "positive"),
            (self.n_folds >= 2, "n_folds", "at least 2"),
            (all(-1 <= f < self.n_folds for f in self.train_folds), "train_folds", f"folds in -1..{self.n_folds - 1}"),
            (self.num_workers >= 0, "num_workers", "0 or more"),
            (self.image_size >= 0, "image_size", "0 or more"),
            (self.grad_accum >= 1, "grad_accum", "at least 1"),
            (0 <= self.ema_decay < 1, "ema_decay", "in [0, 1)"),
            (self.mixed_precision in MIXED_PRECISION, "mixed_precision", " | ".join(MIXED_PRECISION)),
            (0 <= self.mixing.until <= 1, "mixing.until", "in [0, 1]"),
            (0 <= self.mixing.prob <= 1, "mixing.prob", "in [0, 1]"),
        ])


def pretrained_value(value: str | bool | None) -> bool | str:
    """`model.pretrained` as `spotter.models.backbones.create_backbone` takes it: True, False or a file path.

    A string in the config so YAML can hold any of the three: true/false (any case, yes/no, 1/0) or a path.
    """
    lowered = str(value).strip().lower()
    if lowered in ("true", "yes", "1", "bundled"):
        return True
    if lowered in ("false", "no", "0", "none", "null", ""):
        return False
    return str(value)


def require_all(config: Any, checks: list[tuple[bool, str, str]]) -> None:
    """Raises for the first failed (ok, dotted key, what was expected) check, naming the key and its value.

    Raises:
        SpotterError: `config key 'KEY' must be EXPECTED, got VALUE`.
    """
    for ok, key, expected in checks:
        if not ok:
            raise SpotterError(f"config key {key!r} must be {expected}, got {_get(config, key)!r}")


C = TypeVar("C", bound=TrainConfig)


def load_config(schema: type[C], path: str | Path | None = None, overrides: list[str] = ()) -> C:
    """Builds a config from `schema` defaults, a YAML file and `key=value` overrides, in that order.

    Args:
        schema: The task's config dataclass.
        path: A YAML experiment file, or None for the schema's defaults.
        overrides: `key=value` strings; dotted keys reach into sections (`loss.gamma=0.5`).

    Raises:
        SpotterError: On an unknown key, a value of the wrong type, or an unreadable file.
    """
    merged = OmegaConf.structured(schema)
    sources: list[tuple[str, Any]] = []
    if path is not None:
        path = Path(path)
        sources.append((str(path), _read_yaml(path)))
    for item in overrides:
        if "=" not in item:
            raise SpotterError(f"override {item!r} is not of the form key=value")
    if overrides:
        try:
            sources.append(("command line", OmegaConf.from_dotlist(list(overrides))))
        except OmegaConfBaseException as err:
            raise SpotterError(f"cannot parse overrides ({err})") from None
    for where, source in sources:
        try:
            merged = OmegaConf.merge(merged, source)
        except ConfigKeyError as err:
            raise SpotterError(f"unknown config key {_key(err)!r} ({where}){_suggest(schema, _key(err))}") from None
        except ValidationError as err:
            key = _key(err) if _key(err) != "?" else _misplaced_section(schema, source)
            raise SpotterError(f"config key {key!r} ({where}): {_first_line(err)}") from None
        except OmegaConfBaseException as err:
            raise SpotterError(f"config ({where}): {_first_line(err)}") from None
    try:
        config = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise SpotterError(f"config key {_key(err)!r}: {_first_line(err)}") from None
    config.check()
    return config


def _read_yaml(path: Path) -> Any:
    """A config file as an OmegaConf mapping (empty for an empty file).

    Raises:
        SpotterError: Naming the file when it is missing, unreadable, not YAML, or not a mapping at the top.
    """
    if not path.is_file():
        raise SpotterError("config file not found", path)
    try:
        # parsed once here to see the top level: OmegaConf reads a bare word as a key and a list as a list
        tree = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SpotterError(f"cannot parse YAML ({_yaml_problem(err)})", path) from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpotterError(f"cannot read config file ({type(err).__name__})", path) from None
    if tree is None:
        return OmegaConf.create()
    if not isinstance(tree, dict):
        kind = {list: "a list", str: "a bare string", bool: "true/false"}.get(type(tree), "a single value")
        raise SpotterError(f"the top level is {kind}; expected a mapping of config keys (`key: value` lines)", path)
    try:
        return OmegaConf.load(path)  # its loader also refuses duplicate keys
    except yaml.YAMLError as err:
        raise SpotterError(f"cannot parse YAML ({_yaml_problem(err)})", path) from None
    except Exception as err:  # omegaconf raises several types
        raise SpotterError(f"cannot parse YAML ({_first_line(err)})", path) from None


def _yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error in one line: what, and where."""
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{getattr(err, 'problem', None) or _first_line(err)}{where}"


def to_yaml(config: TrainConfig) -> str:
    """The resolved config as YAML, the form saved in each run folder."""
    return OmegaConf.to_yaml(OmegaConf.structured(config))


def shipped_configs(task: str) -> dict[str, Path]:
    """The configs spotter ships for a task, by name (`cpu`, `gpu_3rd`, ...)."""
    return {p.stem: p for p in sorted((CONFIG_ROOT / task).glob("*.yaml"))}


def default_config_path(task: str) -> Path | None:
    """The task's shipped `cpu` config, the default that fits a 2-core laptop; None when the task ships none (its
    config schema's defaults apply then)."""
    return shipped_configs(task).get(DEFAULT_CONFIG)


def resolve_config(task: str, value: str | None) -> Path | None:
    """The YAML file `--config VALUE` names: a file path, or the name of a config the task ships.

    Raises:
        SpotterError: If it is neither, listing the shipped names.
    """
    if value is None:
        return default_config_path(task)
    path = Path(value)
    if path.is_file():
        return path
    shipped = shipped_configs(task)
    if value in shipped:
        return shipped[value]
    names = ", ".join(shipped) or "none"
    raise SpotterError(f"config file not found; expected a YAML file or a shipped {task} config ({names})", value)


@dataclass(frozen=True)
class KeyInfo:
    """One key of a config schema: its dotted name, default and the one-line meaning written beside it."""

    key: str
    default: Any
    meaning: str


def describe_config(schema: type) -> list[KeyInfo]:
    """Every key of a config schema (sections flattened to dotted keys) with its default and meaning.

    The meaning is the comment written beside the field in the schema's source (a section's is its class
    docstring's first line), so the listing never drifts from the code.
    """
    out: list[KeyInfo] = []
    defaults = schema()
    for f in dataclasses.fields(schema):
        value = getattr(defaults, f.name)
        if dataclasses.is_dataclass(value):
            section = type(value)
            out.append(KeyInfo(f.name, "", (inspect.getdoc(section) or "").splitlines()[0]))
            out += [KeyInfo(f"{f.name}.{k.key}", k.default, k.meaning) for k in describe_config(section)]
        else:
            out.append(KeyInfo(f.name, value, _field_comments(schema).get(f.name, "")))
    return out


@functools.cache
def _field_comments(schema: type) -> dict[str, str]:
    """Field name → the comment on its line, for `schema` and the classes it inherits fields from."""
    comments: dict[str, str] = {}
    for cls in reversed(schema.__mro__):
        if not dataclasses.is_dataclass(cls):
            continue
        source = inspect.getsource(cls)
        line_comments = {
            tok.start[0]: tok.string.lstrip("# ").strip()
            for tok in tokenize.generate_tokens(io.StringIO(source).readline)
            if tok.type == tokenize.COMMENT
        }
        body = ast.parse(source).body[0]
        for node in body.body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                if node.lineno in line_comments:
                    comments[node.target.id] = line_comments[node.lineno]
    return comments


def _suggest(schema: type, key: str) -> str:
    """`; did you mean 'a' or 'b'?` for an unknown key, from the schema's keys ('' when none is close)."""
    keys = [k.key for k in describe_config(schema)]
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
    close += [k for k in keys if k.rsplit(".", 1)[-1] == leaf and k not in close]
    close = close[:3]
    if not close:
        return "; `spotter config TASK` lists every key"
    return "; did you mean " + " or ".join(repr(k) for k in close) + "?"


def _misplaced_section(schema: type, source: Any) -> str:
    """The first key of `source` that gives a section (a nested dataclass of `schema`) a plain value."""
    sections = {f.name for f in dataclasses.fields(schema) if dataclasses.is_dataclass(f.default_factory)}
    for key in source.keys() if hasattr(source, "keys") else ():
        if key in sections and not OmegaConf.is_dict(source[key]):
            return str(key)
    return "?"


def _get(config: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        config = getattr(config, part)
    return config


def _key(err: OmegaConfBaseException) -> str:
    return str(getattr(err, "full_key", None) or getattr(err, "key", None) or "?")


def _first_line(err: Exception) -> str:
    return str(err).splitlines()[0]


__all__ = ["TrainConfig", "MixingConfig", "LossConfig", "load_config", "describe_config", "pretrained_value", "require_all", "resolve_config", "shipped_configs", "to_yaml", "default_config_path", "MISSING"]
