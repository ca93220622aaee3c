"""The whale training config (free of torch imports so the CLI checks configs instantly)."""

from __future__ import annotations

from dataclasses import dataclass, field
from spotter.config import TrainConfig, require_all

HEADS = ("arcface", "subcenter")
THRESHOLD_MODES = ("best", "per_species", "ratio", "oof_ratio")  # the policies of `spotter.whale.threshold`
CALIBRATIONS = ("logistic", "isotonic")  # the score calibrations of `spotter.whale.calibration`
PREDICT_WITH = ("all", "full")  # the models a run answers with (`spotter.whale.views.answering_models`)


@dataclass
class WhaleModelConfig:
    """timm trunk (feature stages) → GeM → linear → BatchNorm neck → embedding.

    `pretrained`: true loads the bundled offline ImageNet weights of `backbone` (EfficientNet-Lite0),
    a string is a local `.safetensors`/torch file, false trains from scratch.
    """

    backbone: str = "tf_efficientnet_lite0"  # any timm model with feature stages
    pretrained: str = "true"  # ImageNet weights: true (bundled Lite0 offline, else timm hub) | false | a weights file
    gem_p: float = 3.0  # GeM exponent (1 = average pooling, large = max pooling)
    gem_learnable: bool = True  # train the GeM exponent
    two_stages: bool = False  # GeM over the last two stages, concatenated (Happywhale 1st)
    embedding_size: int = 512  # size of the embedding retrieval compares
    bn_neck: bool = True  # BatchNorm after the embedding layer
    drop_rate: float = 0.0  # dropout before the embedding layer


@dataclass
class WhaleHeadConfig:
    """Margin heads: ids (ArcFace / sub-center ArcFace, dynamic margins) and an optional species head.

    Dynamic margin m(n) = margin_a·n^(−margin_lambda) + margin_b for a class with n train photos;
    `dynamic_margin: false` uses `margin` for every class.
    """

    name: str = "subcenter"  # arcface | subcenter
    subcenters: int = 2  # centres per class of the subcenter head
    scale: float = 20.96  # ArcFace scale s of the id head
    dynamic_margin: bool = True  # per-class margins from train counts (false: `margin` for all)
    margin: float = 0.3  # the one margin (radians) without dynamic margins
    margin_a: float = 0.27126  # dynamic margin a in a·n^(−λ) + b (ids)
    margin_lambda: float = 0.364399  # dynamic margin λ (ids)
    margin_b: float = 0.05  # dynamic margin b (ids)
    id_weight: float = 0.437  # weight of the id loss
    species: bool = True  # train a species head beside the id head
    species_weight: float = 0.563  # weight of the species loss
    species_scale: float = 33.14  # ArcFace scale of the species head
    species_margin_a: float = 0.226253  # dynamic margin a (species)
    species_margin_lambda: float = 0.720133  # dynamic margin λ (species)
    species_margin_b: float = 0.05  # dynamic margin b (species)


@dataclass
class WhaleAugmentConfig:
    """Training augmentation of the photos (see `spotter.whale.data.build_transform`)."""

    flip: float = 0.0  # a mirrored fin is another animal's; flips go into the gallery instead
    jitter: float = 0.2  # brightness/contrast/saturation jitter
    crop_scale: list[float] = field(default_factory=lambda: [0.7, 1.0])  # area range of the random resized crop
    box_margin: float = 0.1  # crop margin around bboxes.csv boxes, when the data has them


@dataclass
class WhaleRetrievalConfig:
    """Prediction: cosine kNN over train (+ flipped train), mixed with the id head, new_individual threshold.

    threshold_mode `best` picks the threshold with the best out-of-fold MAP@5; `per_species` one such threshold
    per species (with at least `min_species_queries` out-of-fold photos); `ratio` the one that puts
    new_individual first for `new_ratio` of the test photos (Happywhale 1st: 0.165); `oof_ratio` the one that
    puts it first for the share of test photos the `best` threshold put it first for out of fold.

    `predict_with`: `all` answers with every trained model of the run (embeddings concatenated); `full` with its
    full fit alone (`train_folds` holding −1), the fold models then only calibrating the scores and the threshold.
    """

    k: int = 100  # nearest gallery photos searched per query
    flip_tta: bool = True  # mirrored queries and mirrored gallery copies (the 1st place's TTA)
    head_weight: float = 0.5  # mix of the id head's cosines into the kNN scores (1st place: 0.5)
    calibration: str = "logistic"  # score → probability fit on out-of-fold queries: logistic | isotonic
    local_features: bool = True  # re-rank each photo's shortlist by local-feature inliers (SIFT + RANSAC)
    shortlist: int = 10  # candidates per photo verified by local features
    threshold_mode: str = "best"  # best | per_species | ratio | oof_ratio
    new_ratio: float = 0.165  # target share of new-first answers for threshold_mode ratio
    min_species_queries: int = 20  # out-of-fold photos a species needs for its own threshold
    batch_size: int = 64  # photos per batch when embedding
    predict_with: str = "all"  # all | full: the models that embed the gallery and the test photos


@dataclass
class WhaleConfig(TrainConfig):
    """Whale photo-ID training: the common keys plus model, heads, augmentation and retrieval.

    The engine's `loss` section is unused: the loss is id_weight·CE(ids) + species_weight·CE(species)
    on the margin heads' logits. Folds are stratified by `individual_id` (plain shuffled folds when some
    individual has fewer photos than folds); validation ids absent from a fold's train side are new.
    """

    image_size: int = 128  # side the photos are resized to
    head_lr_mult: float = 10.0  # the heads train at lr × this (1st place: 10)
    model: WhaleModelConfig = field(default_factory=WhaleModelConfig)
    head: WhaleHeadConfig = field(default_factory=WhaleHeadConfig)
    augment: WhaleAugmentConfig = field(default_factory=WhaleAugmentConfig)
    retrieval: WhaleRetrievalConfig = field(default_factory=WhaleRetrievalConfig)
    use_bboxes: bool = True  # crop to bboxes.csv when the data folder has one

    def check(self) -> None:
        """The common checks, then the whale sections' ranges."""
        super().check()
        r = self.retrieval
        require_all(self, [
            (self.image_size >= 16, "image_size", "at least 16"),
            (self.head.name in HEADS, "head.name", " | ".join(HEADS)),
            (self.head.subcenters >= 1, "head.subcenters", "at least 1"),
            (self.head.scale > 0, "head.scale", "positive"),
            (self.model.embedding_size >= 2, "model.embedding_size", "at least 2"),
            (len(self.augment.crop_scale) == 2 and 0 < self.augment.crop_scale[0] <= self.augment.crop_scale[1] <= 1,
             "augment.crop_scale", "[low, high] within (0, 1]"),
            (r.k >= 1, "retrieval.k", "at least 1"),
            (0 <= r.head_weight <= 1, "retrieval.head_weight", "in [0, 1]"),
            (r.threshold_mode in THRESHOLD_MODES, "retrieval.threshold_mode", " | ".join(THRESHOLD_MODES)),
            (r.predict_with in PREDICT_WITH, "retrieval.predict_with", " | ".join(PREDICT_WITH)),
            (r.calibration in CALIBRATIONS, "retrieval.calibration", " | ".join(CALIBRATIONS)),
            (r.shortlist >= 1, "retrieval.shortlist", "at least 1"),
            (any(f >= 0 for f in self.train_folds) or not self.train_folds, "train_folds",
             "at least one cross-validation fold (e.g. [0] or [0, -1]): a whale run calibrates its scores on "
             "out-of-fold photos"),
            (0 <= r.new_ratio <= 1, "retrieval.new_ratio", "in [0, 1]"),
            (self.mixing.name == "none", "mixing.name", "none (id labels cannot be mixed)"),
        ])


__all__ = [
    "WhaleConfig",
    "WhaleModelConfig",
    "WhaleHeadConfig",
    "WhaleAugmentConfig",
    "WhaleRetrievalConfig",
]
