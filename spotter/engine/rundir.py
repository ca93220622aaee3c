"""The run folder: the one module that knows its layout; everything else asks a `RunDir` for its paths.

```
RUN/
  config.yaml          the resolved config
  folds.csv            <id>,fold for every training sample
  fold<k>/ or full/    best.safetensors (best epoch), state.pt (resume state), log.csv (one row per epoch)
  oof.csv | oof.npz    out-of-fold predictions (a table for id,target tasks, arrays for the others)
  metrics.json         the task, the trained folds, out-of-fold and per-fold metrics; written last
  report.html          the run's report and its figures
  <kind>-<key>.<ext>   caches (e.g. test predictions), keyed by what they depend on
```

Tasks keep a few files of their own in the run folder (`RunDir.file`); each such name is a constant of the
one task module that writes it. A run is *finished* once `metrics.json` exists.
"""

from __future__ import annotations

import enum
import hashlib
import json
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from spotter.config import TrainConfig, load_config, to_yaml
from spotter.errors import SpotterError
from spotter.io import check_output_folder, ensure_writable_dir, read_csv, write_csv, write_json, write_text

CONFIG = "config.yaml"
FOLDS = "folds.csv"
METRICS = "metrics.json"
OOF_TABLE = "oof.csv"
OOF_ARRAYS = "oof.npz"
REPORT = "report.html"
WEIGHTS = "best.safetensors"
STATE = "state.pt"
LOG = "log.csv"
FULL_FIT = -1  # the fold number of a fit on all data
# what a resume state holds (`spotter.engine.loop` writes it); "ema" is there too when the run uses EMA
STATE_KEYS = ("model", "optimizer", "epoch", "best_metric", "best_epoch", "best_index", "best_predictions")
_RESTART = "delete it to restart this fold, or --overwrite to train the run again"

# keys that may differ when an interrupted run is resumed: they change speed, never results
RESUME_MAY_CHANGE = ("resume", "num_workers", "threads")

C = TypeVar("C", bound=TrainConfig)


class Start(enum.Enum):
    """What training into a folder does."""

    NEW = "new"  # an empty or missing folder
    REPLACE = "replace"  # a run there is removed first (`--overwrite`)
    RESUME = "resume"  # an interrupted run continues (`resume=true`)
    FINISHED = "finished"  # `resume=true` on a finished run: nothing to do


def fold_name(fold: int) -> str:
    """`fold<k>` for a CV fold, `full` for the fit on all data."""
    return "full" if fold == FULL_FIT else f"fold{fold}"


def folds_to_train(cfg: TrainConfig) -> list[int]:
    """The folds a run trains: `train_folds`, or every fold when it is empty."""
    return list(cfg.train_folds) if cfg.train_folds else list(range(cfg.n_folds))


def cache_key(*parts: bytes | str) -> str:
    """A short hex digest of the parts (file contents, settings) a cached result depends on."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


class RunDir:
    """A run folder.

    Args:
        path: The folder (it need not exist yet).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    # ------------------------------------------------------------------------------------------- paths

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def folds_path(self) -> Path:
        return self.path / FOLDS

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    @property
    def oof_table(self) -> Path:
        """Out-of-fold predictions of id,target tasks (id, target, pred)."""
        return self.path / OOF_TABLE

    @property
    def oof_arrays(self) -> Path:
        """Out-of-fold predictions of tasks that keep arrays (an `.npz`)."""
        return self.path / OOF_ARRAYS

    @property
    def report_path(self) -> Path:
        return self.path / REPORT

    def fold_dir(self, fold: int) -> Path:
        return self.path / fold_name(fold)

    def weights_path(self, fold: int) -> Path:
        """The fold's best weights (safetensors)."""
        return self.fold_dir(fold) / WEIGHTS

    def state_path(self, fold: int) -> Path:
        """The fold's resume state (torch, loaded with weights_only=True)."""
        return self.fold_dir(fold) / STATE

    def log_path(self, fold: int) -> Path:
        """The fold's per-epoch log."""
        return self.fold_dir(fold) / LOG

    def file(self, name: str) -> Path:
        """A file a task keeps in the run folder; `name` is a constant of that task's module."""
        return self.path / name

    def cache_path(self, kind: str, key: str, suffix: str) -> Path:
        """`<kind>-<key><suffix>`: a cached result keyed by what it depends on (see `cache_key`)."""
        return self.path / f"{kind}-{key}{suffix}"

    # ------------------------------------------------------------------------------------------- state

    def holds_run(self) -> bool:
        """Whether the folder holds a run (finished or not)."""
        return self.config_path.is_file()

    def is_finished(self) -> bool:
        return self.metrics_path.is_file()

    def plan_start(self, cfg: TrainConfig, overwrite: bool = False) -> Start:
        """Decides what training `cfg` into this folder does, changing nothing.

        Raises:
            SpotterError: If the folder holds a run and neither `resume` nor `overwrite` is set; if it holds
                anything else; if a run being resumed had another config; or if both options are set.
        """
        if cfg.resume and overwrite:
            raise SpotterError("choose either resume=true (continue the run) or --overwrite (replace it), not both")
        if self.path.exists() and not self.path.is_dir():
            raise SpotterError("run folder exists and is not a folder", self.path)
        check_output_folder(self.path)
        if not self.holds_run():
            clutter = [p for p in self._entries() if not _is_temporary(p)]
            if clutter:
                raise SpotterError(
                    f"not empty and holds no run (e.g. {clutter[0].name!r}); train into a new or empty folder",
                    self.path,
                )
            return Start.NEW
        if overwrite:
            return Start.REPLACE
        if not cfg.resume:
            raise SpotterError(
                "already holds a run; add resume=true to continue it, or --overwrite to replace it", self.path
            )
        self._check_same_config(cfg)
        return Start.FINISHED if self.is_finished() else Start.RESUME

    def begin(self, start: Start) -> None:
        """Prepares the folder for training as planned: creates it, removes a replaced run, or drops the
        temporary files of writes cut short by a kill (the files they were to replace are intact)."""
        if start is Start.REPLACE:
            shutil.rmtree(self.path)
        ensure_writable_dir(self.path)
        if start is Start.RESUME:
            for stale in self.path.rglob(".*.tmp"):
                stale.unlink()

    def _entries(self) -> list[Path]:
        return sorted(self.path.iterdir()) if self.path.is_dir() else []

    def _check_same_config(self, cfg: TrainConfig) -> None:
        saved = self.read_config(type(cfg))
        for key in RESUME_MAY_CHANGE:
            setattr(saved, key, getattr(cfg, key))
        if to_yaml(saved) == to_yaml(cfg):
            return
        from omegaconf import OmegaConf

        old, new = _flatten(OmegaConf.to_container(OmegaConf.structured(saved))), _flatten(
            OmegaConf.to_container(OmegaConf.structured(cfg))
        )
        key = next(k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k))
        raise SpotterError(
            f"config key {key!r} is {new.get(key)!r} but the run being resumed has {old.get(key)!r}; "
            "resume with the run's config, or train into a new folder",
            self.config_path,
        )

    # ------------------------------------------------------------------------------------------- reading and writing

    def write_config(self, cfg: TrainConfig) -> None:
        write_text(self.config_path, to_yaml(cfg))

    def read_config(self, schema: type[C]) -> C:
        """The run's resolved config as `schema`.

        Raises:
            SpotterError: If the folder holds no run, or its config does not fit the schema.
        """
        if not self.path.is_dir():
            raise SpotterError("run folder not found", self.path)
        if not self.holds_run():
            raise SpotterError(f"not a run folder (no {CONFIG})", self.path)
        return load_config(schema, self.config_path)

    def write_folds(self, frame: pd.DataFrame) -> None:
        write_csv(self.folds_path, frame)

    def read_folds(self, id_column: str) -> pd.DataFrame:
        """`folds.csv`: the id column (as strings) and each sample's fold."""
        return read_csv(self.folds_path, required=[id_column, "fold"], dtype={id_column: str})

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json(self.metrics_path, metrics)

    def read_metrics(self) -> dict[str, Any]:
        """`metrics.json` of a finished run.

        Raises:
            SpotterError: If the run has not finished (no metrics.json) or the file is unreadable.
        """
        if not self.is_finished():
            raise SpotterError(f"not a finished run folder (no {METRICS})", self.path)
        try:
            metrics = json.loads(self.metrics_path.read_text())
        except (OSError, ValueError) as err:
            raise SpotterError(f"unreadable {METRICS} ({type(err).__name__})", self.metrics_path) from None
        if not isinstance(metrics, dict):
            raise SpotterError(f"{METRICS} holds no object", self.metrics_path)
        return metrics

    def task_name(self) -> str:
        """The task the run was trained for (recorded in its metrics.json)."""
        metrics = self.read_metrics()
        if not isinstance(metrics.get("task"), str):
            raise SpotterError(f"{METRICS} names no task", self.metrics_path)
        return metrics["task"]

    def trained_weights(self, cfg: TrainConfig, finished: bool = True) -> list[tuple[int, Path]]:
        """(fold, best weights) of every fold the run trained, in fold order (a full fit last).

        Args:
            cfg: The run's config (which folds it trains).
            finished: Require a finished run; False while training finishes (the task's last step).

        Raises:
            SpotterError: If the run has not finished, or a fold it trained has no weights (naming the fold).
        """
        if finished and not self.is_finished():
            raise SpotterError(
                f"training did not finish (no {METRICS}); continue it with resume=true, then predict", self.path
            )
        folds = sorted(folds_to_train(cfg), key=lambda f: (f == FULL_FIT, f))
        out = []
        for fold in folds:
            path = self.weights_path(fold)
            if not path.is_file():
                raise SpotterError(f"{fold_name(fold)} was trained but its weights are missing", path)
            check_weights_file(path)
            out.append((fold, path))
        return out

    def check_resume_states(self) -> None:
        """Checks every fold's resume state is an intact file before an interrupted run continues.

        Raises:
            SpotterError: Naming the first state file that is cut short or corrupt.
        """
        for path in sorted(self.path.glob(f"*/{STATE}")):
            check_state_file(path)

    def read_state(self, fold: int) -> dict[str, Any]:
        """The fold's resume state (tensors and numbers only: `weights_only=True`).

        Raises:
            SpotterError: If the file is cut short, corrupt, or not a resume state.
        """
        import torch

        path = self.state_path(fold)
        check_state_file(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several types for files it cannot unpickle
            raise SpotterError(f"cannot read the resume state ({_first_line(err)}); {_RESTART}", path) from None
        if not isinstance(state, dict) or not set(STATE_KEYS) <= set(state):
            raise SpotterError(f"not a resume state (expected keys {', '.join(STATE_KEYS)}); {_RESTART}", path)
        return state

    def weights_fingerprint(self) -> str:
        """Names, sizes and modification times of the weight files: a retrained run invalidates its caches."""
        paths = sorted(self.path.glob(f"*/{WEIGHTS}"))
        return ";".join(f"{p.relative_to(self.path)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in paths)


def check_weights_file(path: Path) -> None:
    """Checks a safetensors file's header and size (not its values) without loading its tensors.

    Raises:
        SpotterError: If the file is cut short, corrupt or not safetensors.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            if not list(handle.keys()):
                raise SpotterError("weights file holds no tensors", path)
    except SpotterError:
        raise
    except Exception as err:  # safetensors raises its own error type for files cut short or corrupt
        raise SpotterError(f"cannot load weights ({_first_line(err)}); retrain this fold", path) from None


def check_state_file(path: Path) -> None:
    """Checks a resume state (a torch zip archive) is complete and its stored checksums match.

    torch.load reads a file whose bytes were damaged without complaint, so the archive's CRCs are tested here.

    Raises:
        SpotterError: Naming the file when it is cut short or corrupt.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise SpotterError(f"unreadable resume state ({_first_line(err)}); {_RESTART}", path) from None
    if damaged is not None:
        record = damaged.rsplit("/", 1)[-1]
        raise SpotterError(f"resume state is corrupt (record {record!r} fails its checksum); {_RESTART}", path)


def distinct_runs(runs: Sequence[str | Path]) -> list[RunDir]:
    """The runs as `RunDir`s, checked to be given once each.

    Raises:
        SpotterError: If no run is given, or one is given twice.
    """
    if not runs:
        raise SpotterError("no runs given")
    resolved = [Path(r).resolve() for r in runs]
    for i, run in enumerate(resolved):
        if run in resolved[:i]:
            raise SpotterError("run given twice", runs[i])
    return [RunDir(r) for r in runs]


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def _is_temporary(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(".tmp")


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out

