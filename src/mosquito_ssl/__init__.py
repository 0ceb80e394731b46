"""mosquito-ssl: self-supervised AST pretraining and evaluation on mosquito flight sounds.

Stages (each a sub-command of ``mosquito-ssl``): ``data``, ``pretrain``, ``probe``,
``benchmarks``, ``reports`` and ``demo``. See README.md.
"""

__version__ = "0.1.0"
