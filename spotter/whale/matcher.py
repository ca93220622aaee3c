"""A trained run as a photo-ID matcher: new photos against a catalogue index, on the run's one decision scale.

Photos are embedded and ranked exactly as `whale predict` ranks test photos (the run's fold models together,
kNN over the catalogue mixed with the id head, flips), and the run's calibration turns scores into probabilities
and inserts `new_individual` at the rank where they fall below its threshold. With the run's own train photos as
the catalogue, a match is a prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from spotter.engine.rundir import RunDir, cache_key
from spotter.errors import SpotterError
from spotter.metrics import NEW_INDIVIDUAL
from spotter.progress import NullReporter, Reporter
from spotter.whale.config import WhaleConfig
from spotter.whale.local_features import shortlist_inliers
from spotter.whale.ranking import INLIER_FUSION, InlierFusion, rank
from spotter.whale.views import FoldModel, Views, answering_models, combine, dense_head, embed_models

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class Candidate:
    """One answer for a photo: an individual of the catalogue (or `new_individual`) at its rank."""

    rank: int
    individual_id: str
    probability: float | None  # None for new_individual: it sits where the candidates fall below the threshold
    score: float | None  # the raw kNN + head score
    catalogue_photo: str = ""  # the individual's catalogue photo most like the query
    catalogue_box: tuple[float, float, float, float] | None = None  # its crop box in the index
    inliers: int | None = None  # local-feature inliers with catalogue_photo, when the shortlist was re-ranked


@dataclass
class PhotoMatch:
    """A photo's ranked answers, `new_individual` among them at its rank."""

    photo: str
    candidates: list[Candidate]
    new_threshold: float
    box: tuple[float, float, float, float] | None = None

    @property
    def looks_new(self) -> bool:
        """Whether `new_individual` is the first answer."""
        return bool(self.candidates) and self.candidates[0].individual_id == NEW_INDIVIDUAL

    @property
    def known(self) -> list[Candidate]:
        return [c for c in self.candidates if c.individual_id != NEW_INDIVIDUAL]


@dataclass
class Matcher:
    """A run ready to embed and match photos.

    Attributes:
        run: The run folder.
        cfg: Its config.
        models: Its fold models.
        calibration: Its `RunCalibration` (scores → probabilities, the new_individual threshold).
        vocab: The run's id vocabulary (the id head's classes).
        runtime: Where the models run.
        rerank: The run's `spotter.whale.ranking.InlierFusion` (a shortlist re-ranked by local-feature inliers,
            with its own calibrated probabilities and threshold) when it has one; None: the global score decides.
    """

    run: RunDir
    cfg: WhaleConfig
    models: list[FoldModel]
    calibration: object
    vocab: list[str]
    runtime: object
    rerank: InlierFusion | None = None
    _lookup: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, run_dir: str | Path, runtime=None) -> Matcher:
        """The run's models, calibration and vocabulary.

        Raises:
            SpotterError: If the run is unfinished, uncalibrated or its weights are unreadable.
        """
        from spotter.engine.predict import fold_models
        from spotter.engine.runtime import Runtime
        from spotter.whale.predict import load_calibration
        from spotter.whale.task import WhaleTask

        run = RunDir(run_dir)
        cfg = run.read_config(WhaleConfig)
        calibration = load_calibration(run, cfg)
        if calibration is None:
            raise SpotterError("the run has no calibration (trained before calibrations were stored); train it again",
                               run.path)
        vocab = _run_vocab(run)
        models = [FoldModel(f"fold{f}" if f >= 0 else "full", f, m, None) for f, m in fold_models(WhaleTask(), run, cfg)]
        models = answering_models(models, cfg)  # as predict answers
        rerank = InlierFusion.load(run.file(INLIER_FUSION), cfg.retrieval)
        return cls(run, cfg, models, calibration, vocab, runtime or Runtime(cfg.mixed_precision), rerank)

    @property
    def run_path(self) -> str:
        return str(self.run.path.resolve())

    @property
    def fingerprint(self) -> str:
        """What the run's embeddings of a photo depend on: its weights and config (size, crops, flips)."""
        from spotter.config import to_yaml

        return cache_key(self.run.weights_fingerprint(), to_yaml(self.cfg))

    @property
    def flips(self) -> bool:
        return bool(self.cfg.retrieval.flip_tta)

    @property
    def dim(self) -> int:
        return int(sum(fm.model.head.in_features for fm in self.models))

    def embed(self, photos: pd.DataFrame, boxes: dict, reporter: Reporter = NullReporter(),
              what: str = "photos") -> Views:
        """The run's combined views of photos (a frame with `path`), cropped by `boxes` (by path) when the run crops."""
        rows = pd.DataFrame({"image": [str(p) for p in photos["path"]], "path": [Path(p) for p in photos["path"]]})
        crops = boxes if boxes and self.cfg.use_bboxes else None
        views = embed_models(self.models, rows, self.cfg, crops, self.runtime, reporter, what)
        return combine(views, len(self.vocab))

    def match(
        self,
        index,
        photos: pd.DataFrame,
        boxes: dict | None = None,
        top: int = 5,
        reporter: Reporter = NullReporter(),
    ) -> list[PhotoMatch]:
        """Each photo's `top` answers from the catalogue index, `new_individual` among them at its rank.

        Args:
            index: A `spotter.whale.index.CatalogueIndex` built with this run.
            photos: A frame with `path` (one row per photo to match).
            boxes: Crop boxes of the photos, by path.
            top: Answers per photo (new_individual included).
        """
        if top < 1:
            raise SpotterError(f"--top must be at least 1, got {top}")
        if index.description.get("fingerprint") != self.fingerprint:
            raise SpotterError("the index was built with another run or other weights; index the catalogue again "
                               "with this run", index.folder)
        if not len(index.photos):
            raise SpotterError("the index holds no photos", index.folder)
        queries = self.embed(photos, boxes or {}, reporter, "photos to match")
        catalogue_vocab = sorted(set(index.photos["individual_id"]))
        labels = np.searchsorted(catalogue_vocab, index.photos["individual_id"].to_numpy().astype(str))
        gallery = Views(index.plain, index.flipped if self.flips else None, np.zeros((len(index.plain), 0)),
                        np.zeros(0, np.int64))
        head = self._catalogue_head(queries, catalogue_vocab)
        queries = Views(queries.plain, queries.flipped, head, np.arange(len(catalogue_vocab)))
        width = max(top, self.rerank.shortlist) if self.rerank is not None else top
        cands = rank(queries, gallery, labels, len(catalogue_vocab), self.cfg, top=width)
        names = cands.names(catalogue_vocab)
        best = [self._best_photos(index, queries.plain[i], names[i]) for i in range(len(names))]
        # photos are compared as the run embeds them: cropped by their boxes when it crops
        catalogue_boxes = index.boxes() if self.cfg.use_bboxes else {}
        crops = (boxes or {}) if self.cfg.use_bboxes else {}
        paths = [str(p) for p in photos["path"]]
        if self.rerank is None:
            scores, inliers = cands.scores, None
            probabilities, lists, thresholds = self.calibration.decide(names, scores, [""] * len(names))
        else:
            places = [(p, crops.get(p)) for p in paths]
            shortlists = [[(best[i].get(n, ""), catalogue_boxes.get(best[i].get(n, ""))) for n in names[i]]
                          for i in range(len(names))]
            inliers = shortlist_inliers(places, shortlists, self.rerank.settings, reporter)
            reranked = self.rerank.rerank(names, cands.scores, inliers)
            names, scores, inliers = reranked.names, reranked.scores, reranked.inliers
            probabilities, lists, thresholds = reranked.probabilities, reranked.lists, reranked.thresholds
        thresholds = np.broadcast_to(np.asarray(thresholds, np.float64), (len(names),))
        matches = []
        for i, photo in enumerate(paths):
            score_of = dict(zip(names[i], scores[i]))
            prob_of = dict(zip(names[i], probabilities[i]))
            inliers_of = dict(zip(names[i], inliers[i])) if inliers is not None else {}
            answers = []
            for r, name in enumerate(lists[i][:top], start=1):
                if name == NEW_INDIVIDUAL:
                    answers.append(Candidate(r, name, None, None))
                    continue
                found = best[i].get(name, "")
                answers.append(Candidate(r, name, float(prob_of[name]), float(score_of[name]), found,
                                         catalogue_boxes.get(found),
                                         int(inliers_of[name]) if name in inliers_of else None))
            box = (boxes or {}).get(photo)
            matches.append(PhotoMatch(photo, answers, float(thresholds[i]), box))
        return matches

    def _catalogue_head(self, queries: Views, catalogue_vocab: list[str]) -> np.ndarray:
        """The id head's cosines of each catalogue individual: the run's class where it has one, else each photo's
        lowest cosine (so mixing never favours an individual the head does not know)."""
        run_dense = dense_head(queries.head, queries.class_index, len(self.vocab))
        if not self._lookup:
            self._lookup = {name: i for i, name in enumerate(self.vocab)}
        columns = np.array([self._lookup.get(c, -1) for c in catalogue_vocab])
        fill = run_dense.min(axis=1, keepdims=True) if run_dense.size else np.zeros((len(run_dense), 1), np.float32)
        head = np.repeat(fill, len(catalogue_vocab), axis=1).astype(np.float32)
        known = columns >= 0
        head[:, known] = run_dense[:, columns[known]]
        return head

    @staticmethod
    def _best_photos(index, query: np.ndarray, names: Sequence[str]) -> dict[str, str]:
        """For each candidate, its catalogue photo most similar to the query."""
        out = {}
        for name in names:
            rows = np.flatnonzero(index.photos["individual_id"].to_numpy() == name)
            if len(rows):
                out[name] = str(index.photos["path"].iloc[rows[int(np.argmax(index.plain[rows] @ query))]])
        return out


def _run_vocab(run: RunDir) -> list[str]:
    """The run's id vocabulary, as its out-of-fold arrays recorded it."""
    path = run.oof_arrays
    if not path.is_file():
        raise SpotterError(f"no {path.name}: the run's id vocabulary is unknown", run.path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return [str(v) for v in z["vocab"]]
    except (OSError, ValueError, KeyError) as err:
        raise SpotterError(f"cannot read {path.name} ({type(err).__name__})", path) from None


def list_photos(items: Sequence[str | Path]) -> list[Path]:
    """Photo files from files and folders (a folder gives its image files, sorted; not recursive).

    Raises:
        SpotterError: If an item is missing, or a folder holds no photos.
    """
    photos = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
            if not found:
                raise SpotterError(f"no photos ({', '.join(PHOTO_SUFFIXES)}) in the folder", path)
            photos += found
        elif path.is_file():
            photos.append(path)
        else:
            raise SpotterError("photo not found", path)
    return [p.resolve() for p in photos]


def matches_frame(matches: Sequence[PhotoMatch]) -> pd.DataFrame:
    """One row per photo and answer: photo, rank, individual_id, probability (empty for new_individual), score,
    catalogue_photo, new_threshold, inliers (local-feature inliers with catalogue_photo; empty unless re-ranked)."""
    rows = [
        (m.photo, c.rank, c.individual_id, c.probability, c.score, c.catalogue_photo, m.new_threshold,
         pd.NA if c.inliers is None else c.inliers)
        for m in matches
        for c in m.candidates
    ]
    frame = pd.DataFrame(rows, columns=["photo", "rank", "individual_id", "probability", "score", "catalogue_photo",
                                        "new_threshold", "inliers"])
    frame["inliers"] = frame["inliers"].astype("Int64")
    return frame
