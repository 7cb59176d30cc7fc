"""emograph's own artifact types (TYPE_NAMEs follow KFP v2's `namespace.Name` rule)."""

from emograph.components import compat  # noqa: F401  (before TensorFlow: see compat)

# isort: split
from tfx.types.artifact import Artifact


class IngestReport(Artifact):
    """ingest_report.json (found = ingested + rejected, a reason per rejected file), splits.json."""

    TYPE_NAME = "emograph.IngestReport"


class Embeddings(Artifact):
    """Teacher embeddings of every target example: Split-<name>/*.gz tf.Examples (id, embedding)."""

    TYPE_NAME = "emograph.Embeddings"


class SimilarityGraph(Artifact):
    """graph-*.tsv in NSL's format (source, target, weight), stats.json and stats.png; with
    graph.incremental also nodes/ (prepared unit vectors) for the next run to extend it."""

    TYPE_NAME = "emograph.SimilarityGraph"
