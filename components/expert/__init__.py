"""expert acoustic features (openSMILE eGeMAPS / ComParE functionals) and linear baselines."""

from emograph.components import compat  # noqa: F401  (before TensorFlow: see compat)
