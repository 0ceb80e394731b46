"""The results store (SQLite): its schema and migrations (``schema.py``), the writes of the
benchmarks stage (``write.py``) and the read of the reports stage (``read.py``). Torch-free::

    ResultsStore(path).commit_cell(cell, rows)     # benchmarks
    load_store(path).results                       # reports
"""

from .read import Store, load_store
from .write import ResultsStore, merge_stores

__all__ = ["ResultsStore", "Store", "load_store", "merge_stores"]
