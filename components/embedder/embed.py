"""Every candidate embedding of every example, as one Beam job (the Embedder's).

Which embedding makes the graph that joins clips of the same emotion is an empirical question
(on real acted speech a teacher trained on another corpus can embed clips worse than plain
utterance statistics), so the Embedder computes all candidates once and the GraphBuilder
chooses among them (components/graph/selection.py). Candidates, by name:

- `teacher`: the teacher's `embed` signature output `embedding`; any further outputs of that
  signature (e.g. pooled intermediate blocks) become `teacher_<output>`;
- `logmel`: per-band mean, std and mean |delta| of the normalised log-mel (the Transform's
  features, so speaker-normalised when the run is);
- `statistics`: prosody of the raw audio (components/embedder/statistics.py);
- `egemaps`, `compare`: openSMILE functionals of the raw audio, only when asked for
  (components/embedder/expert.py).

Each worker loads the teacher SavedModel once (DoFn.setup) and embeds batches, so the job scales
with the runner, not with one process's memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import apache_beam as beam
import numpy as np
import tensorflow as tf

from emograph.components import features as F
from emograph.components.embedder.expert import ExpertFunctionalsOf, check_expert
from emograph.components.embedder.statistics import StatisticsOf

EMBED_SIGNATURE = "embed"
CARRIED = (F.LABEL, F.SPEAKER)  # kept beside the embeddings, for graph statistics
TEACHER, LOGMEL = "teacher", "logmel"

Vectors = dict[str, np.ndarray]


def embedding_example(example_id: bytes, vectors: Vectors, carried: dict[str, bytes]) -> bytes:
    """tf.Example(id, embedding_<name> for each vector, label, speaker) as bytes."""
    feats = {
        F.EMBEDDING_PREFIX + name: tf.train.Feature(float_list=tf.train.FloatList(value=vector))
        for name, vector in vectors.items()
    }
    for key, value in {**carried, F.ID: example_id}.items():
        feats[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def parse_embedding(serialized: bytes) -> dict:
    """Inverse of `embedding_example`: {id, label, speaker: str, "vectors": {name: float32[d]}}."""
    feats = tf.train.Example.FromString(serialized).features.feature
    record: dict = {
        "vectors": {
            key[len(F.EMBEDDING_PREFIX) :]: np.asarray(value.float_list.value, np.float32)
            for key, value in feats.items()
            if key.startswith(F.EMBEDDING_PREFIX)
        }
    }
    for key in (F.ID, *CARRIED):
        if key in feats:
            record[key] = feats[key].bytes_list.value[0].decode()
    return record


def logmel_statistics(logmel: np.ndarray) -> np.ndarray:
    """[..., frames, bands] -> [..., 3 * bands]: per-band mean, std and mean |delta| over time
    (spectral envelope, its variability and how fast it moves)."""
    delta = np.abs(np.diff(logmel, axis=-2))
    return np.concatenate(
        [logmel.mean(axis=-2), logmel.std(axis=-2), delta.mean(axis=-2)], axis=-1
    ).astype(np.float32)


class EmbedBatch(beam.DoFn):
    """Serialized transformed examples -> (id, (teacher and log-mel vectors, carried))."""

    def __init__(self, model_dir: str, bands: int):
        self._model_dir, self._bands = model_dir, bands

    def setup(self):
        self._embed = tf.saved_model.load(self._model_dir).signatures[EMBED_SIGNATURE]
        width = self._embed.structured_input_signature[1][F.LOGMEL].shape[-1]
        self._spec = {F.LOGMEL: tf.io.FixedLenFeature([width], tf.float32)}
        self._spec.update({key: tf.io.FixedLenFeature([], tf.string) for key in (F.ID, *CARRIED)})

    def process(self, batch: list[bytes]) -> Iterator[tuple[str, tuple[Vectors, dict]]]:
        parsed = tf.io.parse_example(tf.constant(batch), self._spec)
        outputs = {
            TEACHER if name == F.EMBEDDING else f"{TEACHER}_{name}": value.numpy()
            for name, value in self._embed(**{F.LOGMEL: parsed[F.LOGMEL]}).items()
        }
        logmel = parsed[F.LOGMEL].numpy().reshape(len(batch), -1, self._bands)
        outputs[LOGMEL] = logmel_statistics(logmel)
        carried = {key: parsed[key].numpy() for key in CARRIED}
        for i, example_id in enumerate(parsed[F.ID].numpy()):
            vectors = {name: values[i] for name, values in outputs.items()}
            yield example_id.decode(), (vectors, {k: v[i] for k, v in carried.items()})
        beam.metrics.Metrics.counter("emograph.embedder", "embedded").inc(len(batch))


def _merge(item: tuple[str, dict[str, Iterable]]) -> Iterator[bytes]:
    """One example's vectors from every input ("transformed", "raw" and, when computed,
    "expert") -> its embedding example; a clip missing from any input is a broken join, never
    silently dropped."""
    example_id, joined = item
    order = ["transformed", "raw", *sorted(set(joined) - {"transformed", "raw"})]
    parts = {kind: list(joined.get(kind, ())) for kind in order}
    if any(len(values) != 1 for values in parts.values()):
        counts = " and ".join(f"{len(values)} {kind}" for kind, values in parts.items())
        raise ValueError(
            f"example {example_id!r}: {counts} examples (each must appear once in every input)"
        )
    ((vectors, carried),) = parts.pop("transformed")
    for (more,) in parts.values():
        vectors = {**vectors, **more}
    yield embedding_example(example_id.encode(), vectors, carried)


class EmbedExamples(beam.PTransform):
    """(transformed, raw) PCollections of serialized tf.Examples of the same windows ->
    PCollection[serialized embedding example with every candidate].

    `expert`: expert candidates to compute as well ("egemaps", "compare"; none by default).
    """

    def __init__(
        self,
        model_dir: str,
        bands: int,
        sample_rate: int,
        max_batch_size: int = 256,
        expert: Sequence[str] = (),
    ):
        super().__init__()
        self._model_dir, self._bands = model_dir, bands
        self._sample_rate, self._max_batch_size = sample_rate, max_batch_size
        self._expert = check_expert(expert)

    def expand(self, pcolls):
        transformed, raw = pcolls
        learnt = (
            transformed
            | "Batch" >> beam.BatchElements(min_batch_size=8, max_batch_size=self._max_batch_size)
            | "Embed" >> beam.ParDo(EmbedBatch(self._model_dir, self._bands))
        )
        statistics = raw | "Statistics" >> beam.ParDo(StatisticsOf(self._sample_rate))
        inputs = {"transformed": learnt, "raw": statistics}
        if self._expert:
            inputs["expert"] = raw | "Expert" >> beam.ParDo(
                ExpertFunctionalsOf(self._sample_rate, self._expert)
            )
        return inputs | "JoinById" >> beam.CoGroupByKey() | "Merge" >> beam.FlatMap(_merge)
