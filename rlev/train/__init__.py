"""Training back ends: `local` (single process, CPU or one GPU) and `verl` (GPUs, Ray)."""
