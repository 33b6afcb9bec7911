"""Training data: records and readers, synthetic data, metadata, crops, batches, sampling, augmentation."""
