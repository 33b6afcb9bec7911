from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.exc import IntegrityError

from roadwork.clock import utcnow
from roadwork.db import models as m
from roadwork.db import repo
from roadwork.db.engine import read_session, write_session


def _version(session, version: str = "0.1.0", name: str = "rw", **extra) -> repo.Version:  # noqa: ANN001, ANN003
    fields = dict(name=name, version=version, artifact_sha256="a" * 64, artifact_path="/x", config={"k": 1},
                  metrics={"val_mcc": 0.5}, parent_id=None, data_fingerprint="f" * 64, code_revision="abc",
                  hard_negative_set_id=None, created_by="test")
    return repo.create_version(session, **(fields | extra))


def test_versions_are_immutable(engine) -> None:
    with write_session(engine) as s:
        v = _version(s)
    with pytest.raises(m.ImmutableRowError):
        with write_session(engine) as s:
            s.get(m.ModelVersion, v.id).metrics = {"val_mcc": 0.99}
    with pytest.raises(m.ImmutableRowError):
        with write_session(engine) as s:
            s.delete(s.get(m.ModelVersion, v.id))
    with read_session(engine) as s:
        assert repo.get_version(s, v.id).metrics == {"val_mcc": 0.5}


def test_alias_events_are_append_only(engine) -> None:
    with write_session(engine) as s:
        v = _version(s)
        e = repo.move_alias(s, alias="champion", to_version_id=v.id, action="deploy", actor="t")
    with pytest.raises(m.ImmutableRowError):
        with write_session(engine) as s:
            s.get(m.AliasEvent, e.id).reason = "rewritten"


def test_duplicate_version_and_bad_semver_are_refused(engine) -> None:
    with write_session(engine) as s:
        _version(s)
    with pytest.raises(IntegrityError):
        with write_session(engine) as s:
            _version(s)
    with pytest.raises(ValueError, match="semantic version"):
        with write_session(engine) as s:
            _version(s, version="v2")


def test_next_semver_and_lookup_by_id_version_and_name(engine) -> None:
    with write_session(engine) as s:
        assert repo.next_semver(s, "rw") == "0.1.0"
        a = _version(s, "0.1.0")
        _version(s, "0.9.0")
        assert repo.next_semver(s, "rw") == "0.10.0"  # numeric, not lexicographic
        _version(s, "0.1.0", name="other")
    with read_session(engine) as s:
        assert repo.get_version(s, a.id).version == "0.1.0"
        assert repo.get_version(s, "rw:0.1.0").id == a.id
        assert repo.get_version(s, "0.9.0").name == "rw"
        with pytest.raises(repo.NotFoundError, match="ambiguous"):
            repo.get_version(s, "0.1.0")
        with pytest.raises(repo.NotFoundError, match="7.7.7"):
            repo.get_version(s, "7.7.7")


def test_alias_moves_keep_history_and_answer_what_was_live_when(engine) -> None:
    with write_session(engine) as s:
        v1, v2 = _version(s, "0.1.0"), _version(s, "0.2.0")
        e1 = repo.move_alias(s, alias="champion", to_version_id=v1.id, action="deploy", actor="a", reason="first")
    with write_session(engine) as s:
        e2 = repo.move_alias(s, alias="champion", to_version_id=v2.id, action="deploy", actor="b", reason="better")
    with read_session(engine) as s:
        assert repo.alias_holder(s).id == v2.id
        history = repo.alias_history(s)
        assert [h.id for h in history] == [e2.id, e1.id]
        assert history[0].from_version_id == v1.id and history[0].actor == "b"
        assert repo.alias_at(s, e1.created_at).id == v1.id
        assert repo.alias_at(s, e2.created_at + dt.timedelta(seconds=1)).id == v2.id
        assert repo.alias_at(s, e1.created_at - dt.timedelta(days=1)) is None


def test_lease_is_exclusive_until_stale(engine) -> None:
    now = utcnow()
    with write_session(engine) as s:
        ok, _ = repo.acquire_lease(s, holder="A", hostname="h", pid=1, timeout_s=60, now=now)
        assert ok
    with write_session(engine) as s:
        ok, lease = repo.acquire_lease(s, holder="B", hostname="h", pid=2, timeout_s=60,
                                       now=now + dt.timedelta(seconds=30))
        assert not ok and lease.holder == "A"
    with write_session(engine) as s:  # A's heartbeat is now 61 s old: B takes over
        ok, lease = repo.acquire_lease(s, holder="B", hostname="h", pid=2, timeout_s=60,
                                       now=now + dt.timedelta(seconds=61))
        assert ok and lease.holder == "B"
    with write_session(engine) as s:  # and A learns it lost the lease at its next heartbeat
        assert not repo.renew_lease(s, "A")
        assert repo.renew_lease(s, "B")


def test_each_takeover_of_the_lease_gets_a_larger_fencing_token(engine) -> None:
    with write_session(engine) as s:
        _, first = repo.acquire_lease(s, holder="A", hostname="h", pid=1, timeout_s=60)
    with write_session(engine) as s:  # a fresh heartbeat, but A's process was found gone: taken over at once
        ok, second = repo.acquire_lease(s, holder="B", hostname="h", pid=2, timeout_s=60, holder_gone=True)
    assert ok and second.token == first.token + 1
    with write_session(engine) as s:
        _, again = repo.acquire_lease(s, holder="B", hostname="h", pid=2, timeout_s=60)
    assert again.token == second.token  # re-acquiring our own lease keeps the token
    with write_session(engine) as s, pytest.raises(repo.LeaseLostError, match="now held by B"):
        repo.check_lease(s, "A", first.token)
    with write_session(engine) as s:
        repo.check_lease(s, "B", second.token)
        assert not repo.renew_lease(s, "B", first.token)  # the right holder with a stale token is refused


def test_a_command_is_claimed_once(engine) -> None:
    with write_session(engine) as s:
        c = repo.submit_command(s, kind="pause", payload={"job_id": "x"}, requested_by="t")
    with write_session(engine) as s:
        assert repo.claim_command(s, c.id)
    with write_session(engine) as s:
        assert not repo.claim_command(s, c.id)
        done = repo.complete_command(s, c.id, ok=True, outcome="paused")
    assert done.status == "applied" and done.applied_at is not None
    with pytest.raises(ValueError, match="unknown command"):
        with write_session(engine) as s:
            repo.submit_command(s, kind="explode", payload={}, requested_by="t")


def test_evaluations_with_condition_cells(engine) -> None:
    with write_session(engine) as s:
        v = _version(s)
        e1 = repo.add_evaluation(s, version_id=v.id, dataset="d", n=10, mcc=0.5, accuracy=0.7, metrics={},
                                 conditions=[repo.ConditionCell("weather", "Rain", 4, 0.2, 0.6, -0.1, 0.5)])
        e2 = repo.add_evaluation(s, version_id=v.id, dataset="d", n=10, mcc=0.6, accuracy=0.8, metrics={})
    with read_session(engine) as s:
        assert repo.latest_evaluations(s)[v.id].id == e2.id
        assert repo.condition_cells(s, e1.id) == [repo.ConditionCell("weather", "Rain", 4, 0.2, 0.6, -0.1, 0.5)]


def test_foreign_keys_are_enforced(engine) -> None:
    with pytest.raises(IntegrityError):
        with write_session(engine) as s:
            repo.add_evaluation(s, version_id=999, dataset="d", n=1, mcc=0, accuracy=0, metrics={})



def test_semver_key_orders_versions_numerically_with_odd_strings_first() -> None:
    versions = ["0.10.0", "0.9.0", "not-semver", "1.0.0", "0.9.1"]
    assert sorted(versions, key=repo.semver_key) == ["not-semver", "0.9.0", "0.9.1", "0.10.0", "1.0.0"]


def test_lineage_walks_parents_up_to_the_depth_with_the_hard_negative_set(engine) -> None:
    with write_session(engine) as s:
        hard = m.HardNegativeSet(name="rain misses", source_version_id=None, pool="/pool", n_items=7)
        s.add(hard)
        s.flush()
        root = _version(s, "0.1.0")
        child = _version(s, "0.2.0", parent_id=root.id, hard_negative_set_id=hard.id)
        grandchild = _version(s, "0.3.0", parent_id=child.id)
    with read_session(engine) as s:
        chain = repo.lineage(s, grandchild.id, max_depth=1)
        full = repo.lineage(s, grandchild.id, max_depth=10)
        assert repo.alias_target(s) is None
    assert [(e.depth, e.version) for e in chain] == [(0, "0.3.0"), (1, "0.2.0")]
    assert [e.version for e in full] == ["0.3.0", "0.2.0", "0.1.0"]
    assert (full[1].hard_negative_set_name, full[1].hard_negative_set_items) == ("rain misses", 7)
    assert full[0].hard_negative_set_name is None


def test_preferred_evaluation_is_the_latest_replay_else_the_latest_of_any_kind(engine) -> None:
    with write_session(engine) as s:
        v = _version(s)
        replay = repo.add_evaluation(s, version_id=v.id, dataset="d", n=10, mcc=0.4, accuracy=0.7, metrics={},
                                     kind="replay")
        repo.add_evaluation(s, version_id=v.id, dataset="d", n=10, mcc=0.6, accuracy=0.8, metrics={})
        only_validation = _version(s, "0.2.0")
        validation = repo.add_evaluation(s, version_id=only_validation.id, dataset="d", n=5, mcc=0.1, accuracy=0.5,
                                         metrics={})
    with read_session(engine) as s:
        assert repo.replay_or_latest_evaluation(s, v.id).id == replay.id
        assert repo.replay_or_latest_evaluation(s, only_validation.id).id == validation.id
        assert repo.preferred_mcc(s, [v.id, only_validation.id]) == {v.id: (0.4, "replay"),
                                                                       only_validation.id: (0.1, "validation")}
