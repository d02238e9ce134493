"""gislr_utils: every piece of data and model code that the GISLR transformer book calls.

Importing the package silences TensorFlow's C++ log noise *before* TensorFlow is imported
(chapters import gislr_utils first), so rendered pages stay clean.
"""
import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"
