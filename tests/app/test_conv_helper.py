"""Inspect's convolution-arithmetic tab under AppTest: messages, modes and the server-drawn path."""

import json

import pytest

from deeparch.figures.conv_layer import CHOSEN, LINKED
from tests.app.test_pages import open_page


def conv_tab():
    # Only the open tab runs: the link opens this one (?inspect_view=...).
    return open_page("pages/inspect.py", {"arch": "mlp", "inspect_view": "Convolution arithmetic"})


def results(at) -> list[str]:
    return [s.value for s in at.success]


def figure(at) -> dict:
    chart = next(c for c in at.get("plotly_chart") if c.proto.id.endswith("-conv_figure"))
    return json.loads(chart.proto.spec)


def components(at) -> list:
    return [e for e in at.main if getattr(e, "type", "") == "bidi_component"]


@pytest.mark.parametrize(
    "field,value,allowed",
    [
        ("kernel", 0, "kernel=0 is not allowed: a whole number from 1 to 11"),
        ("size", 40, "size=40 is not allowed: a whole number from 1 to 32"),
        ("stride", -1, "stride=-1 is not allowed: a whole number from 1 to 6"),
    ],
)
def test_an_out_of_range_number_shows_its_message_and_no_stale_result(field, value, allowed):
    at = conv_tab()
    assert results(at) == ["output size: **5 × 5**"]  # 7, kernel 3
    assert components(at)  # the browser draws the cells by default
    at.number_input(key=f"conv_{field}").set_value(value).run()
    assert not at.exception
    assert [e.value for e in at.error] == [allowed]
    assert results(at) == [] and not components(at)  # no result and no cells left over
    assert not any(c.proto.id.endswith("-conv_figure") for c in at.get("plotly_chart"))


def test_a_kernel_wider_than_the_padded_input_says_so():
    at = conv_tab()
    at.button(key="conv_example_stride 2: 10 → 3").click().run()
    assert results(at) == ["output size: **3 × 3**"]
    at.number_input(key="conv_kernel").set_value(11).run()
    (message,) = [e.value for e in at.error]
    assert message.startswith("kernel=11 is not allowed: a window that fits the padded input")
    assert "spans 11 positions" in message and not results(at)


def test_transposed_upsampler_example_goes_from_2_to_12():
    at = conv_tab()
    at.button(key="conv_example_upsampler 2 → 12").click().run()
    assert at.radio(key="conv_mode").value == "transposed convolution"
    assert results(at) == ["output size: **12 × 12**"]
    assert at.number_input(key="conv_output_padding").value == 0  # shown for this mode only
    assert any("each input cell adds the kernel" in m.value for m in at.markdown)
    at.number_input(key="conv_output_padding").set_value(1).run()  # stride 4 allows 0 to 3
    assert results(at) == ["output size: **13 × 13**"]
    at.number_input(key="conv_output_padding").set_value(4).run()
    assert at.error[0].value.startswith("output\\_padding=4 is not allowed: less than the stride")


def test_causal_one_dimensional_example_keeps_the_length():
    at = conv_tab()
    at.button(key="conv_example_causal 1-D, dilation 2").click().run()
    assert at.radio(key="conv_dims").value == "1-D" and at.checkbox(key="conv_causal").value
    assert at.number_input(key="conv_padding").disabled  # causal padding sets it
    assert results(at) == ["output size: **12**"]
    at.checkbox(key="conv_causal").uncheck().run()  # padding 0 on both sides: 12 - 4 = 8
    assert results(at) == ["output size: **8**"]


def test_pooling_mode_checks_pytorchs_padding_rule_and_ceil_mode():
    at = conv_tab()
    at.button(key="conv_example_2×2 max pooling").click().run()
    assert results(at) == ["output size: **4 × 4**"]
    assert at.number_input(key="conv_dilation").disabled
    at.number_input(key="conv_size").set_value(9).run()
    assert results(at) == ["output size: **4 × 4**"]
    at.checkbox(key="conv_ceil_mode").check().run()
    assert results(at) == ["output size: **5 × 5**"]
    at.number_input(key="conv_padding").set_value(2).run()
    assert at.error[0].value.startswith("padding=2 is not allowed: at most half the kernel (1)")


def test_server_drawn_window_follows_the_output_sliders():
    at = conv_tab()
    at.toggle(key="conv_instant").set_value(False).run()
    assert not components(at)
    shapes = figure(at)["layout"]["shapes"]
    assert len(shapes) == 7 * 7 + 5 * 5
    assert [s["fillcolor"] for s in shapes].count(LINKED) == 9  # the 3x3 window of output (0, 0)
    at.slider(key="conv_row").set_value(4).run()
    at.slider(key="conv_col").set_value(2).run()
    linked = [s for s in figure(at)["layout"]["shapes"][:49] if s["fillcolor"] == LINKED]
    assert {(round(s["x0"]), round(-s["y1"])) for s in linked} == {
        (c, r) for r in (4, 5, 6) for c in (2, 3, 4)
    }


def test_server_drawn_transposed_window_marks_what_one_input_writes():
    at = conv_tab()
    at.toggle(key="conv_instant").set_value(False).run()
    at.button(key="conv_example_upsampler 2 → 12").click().run()
    assert at.slider(key="conv_row").label == "input row"
    at.slider(key="conv_row").set_value(1).run()
    shapes = figure(at)["layout"]["shapes"]
    assert [s["fillcolor"] for s in shapes[:4]].count(CHOSEN) == 1  # the 2x2 input
    written = [s for s in shapes[4:] if s["fillcolor"] == LINKED]
    assert len(written) == 64  # an 8x8 kernel's worth: rows 4-11, columns 0-7
    offset = 2 + 2  # the output grid starts two cells right of the input grid
    assert {round(-s["y1"]) for s in written} == set(range(4, 12))
    assert {round(s["x0"]) - offset for s in written} == set(range(0, 8))
