"""Reports stage: tables, statistics, plots and an HTML/Markdown report from a results store.

    mosquito-ssl reports build runs/sweep/results.sqlite --out runs/sweep/report

Modules: load (store + run artifacts, read-only; ``Store.axes``: the swept settings of a
schema-3 store), labels (row keys and setting labels), tables, reference (``--reference``:
matching, and an error/warning when it matches nothing), paired (the paired tests and their
minimum numbers of pairs), stats (comparisons, correction), plots (shared plot pieces,
per-method, layer-wise, confusion), axis_plot (metric vs a numeric setting), curves (learning
curves: K per class needed to reach each baseline's full-data score), loss_plot
(pretraining loss), files (``file_stem``, the one sanitiser of data-derived file names, and
writes checked to stay inside ``--out``), html (tables and pages), build
(``build_report(ReportConfig)``), cli. Nothing here imports torch or transformers.
"""

from __future__ import annotations

__all__ = ["ReportConfig", "build_report"]


def __getattr__(name: str):
    # Lazy, so `import mosquito_ssl.reports.load` does not pull in matplotlib/seaborn.
    if name in __all__:
        from . import build

        return getattr(build, name)
    raise AttributeError(name)
