"""Names of the tf.Example features that flow between steps (the contract of schemas/)."""

from collections.abc import Sequence

# Raw audio examples written by AudioExampleGen: one example per window of one clip.
AUDIO = "audio_pcm16"  # bytes: little-endian int16 PCM, 16 kHz mono, exactly one window long
LABEL = "label"  # bytes: emotion name from the run's class list, or UNLABELLED
UNLABELLED = ""  # the LABEL of a clip without one (unlabelled audio): no step trains on it
UNLABELLED_NAME = "(unlabelled)"  # its name in reports (the ingest report's label counts)
SPEAKER = "speaker"  # bytes: corpus-qualified speaker id, e.g. "ravdess/Actor_01"
CLIP = "clip_id"  # bytes: stable id of the source file (hash of corpus + relative path)
ID = "id"  # bytes: stable id of the window, f"{clip_id}:{window index}"
CORPUS = "corpus"  # bytes: corpus name
START = "start_seconds"  # float: where the window starts in the clip

# Transformed examples (Transform output) add:
LOGMEL = "logmel"  # float[frames * mel_bands], normalised log-mel, row-major (frame, band)
# float[mel_bands]: Transform's per-band mean and inverse std of the train log-mel, on every
# example (global normalisation): what a globally normalised edge model bakes in
LOGMEL_MEAN = "logmel_mean"
LOGMEL_INV_STD = "logmel_inv_std"
LABEL_ID = "label_id"  # int64: index of LABEL in the run's class list, UNLABELLED_ID if none
UNLABELLED_ID = -1
# float[8 * mel_bands]: statistics of each log-mel band over the window (frontend.functionals),
# normalised like LOGMEL (per speaker or globally); the functionals student's input
FUNCTIONALS = "functionals"

# Embeddings: the teacher's `embed` signature returns EMBEDDING; the Embedder writes one feature
# per candidate embedding, EMBEDDING_PREFIX + name (components/embedder/embed.py).
EMBEDDING = "embedding"  # float[dim]
EMBEDDING_PREFIX = "embedding_"

# NSL's packed-neighbour format (nsl.configs.DEFAULT_NEIGHBOR_FEATURE_PREFIX etc.).
NBR_PREFIX = "NL_nbr_"
NBR_WEIGHT_SUFFIX = "_weight"
NUM_NBRS = "NL_num_nbrs"


def label_id(label: str, classes: Sequence[str]) -> int:
    """LABEL_ID of a LABEL value (outside TensorFlow): its index in `classes`, or UNLABELLED_ID."""
    return UNLABELLED_ID if label == UNLABELLED else list(classes).index(label)
