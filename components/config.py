"""The typed configuration sections the components read: every knob of a step lives here.

Sections are frozen dataclasses so a run is a value: it serialises to JSON (components receive
their section as a JSON string parameter, which also makes it part of TFX's cache key). The run
as a whole (`RunConfig`, its Beam runner and presets) is the orchestration's:
`pipeline/config.py`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

# The shared emotion vocabulary: CREMA-D's six classes, which every supported corpus maps onto.
EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "fearful", "disgust")


# The corpus kind of a folder of spans written by `emograph ingest --watch` (already ingested).
SPANS_KIND = "spans"
# The corpus kind of plain audio without labels: only ever an unlabelled corpus.
UNLABELLED_KIND = "audio"


@dataclass(frozen=True)
class CorpusSpec:
    """Where one corpus lives and how to read it.

    Attributes:
      kind: adapter name: "synthetic" (the generator's output, read through its manifest),
        "manifest" (a CSV with path,label,speaker), "ravdess", "crema-d", "tess", "emo-db", "savee",
        "emovo"; "audio": unlabelled audio (a folder, one pseudo-speaker per sub-folder, or a CSV
        with path,speaker);
        or SPANS_KIND: the span-{N} folders `emograph ingest --watch` writes, read as they are
        (decoded and split when they were written), so a scheduled run trains on new spans.
      path: root directory of the corpus (or the CSV file for "manifest", or the watcher's out).
      latest_spans: SPANS_KIND only: read the newest N spans (0 reads every span). The span
        names are resolved when the pipeline is built and are ExampleGen's cache key, so a run
        after a new span ingests again and a run without one reuses the cached examples.
    """

    kind: str
    path: str
    latest_spans: int = 0

    def __post_init__(self) -> None:
        if self.latest_spans < 0:
            raise ValueError(f"latest_spans must be >= 0, got {self.latest_spans}")
        if self.latest_spans and self.kind != SPANS_KIND:
            raise ValueError(f"latest_spans applies to kind {SPANS_KIND!r} only, not {self.kind!r}")

    @classmethod
    def parse(cls, text: str) -> CorpusSpec:
        """Parses the command line form `KIND:PATH`."""
        kind, sep, path = text.partition(":")
        if not sep or not kind or not path:
            raise ValueError(f"corpus must be given as KIND:PATH, got {text!r}")
        return cls(kind=kind.lower(), path=path)


def check_corpora(corpora: Sequence[CorpusSpec], unlabelled: Sequence[CorpusSpec] = ()) -> None:
    """Refuses corpora that cannot be ingested together in one ExampleGen.

    Speakers ("ravdess/Actor_01") and clip ids are qualified by the corpus kind, so two corpora
    of one kind could merge different people into one speaker: one corpus per kind. A spans
    corpus was decoded and split when its spans were written, so as the labelled corpus it
    cannot join others; as `unlabelled` audio its clips join the train split.
    """
    kinds = [c.kind for c in (*corpora, *unlabelled)]
    twice = sorted({k for k in kinds if kinds.count(k) > 1})
    if twice:
        raise ValueError(f"one corpus per kind can be ingested together, got several {twice}")
    if len(kinds) > 1 and SPANS_KIND in (c.kind for c in corpora):
        raise ValueError(
            f"a {SPANS_KIND!r} corpus is already ingested: as the labelled corpus it cannot "
            "join others"
        )


def check_labelled(corpora: Sequence[CorpusSpec]) -> None:
    """Refuses plain unlabelled audio where labels are needed (a source or target corpus)."""
    unlabelled = [f"{c.kind}:{c.path}" for c in corpora if c.kind == UNLABELLED_KIND]
    if unlabelled:
        raise ValueError(
            f"{unlabelled[0]} holds no labels: give it as unlabelled audio (--unlabelled), "
            "beside a labelled corpus"
        )


@dataclass(frozen=True)
class SynthConfig:
    """Size of a generated synthetic corpus (per domain)."""

    speakers: int = 12
    utterances_per_emotion: int = 8
    seed: int = 0


@dataclass(frozen=True)
class AudioConfig:
    """Ingest: how clips become fixed-length 16 kHz windows.

    Attributes:
      window_seconds: length of one example; the edge model takes exactly this much audio.
      hop_seconds: step between windows of a long clip.
      min_seconds: clips shorter than this are rejected ("too short"); shorter than a window
        but at least this long, they are zero-padded (centred) to one window.
      max_windows_per_clip: long files give at most this many windows (evenly spread).
    """

    sample_rate: int = 16000
    window_seconds: float = 3.0
    hop_seconds: float = 1.5
    min_seconds: float = 0.5
    max_windows_per_clip: int = 8

    @property
    def window_samples(self) -> int:
        return int(round(self.window_seconds * self.sample_rate))

    @property
    def hop_samples(self) -> int:
        return int(round(self.hop_seconds * self.sample_rate))


@dataclass(frozen=True)
class SplitConfig:
    """Speaker-independent split: whole speakers go to train, eval or test.

    One of three policies (components/audio/splits.py applies them):
      - fixed lists, when any of `train_speakers`, `eval_speakers`, `test_speakers` is set:
        corpus-qualified speaker ids (e.g. "ravdess/Actor_01") that must all exist in the corpus;
        unlisted speakers go to train, so listing eval and test alone is enough;
      - k folds, when `folds` >= 2 or `fold_speakers` is set: test is fold `fold` of the seeded
        speaker folds, or with `fold_speakers` (corpus-qualified, e.g. the literature's RAVDESS
        folds of 4 actors) its listed speakers; eval a seeded `eval_fraction` of the other
        speakers (at least 2 while train keeps 1, so selection on validation sees speaker
        effects), train the rest (one run per fold cross-validates). With `fold_speakers`,
        `folds` is 0 or their count;
      - fractions otherwise: seeded `eval_fraction` and `test_fraction` of the speakers (eval
        at least 2 while train keeps 1, as for folds).
    `labelled_fraction` < 1 keeps the label of a seeded share of each train speaker's clips
    (at least one clip) and ingests the others as unlabelled audio: the few-labels regime.
    Validation and test speakers stay labelled.
    """

    eval_fraction: float = 0.17
    test_fraction: float = 0.25
    seed: int = 0
    train_speakers: tuple[str, ...] = ()
    eval_speakers: tuple[str, ...] = ()
    test_speakers: tuple[str, ...] = ()
    folds: int = 0
    fold: int = 0
    fold_speakers: tuple[tuple[str, ...], ...] = ()
    labelled_fraction: float = 1.0

    @property
    def n_folds(self) -> int:
        """The number of folds (0: no folds): `folds`, or the count of `fold_speakers`."""
        return len(self.fold_speakers) or self.folds

    def __post_init__(self) -> None:
        """Refuses contradictions early, before any file is read."""
        lists = (self.train_speakers, self.eval_speakers, self.test_speakers)
        listed = [s for speakers in lists for s in speakers]
        twice = sorted({s for s in listed if listed.count(s) > 1})
        if twice:
            raise ValueError(f"speakers listed twice in the split lists: {twice}")
        if self.n_folds and listed:
            raise ValueError("choose fixed speaker lists or folds, not both")
        if self.folds == 1 or self.folds < 0:
            raise ValueError(f"folds must be 0 (off) or >= 2, got {self.folds}")
        if self.fold_speakers:
            in_folds = [s for fold in self.fold_speakers for s in fold]
            twice = sorted({s for s in in_folds if in_folds.count(s) > 1})
            if twice:
                raise ValueError(f"speakers in several fold_speakers folds: {twice}")
            if len(self.fold_speakers) < 2 or not all(self.fold_speakers):
                raise ValueError(
                    f"fold_speakers needs >= 2 non-empty folds, got {self.fold_speakers}"
                )
            if self.folds not in (0, len(self.fold_speakers)):
                raise ValueError(
                    f"folds must be 0 or the {len(self.fold_speakers)} folds of fold_speakers, "
                    f"got {self.folds}"
                )
        if not 0 < self.labelled_fraction <= 1:
            raise ValueError(f"labelled_fraction must be in (0, 1], got {self.labelled_fraction}")
        if not 0 <= self.fold < max(self.n_folds, 1):
            raise ValueError(f"fold must be in [0, {max(self.n_folds, 1)}), got {self.fold}")


# How log-mel features are normalised per band before every model (components/transform):
# "global": one mean/std from the train split, baked into the edge model (no state on a device);
# "speaker": each speaker's own mean/std over their unlabelled audio (the edge model takes the
# statistics as an input and the predictor accumulates them from its user's audio).
NORMALISATIONS: tuple[str, ...] = ("global", "speaker")


@dataclass(frozen=True)
class FrontendConfig:
    """The log-mel frontend (one TF implementation for Transform, trainers and TFLite).

    Attributes:
      normalisation: one of NORMALISATIONS. Per-speaker statistics need only unlabelled audio of
        the speaker, so Transform analyses every split's audio for them (labels are never read
        by an analyzer); a device gathers the same statistics online.
    """

    frame_length: int = 400  # 25 ms
    frame_step: int = 160  # 10 ms
    fft_length: int = 512
    mel_bands: int = 40
    fmin: float = 20.0
    fmax: float = 7600.0
    log_offset: float = 1e-6
    normalisation: str = "speaker"

    def __post_init__(self) -> None:
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(
                f"normalisation must be one of {NORMALISATIONS}, got {self.normalisation!r}"
            )


@dataclass(frozen=True)
class AugmentConfig:
    """Training-batch augmentation in the normalised log-mel domain (components/models/augment.py).

    The trainers read Transform's normalised log-mel, not audio, so every perturbation is applied
    there, per example, to training batches only (never validation or test; for NSL examples to
    the sample's features only, not to its neighbours'). Widths and magnitudes are maxima: each
    example draws its own value uniformly in [0, max] (gain and shift in [-max, max]).

    Attributes:
      enabled: False turns every augmentation off (the training batches pass unchanged).
      gain_db: level change in dB; +g dB adds g * ln(10) / 10 to the natural-log mel power, which
        the trainer converts to the normalised scale with Transform's per-band inverse std (the
        train split's global one; under speaker normalisation an approximation, a speaker's own
        std being usually smaller).
      max_shift_frames: circular time shift in frames (10 ms each by default); the window's end
        wraps to its start, so no content is lost and no padding value has to be invented.
      noise_std: std of Gaussian noise added to the normalised features (their per-band std is
        1), i.e. noise in the feature domain, not additive noise on the waveform.
      time_masks, time_mask_frames: SpecAugment time masks: how many, and the widest in frames.
      freq_masks, freq_mask_bands: SpecAugment frequency masks: how many, and the widest in bands.
        Masked cells are set to 0, the band's mean in the normalised domain.
    """

    enabled: bool = True
    gain_db: float = 6.0
    max_shift_frames: int = 20
    noise_std: float = 0.05
    time_masks: int = 2
    time_mask_frames: int = 20
    freq_masks: int = 2
    freq_mask_bands: int = 5

    def __post_init__(self) -> None:
        negative = [f.name for f in dataclasses.fields(self) if getattr(self, f.name) < 0]
        if negative:
            raise ValueError(f"augmentation settings must not be negative: {negative}")


@dataclass(frozen=True)
class TeacherConfig:
    """The large model trained on the source corpus; its embeddings define the graph.

    The finetune_* settings are for the classic-transfer baseline (teacher fine-tuned on the
    target train split with a new head).

    Attributes:
      model_path: a user-supplied teacher instead of training one (empty: train it): a
        SavedModel directory with an `embed` signature (`logmel` float32 [batch, frames * bands]
        -> `embedding`), or a Keras model (.keras/.h5 file or SavedModel) taking that input,
        whose layer named `embedding` (else its output) is the embedding. The source corpus is
        then not used. Contract and checks: components/teacher/imported.py.
      augment: training-batch augmentation of the teacher (off by default: the source corpus
        is the larger one, and a changed teacher invalidates every cached downstream step).
    """

    filters: tuple[int, ...] = (32, 64, 128, 128)
    embedding_dim: int = 128
    epochs: int = 12
    batch_size: int = 32
    learning_rate: float = 2e-3
    dropout: float = 0.3
    finetune_epochs: int = 20
    finetune_learning_rate: float = 5e-4
    seed: int = 0
    model_path: str = ""
    augment: AugmentConfig = AugmentConfig(enabled=False)


# What the graph's nodes are embedded as (components/embedder/embed.py): "teacher" (the teacher's
# `embed` output; "teacher_<output>" for its other outputs), "logmel" (statistics of the
# normalised log-mel), "statistics" (prosody of the raw audio); or a weighted combination
# "statistics+teacher:0.5". "auto" lets the GraphBuilder choose among GraphConfig.candidates.
AUTO = "auto"


def parse_source(spec: str) -> tuple[tuple[str, float], ...]:
    """ "statistics+teacher:0.5" -> (("statistics", 1.0), ("teacher", 0.5)); weights > 0."""
    parts = []
    for term in spec.split("+"):
        name, _, weight = term.strip().partition(":")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            value = float("nan")
        if not name or not value > 0:
            raise ValueError(f"embedding source {spec!r}: each term is NAME or NAME:WEIGHT > 0")
        parts.append((name, value))
    names = [name for name, _ in parts]
    if len(set(names)) != len(names):
        raise ValueError(f"embedding source {spec!r} names a source twice")
    return tuple(parts)


@dataclass(frozen=True)
class GraphConfig:
    """The similarity graph over embeddings of the target train split.

    Attributes:
      embedding_source: a source spec (see `parse_source`; each term's vectors are per-speaker
        centred or whitened, L2-normalised and scaled by its weight, so the cosine of the
        concatenation is the weight^2-weighted mean of the terms' cosines), or "auto".
      candidates, candidate_thresholds, candidate_neighbours: with "auto", every combination is
        built as an exact graph over the validation speakers' examples and the one with the
        best score (components/graph/selection.py) sets the source, threshold and top-k of the
        train graph. Labels of validation speakers only; test speakers never take part.
      speaker_penalty: score = share of nodes with neighbours x (label homophily - chance -
        speaker_penalty x excess speaker homophily over its chance).
      selection_max_nodes: at most this many (seeded sample) validation nodes in the selection.
      speaker_centre: subtract each speaker's mean embedding before the cosine, so edges join
        clips that differ from their own speaker's average in the same way (same emotion)
        rather than clips of similar voices.
      speaker_whiten: also divide by each speaker's per-dimension std.
      same_speaker_weight: multiplies the weight of edges joining two clips of one speaker
        among each node's 3k nearest, before its top-k is kept; 0 forbids them.
      similarity_threshold: keep edges whose cosine similarity is at least this.
      max_neighbours: per-node top-k after thresholding (0 keeps all).
      lsh_splits: random hyperplanes per LSH round (0 = exact pairwise search).
      lsh_rounds: independent LSH rounds (more rounds, higher recall).
      lsh_rounds_per_shuffle: 1 regroups all rows by every round's bucket (nsl.tools' buckets,
        one shuffle of the rows per round). L > 1 runs rounds L at a time: the L rounds share
        their first few hyperplanes, enough that each of their groups holds about
        `beam_graph.GROUP_ROWS` rows, so one shuffle by those shared bits sends every group to
        one worker, which runs the L rounds on it locally. Fewer shuffles (the DirectRunner's
        main cost at 1M nodes), but correlated rounds: recall needs more rounds (README).
      max_bucket_size: buckets larger than this are compared in chunks of this many rows.
      centre: subtract the mean embedding before the cosine (removes a shared offset).
      seed: makes LSH hyperplanes and the selection's sample reproducible.
      incremental: extend the previous run's graph (components/graph/incremental.py) when its
        settings and its nodes' prepared vectors still hold: only the neighbours of new, changed
        and affected nodes are computed. Needs `centre` off (the mean moves with every node).
        Off by default: the previous graph becomes a GraphBuilder input, so every run is a new
        GraphBuilder execution and a run without new data is no longer a cache hit downstream.
    """

    embedding_source: str = AUTO
    candidates: tuple[str, ...] = (
        "statistics",
        "logmel",
        "teacher",
        "statistics+logmel",
        "statistics+teacher",
        "statistics+logmel+teacher",
    )
    candidate_thresholds: tuple[float, ...] = (0.0, 0.3, 0.5)
    candidate_neighbours: tuple[int, ...] = (3, 5, 10)
    speaker_penalty: float = 1.0
    selection_max_nodes: int = 3000
    speaker_centre: bool = True
    speaker_whiten: bool = False
    same_speaker_weight: float = 1.0
    similarity_threshold: float = 0.6
    max_neighbours: int = 5
    lsh_splits: int = 0
    lsh_rounds: int = 1
    lsh_rounds_per_shuffle: int = 1
    max_bucket_size: int = 4096
    centre: bool = True
    seed: int = 0
    incremental: bool = False

    def source_specs(self) -> tuple[str, ...]:
        """The source specs the graph may be built from: the candidates under "auto", else
        the one named."""
        return self.candidates if self.embedding_source == AUTO else (self.embedding_source,)

    def __post_init__(self) -> None:
        specs = self.source_specs()
        if not specs:
            raise ValueError("embedding_source 'auto' needs at least one candidate")
        for spec in specs:
            parse_source(spec)
        if self.embedding_source == AUTO and not (
            self.candidate_thresholds and self.candidate_neighbours
        ):
            raise ValueError("embedding_source 'auto' needs candidate thresholds and neighbours")
        if not 0.0 <= self.same_speaker_weight <= 1.0:
            raise ValueError(
                f"same_speaker_weight must be in [0, 1], got {self.same_speaker_weight}"
            )

    def chosen(self, source: str, threshold: float, neighbours: int) -> GraphConfig:
        """This config with the selection's choice in place of "auto"."""
        return dataclasses.replace(
            self,
            embedding_source=source,
            similarity_threshold=threshold,
            max_neighbours=neighbours,
        )


# Where NSL's graph loss is computed on the student: its logits or its penultimate embedding.
REGULARISED_LAYERS: tuple[str, ...] = ("logits", "embedding")
# How a student pools its last feature map over time and frequency.
POOLINGS: tuple[str, ...] = ("mean", "mean_max")
# The student's body: depthwise-separable 2-D convolutions, convolutions over time only, or
# statistics of each band over the window (a linear model on log-mel functionals).
ARCHITECTURES: tuple[str, ...] = ("dscnn", "tdnn", "functionals")


@dataclass(frozen=True)
class StudentConfig:
    """The small on-device model and its NSL graph regularisation.

    Attributes:
      architecture: one of ARCHITECTURES: "functionals" (the default: a linear model on
        Transform's `functionals`, 8 statistics of each log-mel band and 8 of the pitch over the
        window, z-scored per speaker; components/audio/frontend.py, components/models/
        networks.py), "dscnn" (a strided 3x3 conv, then depthwise-separable blocks) or "tdnn"
        (convolutions over time whose first layer spans every band). On RAVDESS and EMOVO the
        functionals student beats both convolutional ones (docs/experiments.md).
      filters: channels of the convolutional bodies' layers (their size knob).
      hidden_units: the functionals student's hidden ReLU layers between its standardised
        functionals and the logits (empty: a linear model).
      pooling: one of POOLINGS: how the last feature map becomes the embedding, its mean over
        time and frequency ("mean") or that and its maximum ("mean_max": a short emotional
        burst is not averaged away).
      graph_multiplier: weight of the graph loss; 0 trains on speech alone (the baseline).
      graph_multipliers: more multipliers to try (0 allowed): the trainer fits one student per
        multiplier (these and graph_multiplier) and keeps the one with the best validation clip
        UAR, the smaller multiplier on ties. A graph that does not help on the validation
        speakers is then not used; training.json names the multiplier chosen.
      num_neighbours: neighbours read per example (NSL `max_neighbors`).
      distance_type: NSL distance between sample and neighbour outputs ("l2", "cosine",
        "kl_divergence", "jensen_shannon_divergence"; the divergences softmax both first).
      regularised_layer: one of REGULARISED_LAYERS: where the graph loss pulls neighbours
        together, the logits (NSL's default) or the penultimate embedding (the pooled features
        before dropout and the classifier, as the paper's code can). The exported model is the
        same either way (logits -> probabilities).
      augment: training-batch augmentation (the NSL and the speech-only student alike). Off
        by default: with it, on the demo split, the NSL student fell from 0.486 to 0.368 test
        UAR (speech-only 0.444 -> 0.458) and was not blessed; README "Results" has the
        experiment.
      distillation_weight, distillation_temperature: the experiment's distilled student (a
        speech-only student taught by the same seed's fine-tuned teacher) minimises
        (1 - weight) x cross-entropy with the labels + weight x T^2 x KL(teacher || student),
        both softmaxes at temperature T (Hinton et al., 2015).
      self_training, pseudo_label_confidence: the experiment's self-trained student: the
        speech-only student is fitted, labels the unlabelled train clips whose clip-level
        confidence (mean window probability of its top class) reaches the threshold, and is
        fitted again on its labels plus those; of the two, the better on the validation
        speakers is kept (one round of classic self-training).
      label_propagation: with unlabelled train clips (few labels), the NSL student also fits
        every multiplier on the labels plus the labels the graph propagates to the unlabelled
        clips (components/models/propagation.py, over the packed neighbour lists), and the
        validation speakers choose among all those fits as among multipliers.
      smoothed_label_share: then one round of self-training through the graph: the chosen
        fit's predictions for the unlabelled windows are propagated with the labels over the
        same graph, this share of the unlabelled clips (those whose smoothed class holds the
        largest part of their scores) take that class, and a refit at the chosen multiplier
        is kept if the validation speakers prefer it. A student without the graph
        (multiplier 0 only) has no neighbour lists and ignores both.
      quantization_aware: train with int8 fake quantisation (tfmot), so the int8 TFLite model
        computes what was trained and evaluated. Post-training int8 of NSL students agreed with
        float on 79-91% of test windows (near-ties of a flat softmax), quantization-aware ones
        on 97-99% (README "Edge cost"). False quantises after training instead.
    """

    architecture: str = "functionals"
    filters: tuple[int, ...] = (24, 32, 48, 64)
    hidden_units: tuple[int, ...] = ()
    pooling: str = "mean"
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 3e-3
    dropout: float = 0.2
    graph_multiplier: float = 0.3
    graph_multipliers: tuple[float, ...] = (0.0, 0.1, 1.0)
    num_neighbours: int = 3
    distance_type: str = "l2"
    regularised_layer: str = "logits"
    seed: int = 0
    augment: AugmentConfig = AugmentConfig(enabled=False)
    distillation_weight: float = 0.5
    distillation_temperature: float = 2.0
    self_training: bool = False
    pseudo_label_confidence: float = 0.8
    label_propagation: bool = True
    smoothed_label_share: float = 0.5
    quantization_aware: bool = True

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}"
            )
        if self.architecture == "functionals" and self.augment.enabled:
            raise ValueError(
                "augment works on log-mel; the functionals student reads functionals: set "
                "student.augment.enabled to false or use another architecture"
            )
        if self.architecture == "tdnn" and len(self.filters) < 2:
            raise ValueError(f"a tdnn student needs at least 2 layers, got filters {self.filters}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.regularised_layer not in REGULARISED_LAYERS:
            raise ValueError(
                f"regularised_layer must be one of {REGULARISED_LAYERS}, "
                f"got {self.regularised_layer!r}"
            )
        if self.self_training and (self.graph_multiplier > 0 or self.graph_multipliers):
            raise ValueError(
                "self_training is the experiment's self-trained student, trained without the "
                "graph: set graph_multiplier to 0 and graph_multipliers to [] with it (or leave "
                "it false; `emograph experiment` trains that model itself)"
            )
        if not 0 < self.smoothed_label_share <= 1:
            raise ValueError(
                f"smoothed_label_share must be in (0, 1], got {self.smoothed_label_share}"
            )
        if not 0 < self.pseudo_label_confidence <= 1:
            raise ValueError(
                f"pseudo_label_confidence must be in (0, 1], got {self.pseudo_label_confidence}"
            )
        if min((self.graph_multiplier, *self.graph_multipliers)) < 0:
            raise ValueError(
                "graph_multiplier and graph_multipliers must be >= 0, got "
                f"{self.graph_multiplier} and {self.graph_multipliers}"
            )
        if not 0.0 <= self.distillation_weight <= 1.0 or self.distillation_temperature <= 0:
            raise ValueError(
                "distillation_weight must be in [0, 1] and distillation_temperature > 0, got "
                f"{self.distillation_weight} and {self.distillation_temperature}"
            )


@dataclass(frozen=True)
class EvaluationConfig:
    """Blessing rule: the NSL student must not fall below speech-only by more than the margin."""

    uar_margin: float = 0.05


@dataclass(frozen=True)
class ExportConfig:
    """What the Pusher emits: a full-int8 TFLite model taking raw PCM, and when it refuses to.

    Attributes:
      min_int8_agreement: least fraction of test windows where int8 and float top-1 agree.
      max_int8_uar_drop: largest test UAR the int8 model may lose against the float SavedModel.
      max_frontend_error: largest |log-mel| difference of the TFLite frontend from the TF one.
      float_layers: layers kept float32 in the int8 model besides the frontend (name parts;
        "stem" is the student's first conv, the layer most sensitive to 8-bit activations), for
        post-training quantization only: a quantization-aware student is int8 where it trained.
      warmup_windows: a speaker-normalised model on a device uses the fallback statistics
        (pooled over train speakers) until it has heard this many windows of its user. The
        statistics of a few windows follow the emotions in them (RAVDESS, one fold: online UAR
        0.37 / 0.42 / 0.51 with 1 / 8 / 30 windows, 0.56 with all of the speaker's audio), so
        the default waits for 30 windows (45 s of audio at the default hop).
    """

    model_name: str = "emograph-student"
    float_layers: tuple[str, ...] = ("stem",)
    representative_examples: int = 200
    min_int8_agreement: float = 0.8
    max_int8_uar_drop: float = 0.02
    max_frontend_error: float = 1e-3
    warmup_windows: int = 30


def section_to_json(section: Any) -> str:
    """Serialises one config section for a component parameter."""
    return json.dumps(dataclasses.asdict(section), sort_keys=True)


def section_from_json(cls: type[T], text: str) -> T:
    """Inverse of `section_to_json`."""
    return from_dict(cls, json.loads(text))


class ConfigError(ValueError):
    """A config that does not fit RunConfig: the message names the field path, the value and what
    was expected, so the user fixes the file without reading a traceback."""


def from_dict(cls: type[T], data: Any, path: str = "") -> T:
    """Builds a (nested) config dataclass from plain JSON data, checking every field's type.

    Raises ConfigError naming the field (`path`, e.g. "audio.window_seconds") for unknown or
    missing keys, values of the wrong type and values the dataclass itself refuses.
    """
    name = cls.__name__
    if not isinstance(data, dict):
        raise ConfigError(_at(path, f"expected an object of {name} settings, got {_show(data)}"))
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            raise ConfigError(
                _at(_join(path, key), f"unknown {name} setting; known: {', '.join(fields)}")
            )
    for key, field in fields.items():
        missing = dataclasses.MISSING
        if field.default is missing and field.default_factory is missing and key not in data:
            raise ConfigError(_at(_join(path, key), f"missing; {name} needs it"))
    hints = typing.get_type_hints(cls)
    values = {key: _from_plain(hints[key], value, _join(path, key)) for key, value in data.items()}
    try:
        return cls(**values)
    except ValueError as e:  # the dataclass's own checks (ranges, contradictions)
        raise ConfigError(_at(path, str(e))) from e


def _from_plain(hint: Any, value: Any, path: str) -> Any:
    """JSON data as the field's declared type, or ConfigError: dicts become dataclasses, lists
    `tuple[X, ...]` (of dataclasses or tuples too), an int is a float where one is expected (a
    bool is neither). Other hints (e.g. Any) take the value unchecked."""
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, path)
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        if not isinstance(value, list):
            raise ConfigError(_at(path, f"expected {_expected(hint)}, got {_show(value)}"))
        return tuple(_from_plain(item, x, f"{path}[{i}]") for i, x in enumerate(value))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if hint in (int, float, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ConfigError(_at(path, f"expected {_expected(hint)}, got {_show(value)}"))
        if hint is float and not math.isfinite(value):
            raise ConfigError(_at(path, f"expected a finite number, got {_show(value)}"))
    return value


def _expected(hint: Any) -> str:
    """What a type hint asks of JSON data, in the user's words."""
    if dataclasses.is_dataclass(hint):
        return f"an object of {hint.__name__} settings"
    if typing.get_origin(hint) is tuple:
        return f"a list, each item {_expected(typing.get_args(hint)[0])}"
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    return names.get(hint, str(hint))


def _show(value: Any) -> str:
    """A value as the user wrote it in JSON (a string keeps its quotes), shortened."""
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _at(path: str, message: str) -> str:
    return f"{path}: {message}" if path else message
