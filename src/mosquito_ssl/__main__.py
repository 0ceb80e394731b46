"""``python -m mosquito_ssl``: the CLI, also for launchers (``torchrun -m mosquito_ssl ...``)."""

from .cli import main

main()
