"""Training and embedding throughput of the training pipelines, one process (``benchmarks speed``).

    mosquito-ssl benchmarks speed --preset base --batch 8 --json

``pipelines`` lists what is timed (the original pipeline, the reconstruct method), ``run``
measures each the same way, ``cli`` is the command. FLOP counts live beside the model
(``model/flops.py``).
"""
