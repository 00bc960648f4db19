"""How every step runs: typed configs, the scripts' main and exit statuses, devices and
processes, torchrun, the per-image protocol, files and atomic writes, the work-dir layout, the
training loop, weights files, TensorBoard scalars and training-list screening."""
