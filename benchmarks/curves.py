"""Learning curves from benchmarks/students.py results, or from the results.json of `emograph
experiment` runs at different labelled shares: clip UAR per model against the share of labelled
clips (mean ± std over folds x seeds; int8 for a pipeline experiment's models), one PNG.

    .venv/bin/python -m benchmarks.curves docs/results/students-emovo-functionals-labels-*.json \
        docs/results/baselines-emovo-labels-*.json docs/results/students-emovo-functionals.json \
        --out docs/results/emovo-labels.png
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from emograph.pipeline.experiment import learning_curves
from emograph.pipeline.report import plot_learning_curves


def curves(results: list[dict]) -> dict[str, dict[float, list[float]]]:
    """variant -> labelled fraction -> clip UARs of every fold and seed (a baseline: by fold;
    rows without a fraction were fitted on all labels)."""
    out: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    seen: set[tuple] = set()
    for result in results:
        for row in result["rows"]:
            fraction = row.get("labelled_fraction", 1.0)
            key = (row["variant"], fraction, row["fold"], row["seed"])
            if key not in seen:  # a baseline repeated in several files counts once
                seen.add(key)
                out[row["variant"]][fraction].append(row["clip_uar"])
    return out


def load(results: list[dict]) -> dict[str, dict[float, list[float]]]:
    """`curves` of the benchmarks/students.py results merged with the learning curves
    (`experiment.learning_curves`) of the experiment results, one labelled share each."""
    data = curves([r for r in results if "folds_detail" not in r])
    shares = {r.get("labelled_fraction", 1.0): r for r in results if "folds_detail" in r}
    if shares:
        for model, by_share in learning_curves(shares)["curves"].items():
            for share, uars in by_share.items():
                data[model][float(share)].extend(uars)
    return data


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "results", nargs="+", help="benchmarks/students.py JSON or experiment results.json files"
    )
    p.add_argument("--variants", default="", help="comma-separated variants to plot (default all)")
    p.add_argument("--title", default="")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    data = load([json.loads(Path(f).read_text()) for f in args.results])
    if args.variants:
        data = {v: data[v] for v in args.variants.split(",")}
    by_share = {v: {f"{f:g}": uars for f, uars in d.items()} for v, d in data.items()}
    plot_learning_curves(by_share, args.title, args.out)
    for variant, by_fraction in sorted(data.items()):
        cells = "  ".join(
            f"{f:g}: {np.mean(v):.3f} ± {np.std(v):.3f}" for f, v in sorted(by_fraction.items())
        )
        print(f"{variant:32s} {cells}")


if __name__ == "__main__":
    main()
