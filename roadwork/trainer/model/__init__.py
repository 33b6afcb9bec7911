"""The networks: backbones, the classifier, multi-view model, ensembles, checkpoints, layers."""
