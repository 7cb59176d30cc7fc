"""emograph's pipeline steps: pure functions per step, each with a thin TFX wrapper.

Subpackages that use TensorFlow import `compat` first; `edge`, `config` and `features` import
nothing heavy, so the on-device predictor loads without side effects.
"""
