"""Students and baselines on a real corpus, cross-validated by speaker, in memory.

The fast loop for ablations: the project's own decoder, windows, frontend, student network, NSL
wrapper and metrics, without the TFX pipeline around them (a run of the pipeline per fold costs
tens of minutes; here a student trains in about a minute). `emograph experiment` stays the
pipeline-faithful measurement. Per fold: test speakers = one fold, validation speakers = the
next fold (they choose the checkpoint), train = the rest. Scores are clip-level UAR (a clip's
window probabilities averaged) of the float model, and window UAR.

    .venv/bin/python -m benchmarks.students --corpus emovo:../shared/data/emovo16k \
        --folds f1+m1,f2+m2,f3+m3 --variants speech,nsl --seeds 3 --jobs 2
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import hashlib
import itertools
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from emograph.components import features as F
from emograph.components.audio import corpora, decode, windows
from emograph.components.config import (
    AudioConfig,
    AugmentConfig,
    CorpusSpec,
    FrontendConfig,
    StudentConfig,
)
from emograph.components.evaluation import metrics

RESULTS = Path(__file__).parent / "results"
CACHE = Path(os.environ.get("EMOGRAPH_CACHE", Path.home() / ".cache" / "emograph"))

# A variant is "_"-joined tokens, e.g. "nsl_otherspk_egemaps_distil"; each token adds
# StudentConfig overrides or graph options (prefixed "graph_"), later tokens win.
TOKENS: dict[str, dict] = {
    "speech": {"graph_multiplier": 0.0},
    "nsl": {},
    "float": {"quantization_aware": False},
    "tdnn": {"architecture": "tdnn", "filters": (48, 48, 48, 96), "pooling": "mean_max"},
    "tdnnsmall": {"architecture": "tdnn", "filters": (32, 32, 32, 64), "pooling": "mean_max"},
    "tdnnwide": {"architecture": "tdnn", "filters": (64, 64, 64, 128), "pooling": "mean_max"},
    "func": {"architecture": "functionals"},
    "h64": {"hidden_units": (64,)},
    "h128": {"hidden_units": (128,)},
    "wide": {"filters": (32, 64, 96, 128)},
    "meanmax": {"pooling": "mean_max"},
    "embedding": {"regularised_layer": "embedding"},
    "kl": {"distance_type": "kl_divergence"},
    "m0.1": {"graph_multiplier": 0.1},
    "m0.3": {"graph_multiplier": 0.3},
    "m1": {"graph_multiplier": 1.0},
    "m3": {"graph_multiplier": 3.0},
    "k1": {"num_neighbours": 1},
    "k5": {"num_neighbours": 5},
    "otherclip": {"graph_other_clips": True},
    "otherspk": {"graph_other_speakers": True},
    "egemaps": {"graph_source": "egemaps"},
    "compare": {"graph_source": "compare"},
    "aug": {"augment": True},
    "distil": {"distil": True},
    "pool": {"pool_source": True},
    "selfpad": {"graph_self_pad": True},
    "hint": {"hint": "egemaps"},
    "hintcompare": {"hint": "compare"},
    "prop": {"graph_propagate": True},
    "self": {"self_train": "model"},
    "smooth": {"self_train": "graph"},
    **{f"s{s}": {"smoothed_share": s} for s in (0.25, 0.5, 0.75, 1.0)},
}

HINT = "hint"  # the expert functionals a hinted student's embedding also regresses


def variant_options(name: str) -> dict:
    """The merged overrides of a variant's tokens."""
    options: dict = {}
    for token in name.split("_"):
        if token not in TOKENS:
            raise ValueError(f"variant {name!r}: unknown token {token!r}; known: {list(TOKENS)}")
        options.update(TOKENS[token])
    return options


BASELINES = {  # name: (feature set, linear model, per-speaker normalised)
    f"{short}_{model}_{norm}": (feature_set, model, norm == "spk")
    for short, feature_set in (("egemaps", "eGeMAPSv02"), ("compare", "ComParE_2016"))
    for model in ("lr", "svm")
    for norm in ("raw", "spk")
}


@dataclasses.dataclass
class Corpus:
    """Windows of a corpus: log-mel [n, frames, bands], voice track [n, frames, 2] and
    per-window speaker, clip, label."""

    logmel: np.ndarray
    voice: np.ndarray
    speaker: np.ndarray
    clip: np.ndarray
    label: np.ndarray
    classes: tuple[str, ...]


def load(spec: CorpusSpec, classes: tuple[str, ...], audio: AudioConfig, front: FrontendConfig):
    """Decodes, windows and log-mels every clip (cached on disk by corpus and settings)."""
    from emograph.components.audio import frontend

    voice = (
        frontend.PITCH_FMIN_HZ,
        frontend.PITCH_FMAX_HZ,
        frontend.PITCH_BAND_HZ,
        frontend.LOW_BAND_HZ,
        frontend.VOICING_WEIGHTS,
        frontend.VOICING_BIAS,
        frontend.SILENCE_LOG_ENERGY,
    )  # every constant of the voice track
    key = repr((spec.path, classes, audio, front, voice))
    digest = hashlib.sha1(key.encode()).hexdigest()
    key = f"{spec.kind}-{digest[:10]}"
    path = CACHE / f"students-{key}.npz"
    if path.exists():
        data = np.load(path)
        return Corpus(*(data[k] for k in ("logmel", "voice", "speaker", "clip", "label")), classes)
    import tensorflow as tf

    clips, _ = corpora.list_clips(spec, classes)
    rows, logmels, voices = [], [], []
    for clip in clips:
        try:
            cut = windows.window_clip(decode.load_audio(clip.path, audio.sample_rate), audio)
        except decode.AudioError as e:
            print(f"skipped {e}")
            continue
        pcm = np.stack([w for _, w in cut])
        logmel, voice = frontend.log_mel_and_voice(tf.constant(pcm), front, audio.sample_rate)
        logmels.append(logmel.numpy())
        voices.append(voice.numpy())
        rows += [(clip.speaker, clip.clip_id, classes.index(clip.label))] * len(cut)
    speaker, clip_ids, label = (np.array(c) for c in zip(*rows, strict=True))
    CACHE.mkdir(parents=True, exist_ok=True)
    logmel = np.concatenate(logmels).astype(np.float32)
    voice = np.concatenate(voices).astype(np.float32)
    np.savez(path, logmel=logmel, voice=voice, speaker=speaker, clip=clip_ids, label=label)
    return Corpus(logmel, voice, speaker, clip_ids, label, classes)


def speaker_normalised(corpus: Corpus) -> tuple[np.ndarray, np.ndarray]:
    """Each window's log-mel z-scored per band with its speaker's statistics (float64), and
    the speakers' mean inverse std per band (augmentation's dB scale)."""
    out = np.empty_like(corpus.logmel)
    inv_stds = []
    for speaker in np.unique(corpus.speaker):
        rows = corpus.speaker == speaker
        frames = corpus.logmel[rows].reshape(-1, corpus.logmel.shape[-1]).astype(np.float64)
        mean, std = frames.mean(0), np.maximum(frames.std(0), 1e-6)
        out[rows] = ((corpus.logmel[rows] - mean) / std).astype(np.float32)
        inv_stds.append(1 / std)
    return out, np.mean(inv_stds, axis=0)


def speaker_functionals(corpus: Corpus) -> np.ndarray:
    """Each window's `frontend.functionals`, z-scored per speaker and bounded, as Transform
    gives them to the functionals student."""
    import tensorflow as tf

    from emograph.components.audio.frontend import bounded, functionals
    from emograph.components.expert.functionals import speaker_normalise

    stats = functionals(tf.constant(corpus.logmel), tf.constant(corpus.voice)).numpy()
    return bounded(tf.constant(speaker_normalise(stats, list(corpus.speaker)))).numpy()


def corpus_and_folds(corpus: str, folds: str) -> tuple[CorpusSpec, Corpus, list[list[str]]]:
    """The --corpus KIND:PATH and --folds a+b,c+d,... arguments: the corpus, its windows
    (`load`) and each fold's speaker ids."""
    kind, path = corpus.split(":", 1)
    spec = CorpusSpec(kind, str(Path(path).absolute()))
    windows = load(spec, corpora_classes(spec), AudioConfig(), FrontendConfig())
    return spec, windows, [[f"{kind}/{s}" for s in fold.split("+")] for fold in folds.split(",")]


def logmel_statistics(normalised: np.ndarray) -> np.ndarray:
    """Mean and std over time of each band: the "logmel" graph candidate."""
    return np.concatenate([normalised.mean(1), normalised.std(1)], axis=1)


def graph(
    emb: np.ndarray,
    speaker: np.ndarray,
    clip: np.ndarray,
    k: int,
    threshold: float,
    other_clips: bool,
    other_speakers: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine top-k over speaker-centred embeddings: neighbour index [n, k] (-1 = none)
    and weight [n, k]. `other_clips` / `other_speakers` forbid neighbours from the node's own
    clip / speaker."""
    emb = emb.astype(np.float64).copy()
    for s in np.unique(speaker):
        emb[speaker == s] -= emb[speaker == s].mean(0)
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    if other_clips:
        sim[clip[:, None] == clip[None, :]] = -np.inf
    if other_speakers:
        sim[speaker[:, None] == speaker[None, :]] = -np.inf
    order = np.argsort(-sim, axis=1)[:, :k]
    weight = np.take_along_axis(sim, order, axis=1)
    keep = weight >= threshold
    return np.where(keep, order, -1), np.where(keep, weight, 0.0).astype(np.float32)


def homophily(neighbours: np.ndarray, values: np.ndarray) -> float:
    """Share of edges joining nodes with equal `values` (labels, speakers or clips)."""
    src = np.repeat(np.arange(len(neighbours)), neighbours.shape[1])
    dst = neighbours.ravel()
    kept = dst >= 0
    return float(np.mean(values[src[kept]] == values[dst[kept]])) if kept.any() else float("nan")


def train_one(task: dict) -> dict:
    """Trains one variant on one fold with one seed; returns its scores."""
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(task["threads"])
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import tf_keras as keras

    from emograph.components.models import augment, networks, training
    from emograph.components.student.trainer import graph_regularised

    keras.backend.clear_session()  # a worker runs many tasks: free the last one's graphs
    gc.collect()

    corpus = load(task["spec"], task["classes"], AudioConfig(), FrontendConfig())
    normalised, inv_std = speaker_normalised(corpus)
    n, frames, bands = normalised.shape
    flat = normalised.reshape(n, -1)
    split = np.array([task["splits"].get(s, "") for s in corpus.speaker])
    train, val, test = (np.flatnonzero(split == name) for name in ("train", "eval", "test"))

    options = variant_options(task["variant"])
    source = options.pop("graph_source", "logmel")
    other_clips = options.pop("graph_other_clips", False)
    other_speakers = options.pop("graph_other_speakers", False)
    pool = options.pop("pool_source", False)
    distil = options.pop("distil", False)
    hint = options.pop("hint", "")
    self_pad = options.pop("graph_self_pad", False)
    propagate = options.pop("graph_propagate", False)
    self_train = options.pop("self_train", "")
    share = options.pop("smoothed_share", StudentConfig.smoothed_label_share)
    if options.pop("augment", False):
        options["augment"] = AugmentConfig(enabled=True)
    # variants start from the DS-CNN with one multiplier (the tokens change both), whatever
    # the pipeline's default student is
    start = StudentConfig(architecture="dscnn", graph_multipliers=())
    cfg = dataclasses.replace(start, seed=task["seed"], **options)
    keras.utils.set_random_seed(cfg.seed)
    base = networks.build_student(cfg, frames, bands, len(corpus.classes))
    name, _ = training.model_input(base)
    if name == F.FUNCTIONALS:
        flat = speaker_functionals(corpus)
        if pool or hint:
            raise ValueError(f"{task['variant']}: pool and hint variants need a log-mel student")

    features = {name: flat[train]}
    labels = corpus.label[train]
    graph_stats = {}
    fraction = task.get("labelled_fraction", 1.0)
    propagate = propagate and fraction < 1.0
    self_train = self_train if fraction < 1.0 else ""
    if (propagate or distil or hint or pool) and self_train:
        raise ValueError(f"{task['variant']}: self/smooth combine with plain and NSL students only")
    if cfg.graph_multiplier > 0 or propagate or self_train == "graph":  # the train graph
        emb = task["embeddings"][source][train] if source != "logmel" else None
        if emb is None:
            emb = logmel_statistics(normalised[train])
        nbr, weight = graph(
            emb,
            corpus.speaker[train],
            corpus.clip[train],
            cfg.num_neighbours,
            0.0,
            other_clips,
            other_speakers,
        )
    if cfg.graph_multiplier > 0:
        for i in range(cfg.num_neighbours):
            rows = np.where(nbr[:, i] >= 0, nbr[:, i], 0)
            features[f"{F.NBR_PREFIX}{i}_{name}"] = flat[train][rows]
            features[f"{F.NBR_PREFIX}{i}{F.NBR_WEIGHT_SUFFIX}"] = weight[:, i : i + 1]
        graph_stats = {
            "label_homophily": homophily(nbr, corpus.label[train]),
            "speaker_homophily": homophily(nbr, corpus.speaker[train]),
            "clip_homophily": homophily(nbr, corpus.clip[train]),
        }

    def wrap(base):  # the model that trains `base`: NSL-wrapped when the graph is used
        return graph_regularised(base, cfg) if cfg.graph_multiplier > 0 else base

    model = wrap(base)
    if pool:  # the source corpus' windows of the target's classes join training, no neighbours
        extra = load(task["source_spec"], task["source_classes"], AudioConfig(), FrontendConfig())
        names = np.array(task["source_classes"])[extra.label]
        keep = np.isin(names, corpus.classes)
        extra_flat = speaker_normalised(extra)[0][keep].reshape(int(keep.sum()), -1)
        extra_labels = np.array([corpus.classes.index(c) for c in names[keep]])
        for key, value in features.items():
            fill = extra_flat if key == name else np.zeros((len(extra_flat), *value.shape[1:]))
            features[key] = np.concatenate([value, fill.astype(np.float32)])
        labels = np.concatenate([labels, extra_labels])
    if self_pad and cfg.graph_multiplier > 0:  # a missing neighbour is the sample, weight 0
        for i in range(cfg.num_neighbours):
            missing = features[f"{F.NBR_PREFIX}{i}{F.NBR_WEIGHT_SUFFIX}"][:, 0] == 0
            features[f"{F.NBR_PREFIX}{i}_{name}"][missing] = features[name][missing]
    if distil:  # soft labels from an eGeMAPS LR, cross-fitted over the train speakers
        from emograph.components.student.trainer import TEACHER_PROBABILITIES, Distiller

        soft = cross_fitted_probabilities(
            task["embeddings"]["egemaps"],
            corpus.label,
            corpus.speaker,
            split,
            len(corpus.classes),
            cfg.distillation_temperature,
        )
        features[TEACHER_PROBABILITIES] = soft[train]
        model = Distiller(model, cfg.distillation_weight, cfg.distillation_temperature)
    if hint:  # expert knowledge as a second target: a linear head regresses the functionals
        features[HINT] = task["embeddings"][hint][train].astype(np.float32)
        model = _hinted_class()(model, base, features[HINT].shape[1], 1.0)
    if propagate:  # unlabelled windows take their clip's propagated label
        keep = labelled_clips(corpus.clip[train], corpus.speaker[train], fraction, task["seed"])
        labels = propagated_labels(
            nbr, weight, corpus.clip[train], labels, keep, len(corpus.classes)
        )
        reached = ~keep & (labels >= 0)
        right = labels[reached] == corpus.label[train][reached]
        graph_stats["propagated_accuracy"] = float(np.mean(right)) if right.size else None
        graph_stats["propagated_windows"] = int(reached.sum())
        features = {key: value[labels >= 0] for key, value in features.items()}
        labels = labels[labels >= 0]
    elif fraction < 1.0:  # the other train windows stay in the graph as unlabelled neighbours
        keep = labelled_clips(corpus.clip[train], corpus.speaker[train], fraction, task["seed"])
        keep = np.concatenate([keep, np.ones(len(labels) - len(train), bool)])  # pooled rows
        all_features = features
        features = {key: value[keep] for key, value in features.items()}
        labels = labels[keep]

    def scores(rows: np.ndarray) -> tuple[float, float]:
        prob = tf.nn.softmax(base.predict({name: flat[rows]}, verbose=0, batch_size=256))
        prob = prob.numpy()
        window = metrics.summary(corpus.label[rows], prob.argmax(1), corpus.classes)["uar"]
        clip = metrics.clip_summary(prob, corpus.label[rows], corpus.clip[rows], corpus.classes)
        clip = clip["uar"]
        return clip, window

    def fit(model, features: dict, labels: np.ndarray) -> dict:
        """Fits `model` (which trains `base`), leaves `base` at its best validation epoch."""
        model.compile(
            optimizer=keras.optimizers.Adam(cfg.learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        counts = np.bincount(labels, minlength=len(corpus.classes))
        weights = {
            c: float(len(labels) / (np.count_nonzero(counts) * v)) if v else 0.0
            for c, v in enumerate(counts)
        }
        ds = (
            tf.data.Dataset.from_tensor_slices((features, labels))
            .shuffle(len(labels), seed=cfg.seed, reshuffle_each_iteration=True)
            .batch(cfg.batch_size)
        )
        ds = augment.augment_dataset(
            ds, frames, bands, cfg.augment, cfg.seed, augment.db_to_normalised(inv_std)
        )
        best = {"val": -1.0, "epoch": 0, "weights": None}

        class Select(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                score = scores(val_rows)[0]
                if score > best["val"]:
                    best.update(val=score, epoch=epoch + 1, weights=base.get_weights())
                if epoch + 1 >= 10 and epoch + 1 - best["epoch"] >= 8:
                    self.model.stop_training = True

        model.fit(ds, epochs=cfg.epochs, callbacks=[Select()], class_weight=weights, verbose=0)
        base.set_weights(best["weights"])
        return best

    val_rows = val
    start = time.time()
    best = fit(model, features, labels)
    if self_train:  # pseudo-labels for the unlabelled train clips, a refit, validation decides
        unlabelled = np.flatnonzero(~keep)
        prob = tf.nn.softmax(base.predict({name: flat[train][unlabelled]}, verbose=0)).numpy()
        if self_train == "graph":  # the student's predictions smoothed over the graph
            priors = np.zeros((len(train), len(corpus.classes)))
            priors[unlabelled] = prob
            pseudo = propagated_labels(
                nbr,
                weight,
                corpus.clip[train],
                corpus.label[train],
                keep,
                priors.shape[1],
                priors=priors,
                share=share,
            )
        else:  # the student's own clip-level confidence, as the pipeline's self-training
            from emograph.components.models.propagation import confident_clips

            clips = corpus.clip[train]
            by_clip = confident_clips(
                dict(zip(unlabelled, prob, strict=True)),
                dict(zip(unlabelled, clips[unlabelled], strict=True)),
                StudentConfig.pseudo_label_confidence,
            )
            pseudo = np.where(keep, corpus.label[train], [by_clip.get(c, -1) for c in clips])
        reached = ~keep & (pseudo >= 0)
        right = pseudo[reached] == corpus.label[train][reached]
        graph_stats["pseudo_accuracy"] = float(np.mean(right)) if right.size else None
        graph_stats["pseudo_windows"] = int(reached.sum())
        first = (best, base.get_weights())
        keras.utils.set_random_seed(cfg.seed)
        base = networks.build_student(cfg, frames, bands, len(corpus.classes))
        refit = fit(
            wrap(base), {k: v[pseudo >= 0] for k, v in all_features.items()}, pseudo[pseudo >= 0]
        )
        graph_stats["refit_kept"] = refit["val"] > first[0]["val"]
        if not graph_stats["refit_kept"]:
            best = first[0]
            base.set_weights(first[1])
        else:
            best = refit
    clip_uar, window_uar = scores(test)
    return {
        "variant": task["variant"],
        "fold": task["fold"],
        "seed": task["seed"],
        "clip_uar": clip_uar,
        "window_uar": window_uar,
        "val_clip_uar": best["val"],
        "best_epoch": best["epoch"],
        "seconds": round(time.time() - start, 1),
        "params": base.count_params(),
        "labelled_fraction": fraction,
        "labelled_windows": len(labels),
        **graph_stats,
    }


def propagated_labels(
    nbr: np.ndarray,
    weight: np.ndarray,
    clip: np.ndarray,
    label: np.ndarray,
    labelled: np.ndarray,
    classes: int,
    priors: np.ndarray | None = None,
    share: float = 1.0,
) -> np.ndarray:
    """Each window's label: its own where `labelled`, else its clip's by the pipeline's label
    propagation (models.propagation) over the graph `nbr`/`weight` (`graph`), seeded with
    `priors` [n, classes] for the unlabelled windows if given; -1 for windows of clips the
    graph does not reach or outside the `share` of clips whose class is the most certain
    (`clip_labels`)."""
    from emograph.components.models.propagation import clip_labels, propagate

    ids = [f"w{i}" for i in range(len(clip))]
    edges = [
        (ids[i], ids[j], float(w))
        for i, (row, weights) in enumerate(zip(nbr, weight, strict=True))
        for j, w in zip(row, weights, strict=True)
        if j >= 0
    ]
    nodes = {ids[i]: int(label[i]) if labelled[i] else F.UNLABELLED_ID for i in range(len(ids))}
    seeds = None if priors is None else {ids[i]: priors[i] for i in np.flatnonzero(~labelled)}
    scores = propagate(edges, nodes, classes, priors=seeds)
    by_clip = clip_labels(scores, nodes, dict(zip(ids, clip, strict=True)), share)
    return np.where(labelled, label, [by_clip.get(c, -1) for c in clip])


def labelled_clips(clip: np.ndarray, speaker: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Which windows keep their label: a seeded `fraction` of each speaker's clips (at least
    one), all windows of a chosen clip."""
    rng = np.random.default_rng(seed)
    chosen = []
    for s in np.unique(speaker):
        clips = np.unique(clip[speaker == s])
        count = max(1, int(round(fraction * len(clips))))
        chosen.extend(rng.choice(clips, count, replace=False))
    return np.isin(clip, chosen)


def _hinted_class():
    import tensorflow as tf
    import tf_keras as keras

    class Hinted(keras.Model):
        """Trains `model` (plain, NSL-wrapped) on its loss + weight x the mean squared error of
        a linear head on the base's embedding against the batch's HINT vectors."""

        def __init__(self, model, base, dim: int, weight: float):
            super().__init__(name="hinted")
            self.inner, self.weight = model, weight
            embedding = base.get_layer("embedding").output
            self.embed = keras.Model(base.input, embedding)
            self.head = keras.layers.Dense(dim, name="hint_head")

        def call(self, inputs, training=False):
            return self.inner({k: v for k, v in inputs.items() if k != HINT}, training=training)

        def train_step(self, data):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            with tf.GradientTape() as tape:
                logits = self(x, training=True)
                hard = self.compiled_loss(
                    y, logits, sample_weight, regularization_losses=self.inner.losses
                )
                predicted = self.head(self.embed({F.LOGMEL: x[F.LOGMEL]}, training=True))
                hint = tf.reduce_mean(tf.square(predicted - x[HINT]))
                loss = hard + self.weight * hint
            self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
            return {"loss": loss, "hint": hint}

    return Hinted


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", required=True, help="KIND:PATH, e.g. emovo:../shared/data/emovo16k")
    p.add_argument(
        "--folds",
        required=True,
        help="test speakers per fold: a+b,c+d,... (names without the corpus prefix)",
    )
    p.add_argument("--source", default="", help="KIND:PATH of the source corpus (pool_source)")
    p.add_argument("--variants", default="speech,nsl")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--baselines", default=",".join(BASELINES), help="openSMILE baselines to fit")
    p.add_argument("--run-folds", default="", help="indices of the folds to run (default all)")
    p.add_argument(
        "--labelled-fraction",
        type=float,
        default=1.0,
        help="share of each train speaker's clips that keep their label; the others stay in "
        "the graph as unlabelled neighbours (the baselines are fitted on the same labels)",
    )
    p.add_argument(
        "--select",
        default="",
        help="NAME=V1+V2+...: a row per fold and seed for the variant among V1, V2, ... with the "
        "best validation clip UAR (the first on ties), as the student trainer chooses among "
        "graph_multipliers (list them by ascending multiplier)",
    )
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", default="")
    args = p.parse_args()
    spec, corpus, folds = corpus_and_folds(args.corpus, args.folds)
    classes = corpus.classes
    run = [int(f) for f in args.run_folds.split(",")] if args.run_folds else range(len(folds))
    embeddings = {}
    variants = [v for v in args.variants.split(",") if v]
    for variant in variants:
        variant_options(variant)  # unknown tokens fail before any work
    source_spec, source_classes = None, ()
    if args.source:
        source_kind, source_path = args.source.split(":", 1)
        source_spec = CorpusSpec(source_kind, str(Path(source_path).absolute()))
        source_classes = corpora_classes(source_spec)
        load(source_spec, source_classes, AudioConfig(), FrontendConfig())
    baselines = [b for b in args.baselines.split(",") if b]
    sets = {BASELINES[b][0] for b in baselines} | {"eGeMAPSv02"}
    functionals = {
        (fs, spk): clip_functionals(spec, classes, corpus, fs, spk)
        for fs in sorted(sets)
        for spk in (False, True)
    }
    embeddings["egemaps"] = functionals[("eGeMAPSv02", True)]
    if ("ComParE_2016", True) in functionals:
        embeddings["compare"] = functionals[("ComParE_2016", True)]
    tasks = []
    for f, seed, variant in itertools.product(run, range(args.seeds), variants):
        splits = {s: "train" for s in np.unique(corpus.speaker)}
        splits.update(dict.fromkeys(folds[(f + 1) % len(folds)], "eval"))
        splits.update(dict.fromkeys(folds[f], "test"))
        tasks.append(
            dict(
                spec=spec,
                classes=classes,
                splits=splits,
                variant=variant,
                fold=f,
                seed=seed,
                embeddings=embeddings,
                threads=max(1, 2 // args.jobs),
                source_spec=source_spec,
                source_classes=source_classes,
                labelled_fraction=args.labelled_fraction,
            )
        )
    rows = []
    for f in run:
        splits = {s: "train" for s in np.unique(corpus.speaker)}
        splits.update(dict.fromkeys(folds[(f + 1) % len(folds)], "eval"))
        splits.update(dict.fromkeys(folds[f], "test"))
        for row in baseline_rows(functionals, corpus, splits, f, baselines, args.labelled_fraction):
            rows.append(row)
            print(json.dumps(row), flush=True)
    reference = variants[0] if variants else baselines[0]
    variants = [*baselines, *variants]
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        for row in pool.map(train_one, tasks):
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.select:
        name, candidates = args.select.split("=", 1)
        rows += selected_rows(rows, name, candidates.split("+"))
        variants.append(name)
    table = summarise(rows, variants, reference)
    print(table)
    out = Path(args.out or RESULTS / f"students-{spec.kind}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python -m benchmarks.students", *os.sys.argv[1:]])
    out.write_text(json.dumps({"command": command, "rows": rows, "table": table}, indent=1))


def corpora_classes(spec: CorpusSpec) -> tuple[str, ...]:
    """The emotions the corpus has (all of the vocabulary that its adapter emits)."""
    from emograph.components.config import EMOTIONS

    vocabulary = (*EMOTIONS, "calm", "surprised")
    clips, _ = corpora.list_clips(spec, vocabulary)
    return tuple(c for c in vocabulary if any(clip.label == c for clip in clips))


def clip_functionals(
    spec, classes, corpus: Corpus, feature_set: str, per_speaker: bool
) -> np.ndarray:
    """openSMILE functionals of each window's clip (speaker-normalised if `per_speaker`), laid
    out per window."""
    from emograph.components.expert import functionals as fx

    digest = hashlib.sha1(spec.path.encode()).hexdigest()[:10]
    path = CACHE / f"students-{spec.kind}-{digest}-{feature_set}.npz"
    if path.exists():
        data = dict(np.load(path))
    else:
        clips, _ = corpora.list_clips(spec, classes)
        data = {
            c.clip_id: fx.functionals(decode.load_audio(c.path), 16000, feature_set) for c in clips
        }
        np.savez(path, **data)
        print(f"{feature_set}: {len(data)} clips", flush=True)
    ids = sorted(set(corpus.clip))
    speakers = [corpus.speaker[corpus.clip == i][0] for i in ids]
    x = np.stack([data[i] for i in ids])
    if per_speaker:
        x = fx.speaker_normalise(x, speakers)
    row = {i: r for r, i in enumerate(ids)}
    return x[[row[c] for c in corpus.clip]]


def baseline_rows(
    functionals: dict,
    corpus: Corpus,
    splits: dict,
    fold: int,
    names: list[str],
    labelled_fraction: float = 1.0,
) -> list[dict]:
    """openSMILE functionals + a linear model per clip, C chosen on the validation speakers,
    fitted on the train clips that keep their label (`labelled_clips` with seed 0)."""
    from emograph.components.expert.linear import fit_linear

    ids, first = np.unique(corpus.clip, return_index=True)
    split = np.array([splits.get(s, "") for s in corpus.speaker[first]])
    label = corpus.label[first]
    rows = []
    for name in names:
        feature_set, model, _ = BASELINES[name]
        x = functionals[(feature_set, name.endswith("spk"))][first]
        tr, va, te = (split == n for n in ("train", "eval", "test"))
        if labelled_fraction < 1.0:  # the same clips as the students' seed 0
            keep = np.zeros(len(ids), bool)
            keep[tr] = labelled_clips(ids[tr], corpus.speaker[first][tr], labelled_fraction, 0)
            tr = tr & keep
        fitted = fit_linear(x[tr], label[tr], x[va], label[va], len(corpus.classes), model)
        uar = metrics.summary(label[te], fitted.predict(x[te]), corpus.classes)["uar"]
        rows.append(
            {
                "variant": name,
                "fold": fold,
                "seed": 0,
                "clip_uar": uar,
                "window_uar": float("nan"),
                "val_clip_uar": fitted.val_uar,
                "c": fitted.c,
                "labelled_fraction": labelled_fraction,
            }
        )
    return rows


def cross_fitted_probabilities(
    x: np.ndarray,
    label: np.ndarray,
    speaker: np.ndarray,
    split: np.ndarray,
    classes: int,
    temperature: float,
) -> np.ndarray:
    """An expert LR's class probabilities of every train clip, each train speaker's from a
    model fitted on the other train speakers (C on validation): honest soft labels, not the
    near-one-hot ones a model gives the clips it was fitted on."""
    from emograph.components.expert.linear import fit_linear

    out = np.zeros((len(x), classes), np.float32)
    va = split == "eval"
    for s in np.unique(speaker[split == "train"]):
        fit = (split == "train") & (speaker != s)
        model = fit_linear(x[fit], label[fit], x[va], label[va], classes, "lr")
        out[speaker == s] = model.probabilities(x[speaker == s], temperature)
    return out


def selected_rows(rows: list[dict], name: str, candidates: list[str]) -> list[dict]:
    """Per fold and seed, the row of the candidate variant with the best validation clip UAR
    (the earliest candidate on ties), renamed `name` and naming its choice in `selected`."""
    by_key = {(r["variant"], r["fold"], r["seed"]): r for r in rows}
    out = []
    for fold, seed in sorted({(r["fold"], r["seed"]) for r in rows if r["variant"] in candidates}):
        mine = [by_key[(c, fold, seed)] for c in candidates if (c, fold, seed) in by_key]
        best = max(mine, key=lambda r: (r["val_clip_uar"], -mine.index(r)))
        out.append({**best, "variant": name, "selected": best["variant"]})
    return out


def summarise(rows: list[dict], variants: list[str], reference: str) -> str:
    """Mean ± std of clip UAR per variant, and its paired difference to `reference` (same fold
    and seed; a baseline, which has no seeds, is paired with the fold's mean over seeds)."""
    lines = [f"{'variant':28s} clip UAR        window UAR      minus {reference} (paired)"]
    ref = {(r["fold"], r["seed"]): r["clip_uar"] for r in rows if r["variant"] == reference}
    for fold in {f for f, _ in ref}:
        ref[(fold, None)] = np.mean([v for (f, _), v in ref.items() if f == fold])
    for v in variants:
        mine = [r for r in rows if r["variant"] == v]
        if not mine:
            continue
        clip = np.array([r["clip_uar"] for r in mine])
        window = np.array([r["window_uar"] for r in mine])
        seeded = v not in BASELINES
        diff = np.array(
            [
                r["clip_uar"] - ref[(r["fold"], r["seed"] if seeded else None)]
                for r in mine
                if (r["fold"], r["seed"] if seeded else None) in ref
            ]
        )
        lines.append(
            f"{v:28s} {clip.mean():.3f} ± {clip.std():.3f}   {np.nanmean(window):.3f} ± "
            f"{np.nanstd(window):.3f}   {diff.mean():+.3f} ± {diff.std():.3f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
