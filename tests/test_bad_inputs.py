"""The bad-input table: every input a new user gets wrong is answered with one line naming the file, column,
row or key, exit code 2, and no traceback. Cases that need Ray (unreachable cluster, ends of a search) are in
test_endings; none here starts Ray."""

import pytest
import torch

from core.integrity import write_manifest
from core.train import main as train_main
from search.run import main as search_main
from search.serving.recommend import main as recommend_main
from tests.cases import DATA_CASES, make
from tests.conftest import write_space


class RunsCode:
    """A pickle that would run a command when loaded (the kind of model.pt that must be refused)."""

    def __reduce__(self):
        return (print, ("this ran while loading",))


SETTING_CASES = [
    (["--set", "lr=1e38"], "lr: expected a value > 0.0 and <= 10.0, got 1e+38"),
    (["--set", "lr=.inf"], "lr: expected a finite number"),
    (["--set", "weight_decay=-1"], "weight_decay: expected a value >= 0.0 and <= 10.0"),
    (["--set", "hiden_dim=3"], "hiden_dim: unknown setting (did you mean hidden_dim?"),
    (["--set", "threads=0"], "threads: expected auto or a positive integer, got 0"),
    (["--set", "markov_blend=-0.5"], "markov_blend: expected auto or a number >= 0 (0: off), got -0.5"),
    (["--set", "time_format=dd/mm/yyyy"], "time_format: expected a strftime pattern"),
    (["--set", "lr"], "--set 'lr': expected key=value"),
]


def one_clear_line(err: str, code: int, expected: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.startswith("error: ")]
    assert code == 2 and len(lines) == 1, err
    assert "Traceback" not in err and expected in err, err


@pytest.mark.parametrize("case, expected", DATA_CASES, ids=[case for case, _ in DATA_CASES])
def test_bad_data_is_one_line_naming_file_column_and_row(tmp_path, capsys, case, expected):
    code = train_main(make(tmp_path, case) + ["--quiet"])
    one_clear_line(capsys.readouterr().err, code, expected)


@pytest.mark.parametrize("arguments, expected", SETTING_CASES, ids=[a[-1] for a, _ in SETTING_CASES])
def test_bad_settings_are_one_line_naming_the_key(capsys, arguments, expected):
    code = train_main(arguments + ["--quiet"])
    one_clear_line(capsys.readouterr().err, code, expected)


def refused(capsys, main, arguments: list[str], expected: str) -> None:
    code = main(arguments)
    one_clear_line(capsys.readouterr().err, code, expected)


@pytest.mark.ray
def test_bad_search_inputs_are_refused_before_ray_starts(tmp_path, capsys):
    space = write_space(tmp_path, "space:\n  lrr: {loguniform: [0.001, 0.01]}\n")
    tiny = ["--storage", str(tmp_path), "--set", "synthetic_customers=60", "--no-dashboard"]
    refused(capsys, search_main, ["--space", space, *tiny], "space.lrr: not a setting (did you mean lr?")
    refused(capsys, search_main, ["--max-epochs", "1", *tiny], "--grace-period")
    refused(capsys, search_main, ["--resume", "--name", "gone", *tiny], "no search to resume")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "search.yaml").write_text("status: running\n")
    refused(capsys, search_main, ["--name", "taken", *tiny], "--resume --name taken")
    refused(capsys, search_main, ["--resume", "--name", "taken", "--no-keep-base", *tiny],
            "--no-keep-base (they are in")


def test_a_model_that_would_run_code_is_refused_without_advice_to_load_it_unsafely(tmp_path, capsys):
    torch.save({"format_version": 1, "trap": RunsCode()}, tmp_path / "model.pt")
    write_manifest(tmp_path, ["model.pt"])  # even sealed by its maker, it is never unpickled
    code = recommend_main([str(tmp_path), "--customer", "1"])
    captured = capsys.readouterr()
    one_clear_line(captured.err, code, "loading those could run code")
    assert "weights_only" not in captured.err and "this ran while loading" not in captured.out
    (tmp_path / "model.pt").write_bytes(b"\x80\x02junk")
    write_manifest(tmp_path, ["model.pt"])
    refused(capsys, recommend_main, [str(tmp_path), "--customer", "1"], "is not a model saved by this project")


def test_resume_commands_carry_storage_and_address_and_survive_the_shell(tmp_path):
    from search.plan import SearchPlan, Status, load_plan

    storage = tmp_path / "runs dir"
    plan = SearchPlan(name="my search", storage=str(storage), folder=str(storage / "my search"), samples=2,
                      cpus_per_trial=1.0, gpus_per_trial=0.0, concurrency=1, config={}, search={},
                      status=Status.INTERRUPTED, created="2026-11-30", address="10.0.0.5:6379").save()
    command = load_plan(plan.folder).resume_command()
    assert command == (f"python -m search.run --resume --name 'my search' --storage '{tmp_path}/runs dir' "
                       "--address 10.0.0.5:6379")


def test_a_one_seed_retrain_reports_no_spread():
    from search.reports import retrain_report

    scores = {"hr@5": 0.5, "mrr@5": 0.4, "ndcg@5": 0.45}
    metrics = {"experiment": "x", "seeds": [0], "model": {"mean": scores, "std": dict.fromkeys(scores, 0.0)},
               "markov": scores, "most_popular": scores, "data_stats": {}, "epochs": 3, "exclude_seen": False,
               "data": "synthetic", "data_fingerprint": "f", "retrained": "now", "retrain_seconds": 1.0}
    report = retrain_report(metrics, (5,))
    assert "± 0.0000" not in report and "| 0.4500 |" in report and "One seed: no spread" in report


@pytest.fixture(scope="module")
def final_folder(tmp_path_factory):
    """A saved model as retrain leaves it: model.pt, metrics.json, report.md and their manifest."""
    from core.artifact import save_model
    from core.config import build_config
    from core.data import prepare_data
    from core.fit import fit
    from tests.conftest import TINY

    config = build_config(dict(TINY, epochs=1))
    data = prepare_data(config)
    folder = tmp_path_factory.mktemp("final")
    save_model(folder, fit(config, data).model, config, data)
    (folder / "metrics.json").write_text('{"model": {"mean": {"ndcg@5": 0.25}}}')
    (folder / "report.md").write_text("# report\n")
    write_manifest(folder, ["model.pt", "metrics.json", "report.md"])
    return folder


def export_args(folder, tmp_path, out: str, *extra: str) -> list[str]:
    return [str(folder), "--all", "--out", out, *extra]


def test_export_out_that_is_a_folder_or_lies_under_a_file_is_one_line(final_folder, tmp_path, capsys):
    (tmp_path / "recs.csv").mkdir()
    refused(capsys, recommend_main, export_args(final_folder, tmp_path, str(tmp_path / "recs.csv")),
            "recs.csv is a folder; give a file name")
    (tmp_path / "plain").write_text("a file")
    refused(capsys, recommend_main, export_args(final_folder, tmp_path, str(tmp_path / "plain" / "recs.csv")),
            "plain is a file, not a folder")


def test_a_twenty_digit_customer_id_is_unknown_in_one_line(final_folder, tmp_path, capsys):
    (tmp_path / "who.txt").write_text("customer\n12345678901234567890\n")
    refused(capsys, recommend_main, [str(final_folder), "--customers", str(tmp_path / "who.txt"),
                                     "--out", str(tmp_path / "recs.csv")], "1 unknown customer: 12345678901234567890")


def test_a_huge_k_is_capped_at_the_catalogue_so_memory_does_not_grow_with_k(final_folder, tmp_path):
    import tracemalloc

    from core.artifact import load_model
    from core.export import recommend_all

    saved = load_model(final_folder)
    first = [str(c) for c in saved.user_ids[:2]]
    peaks = {}
    for k in (len(saved.catalog), 10**6):  # uncapped, 10^6 ranks would allocate 2 x 10^6 ids, scores and rows
        tracemalloc.start()
        frame = recommend_all(saved, customers=first, k=k, include_seen=True)
        peaks[k] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert frame.groupby("customer").size().tolist() == [len(saved.catalog)] * 2
    assert peaks[10**6] < peaks[len(saved.catalog)] + 1_000_000, peaks
    (tmp_path / "who.txt").write_text("\n".join(first))
    assert recommend_main([str(final_folder), "--customers", str(tmp_path / "who.txt"), "--out",
                           str(tmp_path / "recs.csv"), "--k", "1000000000"]) == 0


def test_a_model_changed_in_place_is_refused_naming_the_file(final_folder, tmp_path, capsys):
    import shutil

    for name, change in (("model.pt", lambda b: b[:-100] + bytes(100)), ("metrics.json", lambda b: b + b" "),
                         ("report.md", lambda b: b"# another report\n")):
        copy = tmp_path / name.replace(".", "_")
        shutil.copytree(final_folder, copy)
        (copy / name).write_bytes(change((copy / name).read_bytes()))
        refused(capsys, recommend_main, [str(copy), "--customer", "1"],
                f"{copy / name} changed after it was saved")
    unsealed = tmp_path / "unsealed"
    shutil.copytree(final_folder, unsealed)
    (unsealed / "manifest.sha256").unlink()
    refused(capsys, recommend_main, [str(unsealed), "--customer", "1"], "python -m core.integrity")
    from core.artifact import load_model
    from core.integrity import main as seal_main

    assert seal_main([str(unsealed)]) == 0  # the owner re-seals a model they trust
    assert len(load_model(unsealed).catalog) == len(load_model(final_folder).catalog)


def test_non_finite_weights_are_refused_at_load_naming_the_tensor(final_folder, tmp_path, capsys):
    import shutil

    copy = tmp_path / "nan"
    shutil.copytree(final_folder, copy)
    payload = torch.load(copy / "model.pt", weights_only=True)
    payload["state_dict"]["output.bias"][3] = float("nan")
    torch.save(payload, copy / "model.pt")
    write_manifest(copy, ["model.pt", "metrics.json", "report.md"])  # sealed, so only the weights are wrong
    refused(capsys, recommend_main, [str(copy), "--customer", "1"], "weight output.bias holds NaN or infinite")
