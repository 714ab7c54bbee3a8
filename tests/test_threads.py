"""One-process work sets torch's threads from the `threads` setting; auto leaves busy cores alone."""
import torch

from core.config import build_config
from core.threads import apply_threads, auto_threads, usable_cores
from core.train import main as train_main
from tests.conftest import TINY, settings


def test_auto_takes_the_usable_cores_less_the_load():
    assert auto_threads(cores=8, load=3.2) == 5
    assert auto_threads(cores=2, load=7.5) == 1  # a busy machine: one thread, never zero
    assert auto_threads(cores=4, load=0.0) == 4
    assert 1 <= auto_threads() <= usable_cores()


def test_the_setting_reaches_torch_in_one_config_training(capsys):
    before = torch.get_num_threads()
    try:
        assert apply_threads(build_config({"threads": 1})) == 1 and torch.get_num_threads() == 1
        torch.set_num_threads(before)
        assert train_main(settings(dict(TINY, epochs=1, threads=1)) + ["--quiet"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
