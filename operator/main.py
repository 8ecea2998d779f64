"""Operator entry point for `kopf run operator/main.py` (development) and the container image.

The handlers live in the installed package (`labenv.controller.handlers`) so that the CLI, the tests
and the image all run the same code; this file only registers them with Kopf.
"""

import labenv.controller.cohort_handlers
import labenv.controller.handlers  # noqa: F401  (importing registers the Kopf handlers)
