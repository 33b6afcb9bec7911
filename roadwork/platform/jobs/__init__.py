"""Scheduled and on-demand jobs: catalog, scheduler, job store, child-process runner."""
