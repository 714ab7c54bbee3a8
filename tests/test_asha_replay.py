"""bench/asha_replay.py: Ray's ASHA replayed on complete learning curves."""
import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "asha_replay.py"
spec = importlib.util.spec_from_file_location("asha_replay", SCRIPT)
asha_replay = importlib.util.module_from_spec(spec)
spec.loader.exec_module(asha_replay)


def write_trial(folder: Path, name: str, started: float, values: list[float], seconds: float = 1.0) -> None:
    (folder / name).mkdir(parents=True)
    rows = [{"training_iteration": i, "val_ndcg@5": v, "time_this_iter_s": seconds, "timestamp": started + i * seconds}
            for i, v in enumerate(values, 1)]
    (folder / name / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_a_slow_starter_is_stopped_by_an_early_rung_and_kept_by_a_late_one(tmp_path):
    write_trial(tmp_path, "fast", 0, [0.30, 0.31, 0.32, 0.32])
    write_trial(tmp_path, "slow", 10, [0.10, 0.20, 0.35, 0.40])  # the winner, behind at epoch 1
    trials = asha_replay.curves(tmp_path, "val_ndcg@5")
    early = asha_replay.replay(trials, "val_ndcg@5", grace=1, factor=2, max_t=4, concurrency=1)
    assert (early["trial_epochs"], early["best"], early["kept_best"]) == (5, 0.32, False)
    late = asha_replay.replay(trials, "val_ndcg@5", grace=4, factor=2, max_t=4, concurrency=1)
    assert (late["trial_epochs"], late["best"], late["kept_best"]) == (8, 0.40, True)
    assert late["trial_seconds"] == 8.0 and late["wall_seconds"] == 8.0


def test_milestones_in_seconds_judge_a_slow_trial_after_fewer_epochs(tmp_path):
    write_trial(tmp_path, "quick", 0, [0.30, 0.31, 0.32, 0.32])
    write_trial(tmp_path, "slow", 10, [0.10, 0.20, 0.35, 0.40], seconds=3.0)  # 3 s per epoch
    trials = asha_replay.curves(tmp_path, "val_ndcg@5")
    by_epoch = asha_replay.replay(trials, "val_ndcg@5", grace=3, factor=2, max_t=4, concurrency=1)
    assert (by_epoch["trial_epochs"], by_epoch["trial_seconds"], by_epoch["kept_best"]) == (8, 16.0, True)
    by_seconds = asha_replay.replay(trials, "val_ndcg@5", grace=3.0, factor=2, max_t=12.0, concurrency=1,
                                    time_attr="time_total_s")  # slow's first rung comes after its first epoch
    assert (by_seconds["trial_epochs"], by_seconds["trial_seconds"], by_seconds["best"]) == (5, 7.0, 0.32)


def test_jittered_orders_scale_only_the_seconds_within_the_spread_and_repeat_by_seed(tmp_path):
    write_trial(tmp_path, "a", 0, [0.1, 0.2, 0.3], seconds=10.0)
    write_trial(tmp_path, "b", 5, [0.3, 0.2], seconds=10.0)
    trials = asha_replay.curves(tmp_path, "val_ndcg@5")
    first, again, other = (asha_replay.jittered(trials, seed) for seed in (1, 1, 2))
    for version in (first, other):
        for frame, original in zip(version, trials, strict=True):
            assert frame["val_ndcg@5"].tolist() == original["val_ndcg@5"].tolist()
            assert ((frame["time_this_iter_s"] >= 8.1) & (frame["time_this_iter_s"] <= 12.1)).all()
    assert [f["time_this_iter_s"].tolist() for f in first] == [f["time_this_iter_s"].tolist() for f in again]
    assert [f["time_this_iter_s"].tolist() for f in first] != [f["time_this_iter_s"].tolist() for f in other]
