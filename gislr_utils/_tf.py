"""TensorFlow and Keras, imported once with their C++ start-up log silenced.

TensorFlow's wheels print lines such as "Could not find cuda drivers" from C++ straight to file
descriptor 2 while they load, before `TF_CPP_MIN_LOG_LEVEL` is read, and Jupyter kernels forward
that descriptor into the rendered page. Every module of the package that needs TensorFlow does
`from ._tf import tf, keras`, so the first import happens here with descriptor 2 pointed at
/dev/null. Python exceptions are not affected: a broken install still fails loudly.
"""
import contextlib
import logging
import os
import sys
import warnings


@contextlib.contextmanager
def _fd2_to_devnull():
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


with _fd2_to_devnull(), warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import tensorflow as tf
    import keras

for _name in ("absl", "tensorflow", "h5py"):      # quiet the noisy loggers; warnings still show
    logging.getLogger(_name).setLevel(logging.ERROR)

# A testing aid for the multi-device code without a GPU: GISLR_CPU_REPLICAS=2 splits the CPU
# into two logical devices before TensorFlow uses it, so that `training.get_strategy("mirrored")`
# trains on two replicas (chapter 4's GPU section; tests/test_training.py).
_replicas = int(os.environ.get("GISLR_CPU_REPLICAS", "1") or 1)
if _replicas > 1:
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * _replicas)
try:  # absl is a TensorFlow dependency; quiet its Python logger too
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
except ImportError:  # pragma: no cover
    pass

__all__ = ["tf", "keras"]
