"""The Train form shows a field only where the chosen optimizer or schedule uses it."""

import pytest

from deeparch.engine.config import unused_fields
from deeparch.engine.optim import OPTIMIZERS
from deeparch.engine.schedule import LR_SCHEDULES
from tests.app.test_pages import open_page


def shown_fields(at) -> set[str]:
    return {w.key.removeprefix("train_cfg_") for w in at.main.get("number_input") if w.key}


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_momentum_is_in_the_form_only_for_the_optimizers_that_use_it(optimizer):
    at = open_page("pages/train.py")
    at.selectbox(key="train_cfg_optimizer").set_value(optimizer).run()
    assert not at.exception, [e.value for e in at.exception]
    used = "momentum" not in unused_fields({"optimizer": optimizer})
    assert ("momentum" in shown_fields(at)) == used
    assert "weight_decay" in shown_fields(at)  # every optimizer applies it


@pytest.mark.parametrize("schedule", LR_SCHEDULES)
def test_the_step_schedules_fields_are_in_the_form_only_with_it(schedule):
    at = open_page("pages/train.py")
    at.selectbox(key="train_cfg_lr_schedule").set_value(schedule).run()
    step_fields = {"lr_gamma", "lr_step_epochs"}
    assert (step_fields <= shown_fields(at)) == (schedule == "step")
    assert not step_fields & shown_fields(at) or schedule == "step"


def test_momentum_chosen_for_sgd_waits_while_adam_trains_and_comes_back():
    at = open_page("pages/train.py")
    at.selectbox(key="train_cfg_optimizer").set_value("sgd").run()
    at.number_input(key="train_cfg_momentum").set_value(0.5).run()
    at.selectbox(key="train_cfg_optimizer").set_value("adam").run()
    # Hidden, the value is not sent with adam's run: TrainConfig would refuse it there.
    assert not at.error, [e.value for e in at.error]
    assert "momentum" not in at.code[0].value  # the share link
    assert not at.button(key="train_start").disabled
    at.selectbox(key="train_cfg_optimizer").set_value("sgd").run()
    assert at.number_input(key="train_cfg_momentum").value == 0.5
    assert "momentum=0.5" in at.code[0].value
