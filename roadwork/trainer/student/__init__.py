"""Distilled students in stock architectures (what the stock miner serves with no change)."""
