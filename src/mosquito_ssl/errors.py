"""User-facing errors. The CLI prints ``str(error)`` on one line and exits 1.

Every message names the file, flag or class at fault and says how to fix it.
Set ``MOSQUITO_SSL_DEBUG=1`` to see the traceback as well.
"""


class MosquitoSSLError(Exception):
    """A mistake the user can fix (bad input, bad option); never a bug."""


class DataError(MosquitoSSLError):
    """Unusable data set: nothing left after skipping bad files, too few examples, bad labels."""


class ConfigError(MosquitoSSLError):
    """Bad option, TOML file or sweep specification."""


class CheckpointError(MosquitoSSLError):
    """A checkpoint or run directory that cannot be loaded."""


class StoreError(MosquitoSSLError):
    """A results store that cannot be read or written."""
