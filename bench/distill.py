"""Benchmark: a teacher against its distilled stock-architecture student (same run, same replay).

    python bench/distill.py [--rows 400] [--teacher-epochs 8] [--epochs 2] [--copies 1] [--replay 300]

In a throwaway home: synthesise a dataset, train and register the tiny multi-view teacher (calibrated on a
replay, as `roadwork train` does), distil it with `distill_version` (the student is a tiny random-init DINOv2
at the validators' 224 px, since no Hub is reachable here; `--pretrained` takes a Hub id where one is), and
print for both: replay MCC and expected validator score on the very same replay, parameters and weight bytes,
and CPU latency per image (preprocessing included, as served) at batch 1 and batch 32 on 224 px challenges.
Latency: medians of repeats, wall time, on a machine others may share.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def latency_ms(predictor, images, batch: int, repeats: int) -> float:  # noqa: ANN001
    """Median milliseconds per image of `predictor.raw_probs` on batches of `batch` images."""
    chunk = images[:batch]
    predictor.raw_probs(chunk)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.raw_probs(chunk, batch_size=batch)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times) / len(chunk)


def size_of(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).glob("*.safetensors"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--teacher-epochs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--replay", type=int, default=300)
    parser.add_argument("--lr", type=float, default=None, help="distill.lr (default: the setting's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretrained", default=None)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="roadwork-bench-distill-"))
    os.environ["ROADWORK_HOME"] = str(home)
    os.environ["ROADWORK_DISTILL__RENDER_COPIES"] = str(args.copies)
    if args.lr is not None:
        os.environ["ROADWORK_DISTILL__LR"] = str(args.lr)

    import torch

    from roadwork.db.engine import make_engine, migrate
    from roadwork.platform.distillation import comparison_rows, distill_version
    from roadwork.platform.evaluation.challenge import build_replay, decode_jpeg
    from roadwork.platform.evaluation.validation import data_splits
    from roadwork.platform.registry.service import checkout
    from roadwork.platform.training import train_and_register
    from roadwork.settings import load_settings
    from roadwork.trainer.config import TrainConfig
    from roadwork.trainer.data.synth import synthesize
    from roadwork.trainer.eval.predict import Predictor

    settings = load_settings()
    engine = make_engine(settings.db_url)
    migrate(engine)
    synthesize(settings.datasets_dir / "synth", args.rows, seed=args.seed)
    quiet = lambda _: None  # noqa: E731
    base = TrainConfig()
    config = base.model_copy(update={"optim": base.optim.model_copy(update={"epochs": args.teacher_epochs})})
    t0 = time.perf_counter()
    teacher, _ = train_and_register(engine, settings, config, show_progress=False, log=quiet, calibration_replay=200)
    teacher_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    outcome = distill_version(engine, settings, teacher.id, "dinov2", args.epochs, pretrained=args.pretrained,
                              replay_n=args.replay, replay_seed=args.seed, show_progress=False, log=quiet)
    distill_s = time.perf_counter() - t0

    teacher_dir, student_dir = checkout(settings, teacher), checkout(settings, outcome.student)
    pt, ps = Predictor.load(teacher_dir), Predictor.load(student_dir)
    val = data_splits(settings, config, settings.datasets_dir / "synth").val
    images = [decode_jpeg(c.jpeg) for c in build_replay(val, 32, seed=args.seed + 100)]

    print(f"# teacher vs distilled student, {args.rows} synthetic rows, {time.strftime('%Y-%m-%d')}")
    print(f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} torch threads")
    print(f"- teacher: tiny multi-view preset, {args.teacher_epochs} epochs ({teacher_s:.0f} s incl. calibration); "
          f"student: {'pretrained ' + args.pretrained if args.pretrained else 'tiny random-init'} DINOv2 at "
          f"{outcome.result.config['image_size']} px, {args.epochs} epochs, lr {outcome.result.config['lr']}, {args.copies} render(s) per image, "
          f"{outcome.result.n_train} training images ({distill_s:.0f} s incl. evaluations); "
          f"baked cut {outcome.result.threshold:.4f}")
    print(f"{'evaluation':<22}{'n':>6}{'teacher MCC':>13}{'student MCC':>13}{'teacher E[score]':>18}"
          f"{'student E[score]':>18}")

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    for r in comparison_rows(outcome):
        print(f"{r['evaluation']:<22}{r['n']:>6}{fmt(r['teacher_mcc']):>13}{fmt(r['student_mcc']):>13}"
              f"{fmt(r['teacher_expected_score']):>18}{fmt(r['student_expected_score']):>18}")
    params_t = sum(p.numel() for p in pt.model.parameters())
    params_s = sum(p.numel() for p in ps.model.parameters())
    print(f"{'model':<10}{'params':>12}{'weights MB':>12}{'ms/img b=1':>13}{'ms/img b=32':>13}")
    for name, pred, params, path in (("teacher", pt, params_t, teacher_dir), ("student", ps, params_s, student_dir)):
        b1 = latency_ms(pred, images, 1, 20)
        b32 = latency_ms(pred, images, 32, 5)
        print(f"{name:<10}{params:>12,}{size_of(path) / 1e6:>12.2f}{b1:>13.2f}{b32:>13.2f}")


if __name__ == "__main__":
    main()
