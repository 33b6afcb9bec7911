"""A/B tests between two versions: statistics, live split, service."""
