"""The training loop: training, resumable state, distributed, optimisers, losses, finders, probes."""
