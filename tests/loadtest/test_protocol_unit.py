"""The protocol client's pieces, without a server: widget states from elements, chart points,
widget keys, and the report's statistics."""

import base64
import json
import statistics

import numpy as np
import pytest
from streamlit.proto.Element_pb2 import Element
from streamlit.proto.NumberInput_pb2 import NumberInput

from scripts.loadtest.protocol import plotly_points, user_key, widget_state_from_element
from scripts.loadtest.scenarios import stats


def number_input(data_type, value, set_value=True):
    element = Element()
    proto = element.number_input
    proto.id, proto.data_type, proto.default, proto.value = (
        "$$ID-ab12-train_cfg_x",
        data_type,
        1,
        value,
    )
    proto.set_value = set_value
    return element


def test_int_number_input_sends_an_int_value():
    state = widget_state_from_element(number_input(NumberInput.INT, 64.0))
    assert state.WhichOneof("value") == "int_value" and state.int_value == 64


def test_float_number_input_sends_a_double_value():
    state = widget_state_from_element(number_input(NumberInput.FLOAT, 0.001))
    assert state.WhichOneof("value") == "double_value" and state.double_value == 0.001


def test_a_number_input_the_server_did_not_set_sends_its_default():
    state = widget_state_from_element(number_input(NumberInput.INT, 64.0, set_value=False))
    assert state.int_value == 1


def test_selectbox_sends_the_option_as_a_string():
    element = Element()
    element.selectbox.id = "$$ID-cd34-train_arch"
    element.selectbox.options.extend(["cnn", "mlp", "rnn"])
    element.selectbox.default = 2
    assert widget_state_from_element(element).string_value == "rnn"
    element.selectbox.set_value, element.selectbox.raw_value = True, "mlp"
    assert widget_state_from_element(element).string_value == "mlp"


def test_toggle_and_text_input():
    element = Element()
    element.checkbox.id, element.checkbox.set_value, element.checkbox.value = "$$ID-1-t", True, True
    assert widget_state_from_element(element).bool_value is True
    element = Element()
    element.text_input.id, element.text_input.default = "$$ID-2-h", "500,200,100"
    assert widget_state_from_element(element).string_value == "500,200,100"


def test_buttons_hold_no_state():
    element = Element()
    element.button.id = "$$ID-3-train_start"
    assert widget_state_from_element(element) is None


@pytest.mark.parametrize(
    "widget_id, key",
    [("$$ID-81dad48af004-train_start", "train_start"), ("$$ID-1f5b-train_cfg_l1", "train_cfg_l1"),
     ("$$ID-9a-side_stop_job-2-6c83e3f4", "side_stop_job-2-6c83e3f4"), ("plain", "plain")],
)  # fmt: skip
def test_user_key(widget_id, key):
    assert user_key(widget_id) == key


def test_plotly_points_counts_base64_and_list_traces():
    xs = np.arange(1, 8, dtype="f8")
    spec = {
        "data": [
            {"x": {"dtype": "f8", "bdata": base64.b64encode(xs.tobytes()).decode()}},
            {"x": [1, 2, 3]},
            {"y": [1]},
        ]
    }
    assert plotly_points(json.dumps(spec)) == 7 + 3


@pytest.mark.parametrize("values", [[3.0], [5.0, 1.0], [4, 8, 1, 9, 2, 7, 3, 6, 5, 10, 11]])
def test_stats_match_statistics_and_numpy(values):
    result = stats([*values, None])
    assert result["n"] == len(values) and result["missing"] == 1
    assert result["median"] == pytest.approx(statistics.median(values))
    assert result["p90"] == pytest.approx(np.percentile(values, 90, method="inverted_cdf"))
    assert result["max"] == max(values)


def test_stats_of_nothing():
    assert stats([None, None]) == {"n": 0, "missing": 2}
