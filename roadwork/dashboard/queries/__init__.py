"""What each dashboard page reads: one module per page of `views/` (same name), plus `common` for rows and
reads that several pages share.

Rules for every module here: no SQL (queries live in `roadwork.db.repo`); short read sessions; frozen dataclasses
out; results cached for `context.CACHE_TTL_S` seconds keyed by the database URL; times as naive local wall-clock
datetimes. A page that shows no model output must not import torch, scipy and the like through its module
(`tests/dashboard/test_startup.py`).
"""
