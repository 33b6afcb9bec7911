"""`roadwork demo`: the whole loop on the embedded defaults, on a fresh or existing home."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from roadwork.config import Settings
from roadwork.db import repo
from roadwork.db.engine import current_revision, get_engine, migrate, read_session
from roadwork.platform.evaluation import evaluate_version
from roadwork.platform.publish import CURRENT
from roadwork.platform.replay_evaluation import evaluate_replay
from roadwork.platform.registry import deploy
from roadwork.platform.training import train_and_register
from roadwork.trainer.config import TrainConfig, load_config
from roadwork.trainer.data import find_parquet_files


def run_demo(
    settings: Settings,
    *,
    n: int = 600,
    replay_n: int = 500,
    config_path: Path | None = None,
    show_progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Migrate, synthesise data (once), train, register, evaluate and deploy. Returns where everything is."""
    from roadwork.cli import synthesize_with_progress

    engine = get_engine(settings.db_url)
    migrate(engine)
    log(f"[1/5] database {settings.public_dict()['database_url']} at revision {current_revision(engine)}")

    data_dir = settings.datasets_dir / "synth"
    try:
        find_parquet_files(data_dir)
        log(f"[2/5] synthetic dataset already at {data_dir}")
    except FileNotFoundError:
        report = synthesize_with_progress(data_dir, n, seed=0, corrupt_fraction=0.01, show=show_progress)
        log(f"[2/5] synthesised {report.n_rows} rows ({report.n_positive} roadwork, {report.n_corrupt} corrupt) "
            f"at {data_dir}")

    config = load_config(config_path) if config_path else TrainConfig()
    log(f"[3/5] training preset '{config.name}' ({config.optim.epochs} epochs at {config.data.image_size} px)")
    version, result = train_and_register(
        engine, settings, config, data_path=data_dir, actor="demo", show_progress=show_progress, log=log
    )
    log(f"      registered {version.label}: val MCC {result.metrics['val_mcc']:.3f} in {result.seconds:.0f} s")

    evaluation = evaluate_version(engine, settings, version.id)
    replay = evaluate_replay(engine, settings, version.id, n=replay_n, seed=0)
    expected = replay.metrics["expected_reward"]["final_score"]
    log(f"[4/5] evaluated on {evaluation.n} validation images: MCC {evaluation.mcc:.3f}, "
        f"accuracy {evaluation.accuracy:.3f}; on a {replay.n}-challenge validator replay: MCC {replay.mcc:.3f}, "
        f"expected validator score {expected['mean']:.3f}")

    deployed = deploy(engine, settings, version.id, actor="demo", reason="demo run")
    log(f"[5/5] deployed {version.label} as champion; serving from {settings.publish_dirs[0] / CURRENT}")
    with read_session(engine) as session:
        n_versions = len(repo.list_versions(session))
    summary = {
        "home": str(settings.home),
        "database": settings.public_dict()["database_url"],
        "dataset": str(data_dir),
        "version": version.label,
        "version_id": version.id,
        "val_mcc": result.metrics["val_mcc"],
        "evaluation_id": evaluation.id,
        "evaluation_mcc": evaluation.mcc,
        "replay_evaluation_id": replay.id,
        "replay_mcc": replay.mcc,
        "published": deployed.published,
        "serving": [str(p / CURRENT) for p in settings.publish_dirs],
        "versions_in_registry": n_versions,
    }
    log("\nNext: `roadwork versions`, `roadwork history`, `roadwork scheduler`, `roadwork dashboard`")
    return summary
