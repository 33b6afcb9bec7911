"""Roadwork Ops: the operations loop of a StreetVision roadwork-detection miner."""

__version__ = "0.1.0"
