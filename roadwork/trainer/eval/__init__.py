"""Model-side evaluation: metrics, calibration, test-time augmentation, prediction."""
