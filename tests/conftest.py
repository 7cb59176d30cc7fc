"""The compat module runs first in the test process too, before any test imports numpy."""

import components  # noqa: F401
