"""torchvision classifiers built without weights, against the counts torchvision publishes."""

import pytest

from deeparch.errors import ConfigError
from deeparch.introspection.table import summarize_torchvision, torchvision_published_params


def test_googlenet_without_weights_keeps_its_auxiliary_classifiers_and_says_so():
    table = summarize_torchvision("googlenet")
    assert table.total_params == 13_004_888
    assert torchvision_published_params("googlenet") == 6_624_904
    aux = sum(row.params for row in table.rows if row.part in ("aux1", "aux2"))
    assert table.total_params - aux == 6_624_904  # the published count leaves out aux1 and aux2
    (note,) = table.notes
    assert "aux1, aux2 (6,379,984 parameters, used only in training)" in note
    assert "13,004,888" in note and "6,624,904" in note


@pytest.mark.parametrize("name", ["resnet18", "alexnet", "inception_v3"])
def test_a_model_built_as_published_has_no_note(name):
    table = summarize_torchvision(name)
    assert table.total_params == torchvision_published_params(name)
    assert table.notes == []


def test_a_model_above_the_cap_is_refused_before_it_is_built():
    with pytest.raises(ConfigError) as refused:
        summarize_torchvision("vit_h_14", max_params=200_000_000)
    assert str(refused.value) == (
        "torchvision model='vit_h_14' is not allowed: a model of at most 200,000,000 parameters "
        "on this server (vit_h_14 has 633,470,440)"
    )
