"""Teacher embeddings of examples, as a Beam transform (the Embedder's Beam job).

Each worker loads the teacher SavedModel once (DoFn.setup) and embeds batches through its
`embed` signature, so the job scales with the runner, not with one process's memory.
"""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam
import numpy as np
import tensorflow as tf

from components import features as F

EMBED_SIGNATURE = "embed"
CARRIED = (F.ID, F.LABEL, F.SPEAKER)  # kept beside the embedding, for graph statistics


def embedding_example(example_id: bytes, embedding: np.ndarray, carried: dict) -> bytes:
    """tf.Example(id, embedding, label, speaker) as bytes."""
    feats = {F.EMBEDDING: tf.train.Feature(float_list=tf.train.FloatList(value=embedding))}
    for key, value in carried.items():
        feats[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    feats[F.ID] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[example_id]))
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def parse_embedding(serialized: bytes) -> dict:
    """Inverse of `embedding_example`: {id: str, embedding: float32[d], label, speaker}."""
    feats = tf.train.Example.FromString(serialized).features.feature
    record = {F.EMBEDDING: np.asarray(feats[F.EMBEDDING].float_list.value, np.float32)}
    for key in CARRIED:
        if key in feats:
            record[key] = feats[key].bytes_list.value[0].decode()
    return record


class EmbedBatch(beam.DoFn):
    """A batch of serialized transformed examples -> serialized embedding examples."""

    def __init__(self, model_dir: str):
        self._model_dir = model_dir

    def setup(self):
        self._embed = tf.saved_model.load(self._model_dir).signatures[EMBED_SIGNATURE]
        width = self._embed.structured_input_signature[1][F.LOGMEL].shape[-1]
        self._spec = {F.LOGMEL: tf.io.FixedLenFeature([width], tf.float32)}
        self._spec.update({key: tf.io.FixedLenFeature([], tf.string) for key in CARRIED})

    def process(self, batch: list[bytes]) -> Iterator[bytes]:
        parsed = tf.io.parse_example(tf.constant(batch), self._spec)
        embeddings = self._embed(**{F.LOGMEL: parsed[F.LOGMEL]})[F.EMBEDDING].numpy()
        carried = {key: parsed[key].numpy() for key in CARRIED if key != F.ID}
        for i, example_id in enumerate(parsed[F.ID].numpy()):
            yield embedding_example(
                example_id, embeddings[i], {k: v[i] for k, v in carried.items()}
            )
        beam.metrics.Metrics.counter("emograph.embedder", "embedded").inc(len(batch))


class EmbedExamples(beam.PTransform):
    """PCollection[serialized transformed tf.Example] -> PCollection[serialized embedding]."""

    def __init__(self, model_dir: str, max_batch_size: int = 256):
        super().__init__()
        self._model_dir, self._max_batch_size = model_dir, max_batch_size

    def expand(self, examples):
        return (
            examples
            | "Batch" >> beam.BatchElements(min_batch_size=8, max_batch_size=self._max_batch_size)
            | "Embed" >> beam.ParDo(EmbedBatch(self._model_dir))
        )
