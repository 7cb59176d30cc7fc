"""expert acoustic features (openSMILE eGeMAPS / ComParE functionals) and linear baselines."""
