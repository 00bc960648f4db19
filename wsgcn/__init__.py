"""The ground floor of both stages.

- ``wsgcn.infra``: how every step runs (configs, the scripts' main, processes, files, training
  loop, weights); it imports nothing else of the project.
- ``wsgcn.seg``: what the stages compute with (the data set, score archives, crops, the metric,
  the CRF, the random walk); it stands on ``infra`` only.
- The tools on top: ``report`` and ``demo_data`` (run as ``python -m wsgcn.<name>``), and
  ``plots``, the pictures that eval.py and GCN/visualize.py draw.
"""
