"""Runs named by what differs between them, as Compare's legend shows them."""

from deeparch.engine.config import TrainConfig
from deeparch.engine.run_names import common_description, differing_settings, run_names


def snap(job_id: str, **config) -> dict:
    arch = config.pop("arch", "mlp")
    dataset = config.pop("dataset", "mnist")
    values = TrainConfig(arch=arch, dataset=dataset, **config).to_dict()
    return {"id": job_id, "arch": arch, "dataset": dataset, "config": values}


def test_two_learning_rates_are_named_by_their_learning_rate():
    runs = [snap("job-aaaaaa", lr=0.01), snap("job-bbbbbb", lr=0.001)]
    assert differing_settings(runs) == ["lr"]
    assert run_names(runs) == ["lr 0.01", "lr 0.001"]
    assert common_description(runs) == "mlp on mnist"


def test_several_differences_are_all_named_in_settings_order():
    runs = [
        snap("a", lr=0.01, batch_size=32, arch_config={"hidden_sizes": (64, 32)}),
        snap("b", lr=0.1, batch_size=128, arch_config={"hidden_sizes": (16,)}),
    ]
    assert run_names(runs) == [
        "hidden_sizes 64,32 · lr 0.01 · batch_size 32",
        "hidden_sizes 16 · lr 0.1 · batch_size 128",
    ]


def test_an_architecture_s_default_counts_as_its_value():
    # The mlp's hidden_sizes default is 500,200,100: written out or left out, it is the same.
    runs = [snap("a", arch_config={"hidden_sizes": (500, 200, 100)}), snap("b", epochs=3)]
    assert differing_settings(runs) == ["epochs"]


def test_different_architectures_are_named_by_architecture_not_by_their_own_fields():
    runs = [snap("a"), snap("b", arch="cnn"), snap("c", arch_config={"hidden_sizes": (8,)})]
    assert run_names(runs) == [
        "mlp · hidden_sizes 500,200,100",
        "cnn",
        "mlp · hidden_sizes 8",
    ]
    assert common_description(runs) == "on mnist"


def test_same_settings_are_told_apart_by_id_and_loaded_ones_are_marked():
    runs = [snap("job-111111"), snap("job-222222"), snap("job-333333", lr=0.5)]
    names = run_names(runs, loaded=[False, True, False])
    assert names == ["lr 0.001 · 111111", "lr 0.001 · 222222 (loaded)", "lr 0.5"]
    assert run_names(runs[:1]) == ["mlp on mnist"]
    assert run_names(runs[:1], loaded=[True]) == ["mlp on mnist (loaded)"]


def test_long_differences_are_cut_after_three():
    runs = [snap("a", lr=0.1, batch_size=16, epochs=5, seed=1), snap("b")]
    assert run_names(runs)[0] == "lr 0.1 · batch_size 16 · epochs 5 · +1 more"
