"""Reports stage: tables, statistics, plots and an HTML/Markdown report from a results store.

    mosquito-ssl reports build runs/sweep/results.sqlite --out runs/sweep/report

Modules: load (store + run artifacts, read-only), tables, stats, plots, html (file writing),
build (``build_report(ReportConfig)``), cli. Nothing here imports torch or transformers.
"""

from __future__ import annotations

__all__ = ["ReportConfig", "build_report"]


def __getattr__(name: str):
    # Lazy, so `import mosquito_ssl.reports.load` does not pull in matplotlib/seaborn.
    if name in __all__:
        from . import build

        return getattr(build, name)
    raise AttributeError(name)
