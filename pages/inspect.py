"""Inspect: an architecture's layers, parameter counts with their formulas, diagram and source."""

import inspect
import sys

import pandas as pd
import streamlit as st

from deeparch.errors import ConfigError, DeeparchError
from deeparch.figures import training as viz
from deeparch.figures.graph import graph_dot
from deeparch.introspection.convmath import conv_output_size
from deeparch.introspection.graph import summarize_graph
from deeparch.introspection.model_graph import collapse
from deeparch.introspection.table import summarize_arch
from deeparch.models import get_arch, list_archs
from deeparch.models.registry import compatible_datasets
from pages._shared import (
    config_form,
    show_errors,
    specs_of,
    typed_overrides,
)

ROW_PIXELS, MAX_TABLE_PIXELS = 35, 700  # show every row of a small model without scrolling
NUMBER_COLUMNS = {
    "params": st.column_config.NumberColumn("params", format="localized"),
    "mult_adds": st.column_config.NumberColumn("mult-adds", format="localized"),
}
TABLE_COLUMNS = ["name", "type", "output_shape", "params", "mult_adds", "formula", "part"]
# Three small cases: a 2x2 filter shrinks a 3x3 map to 2x2; zero padding keeps the size;
# stride 2 over 10 positions with a filter of 5 leaves 3 outputs.
CONV_EXAMPLES = {
    "3×3 input, 2×2 filter": {"size": 3, "kernel": 2, "stride": 1, "padding": 0, "dilation": 1},
    "zero padding keeps 5×5": {"size": 5, "kernel": 3, "stride": 1, "padding": 1, "dilation": 1},
    "stride 2: 10 → 3": {"size": 10, "kernel": 5, "stride": 2, "padding": 0, "dilation": 1},
}
CONV_FIELDS = {
    "size": (1, 32, 7),
    "kernel": (1, 11, 3),
    "stride": (1, 4, 1),
    "padding": (0, 5, 0),
    "dilation": (1, 4, 1),
}


def shape_text(shape: object) -> str:
    return "—" if not shape else "×".join(str(n) for n in shape)


def layer_detail(row: object) -> None:
    """Everything about one layer: shapes, the worked-out count, its receptive field and code."""
    detail = row.detail
    st.markdown(f"### `{row.name}` · {row.type}")
    st.code(f"{row.name.split('.')[-1]} = {detail.get('code', row.type)}", language="python")
    shapes = st.columns(4)
    shapes[0].metric("input shape", shape_text(detail.get("input_shape")))
    shapes[1].metric("output shape", shape_text(row.output_shape))
    shapes[2].metric("weight shape", shape_text(detail.get("weight_shape")))
    shapes[3].metric("bias shape", shape_text(detail.get("bias_shape")))
    st.markdown(f"**Parameters:** `{row.formula}`")
    if detail.get("formula_legend"):
        st.caption(detail["formula_legend"])
    others = {
        k: v for k, v in detail.get("parameter_shapes", {}).items() if k not in ("weight", "bias")
    }
    if others:
        st.write({name: shape_text(shape) for name, shape in others.items()})
    if detail.get("receptive_field"):
        field, jump = detail["receptive_field"], detail.get("jump") or []
        st.info(
            f"Receptive field {shape_text(field)}: one output position of this layer sees a "
            f"{shape_text(field)} window of the input; neighbouring outputs are "
            f"{shape_text(jump)} input positions apart."
        )
    st.caption(f"{row.mult_adds:,} mult-adds per sample · called {detail.get('calls', 0)} time(s)")


def conv_arithmetic() -> None:
    """Output size of a convolution from its five numbers, with the sliding window drawn."""
    st.write("Output = ⌊(input + 2·padding − dilation·(kernel−1) − 1) / stride⌋ + 1")
    for key, (_, _, default) in CONV_FIELDS.items():
        if f"conv_{key}" not in st.session_state:
            st.session_state[f"conv_{key}"] = default
    example_cols = st.columns(len(CONV_EXAMPLES))
    for column, (label, values) in zip(example_cols, CONV_EXAMPLES.items()):
        column.button(label, key=f"conv_example_{label}", on_click=_apply_example, args=(values,))
    inputs = st.columns(len(CONV_FIELDS))
    numbers = {
        key: column.number_input(key, low, high, step=1, key=f"conv_{key}")
        for column, (key, (low, high, _)) in zip(inputs, CONV_FIELDS.items())
    }
    out = conv_output_size(
        numbers["size"],
        numbers["kernel"],
        numbers["stride"],
        numbers["padding"],
        numbers["dilation"],
    )
    if out <= 0:
        span = numbers["dilation"] * (numbers["kernel"] - 1) + 1
        st.error(
            f"kernel {numbers['kernel']} with dilation {numbers['dilation']} spans {span} "
            "positions, "
            f"more than the padded input ({numbers['size']} + 2×{numbers['padding']}); "
            "lower the kernel or dilation, or add padding"
        )
        return
    st.success(f"output size: **{out} × {out}**")
    position_cols = st.columns(2)
    row = position_cols[0].slider(
        "output row", 0, max(out - 1, 1), 0, key="conv_row", disabled=out == 1
    )
    col = position_cols[1].slider(
        "output column", 0, max(out - 1, 1), 0, key="conv_col", disabled=out == 1
    )
    figure = viz.conv_window_figure(
        numbers["size"],
        numbers["kernel"],
        numbers["stride"],
        numbers["padding"],
        numbers["dilation"],
        (row, col),
    )
    st.plotly_chart(figure, key="conv_figure", config={"displayModeBar": False})


def _apply_example(values: dict) -> None:
    for key, value in values.items():
        st.session_state[f"conv_{key}"] = value
    st.session_state["conv_row"] = st.session_state["conv_col"] = 0


st.title("Inspect an architecture")
archs = list_archs()
if "inspect_arch" not in st.session_state:
    wanted = st.query_params.get("arch")
    st.session_state["inspect_arch"] = (
        wanted if wanted in archs else "cnn" if "cnn" in archs else archs[0]
    )
top = st.columns([2, 2, 3])
arch = top[0].selectbox("architecture", archs, key="inspect_arch")
spec = get_arch(arch)
datasets = compatible_datasets(spec)
# compatible_datasets lists the default dataset first
dataset = top[1].selectbox("dataset", datasets, key=f"inspect_dataset_{arch}")
top[2].caption(spec.description)

with st.expander("Hyperparameters", expanded=True):
    specs = specs_of(spec.config_cls)
    raw, slots = config_form(specs, f"inspect_{arch}", columns=3)
overrides, errors = typed_overrides(specs, raw)
table = None
if not errors:
    try:
        table = summarize_arch(arch, overrides, dataset=dataset)
    except ConfigError as error:
        errors = {error.field: error}
    except DeeparchError as error:
        st.error(str(error))
    except RuntimeError as error:  # a combination no check foresaw: say so, never a traceback
        st.error(f"{arch} cannot be built with these settings: {error}")
show_errors(errors, slots)

if table is not None:
    totals = st.columns(3)
    totals[0].metric("parameters", f"{table.total_params:,}")
    totals[1].metric("trainable", f"{table.trainable_params:,}")
    totals[2].metric("mult-adds per sample", f"{table.total_mult_adds:,}")
layers_tab, diagram_tab, code_tab, conv_tab = st.tabs(
    ["Layers", "Diagram", "Source code", "Convolution arithmetic"]
)
if table is not None:
    with layers_tab:
        st.caption("Click a row to open that layer.")
        frame = table.to_dataframe()[TABLE_COLUMNS]
        event = st.dataframe(
            frame,
            hide_index=True,
            on_select="rerun",
            selection_mode="single-row",
            key=f"inspect_table_{arch}",
            width="stretch",
            height=min(ROW_PIXELS * (len(frame) + 1) + 3, MAX_TABLE_PIXELS),
            column_config=NUMBER_COLUMNS,
        )
        if table.has_parts:
            subtotals = pd.DataFrame(
                [
                    {
                        "part": part,
                        "params": count,
                        "share": f"{count / max(table.total_params, 1):.1%}",
                    }
                    for part, count in table.subtotals.items()
                ]
            )
            st.markdown("**Subtotal per part**")
            st.dataframe(
                subtotals,
                hide_index=True,
                key=f"inspect_parts_{arch}",
                column_config=NUMBER_COLUMNS,
            )
        selected = event.selection.rows if event is not None else []
        if selected:
            layer_detail(table.rows[selected[0]])
    with diagram_tab:
        graph = summarize_graph(arch, overrides, dataset=dataset)
        if st.toggle(
            "collapse repeated blocks",
            key="inspect_collapse_blocks",
            help="Draw each repeated block (a ResNet block, an Inception module) as one box.",
            disabled=not graph.repeated_blocks,
        ):
            graph = collapse(graph, graph.repeated_blocks)
        if not graph.traced:
            st.warning(f"drawn in module order: {graph.reason}")
        for note in graph.notes:
            st.caption(note)
        st.caption("Shapes on the arrows include the batch dimension (1).")
        with st.container(key="inspect_diagram"):
            st.graphviz_chart(graph_dot(graph))
else:
    for tab in (layers_tab, diagram_tab):
        tab.info("Fix the hyperparameter marked above to see the layers.")
with code_tab:
    module = sys.modules[spec.builder.__module__]
    st.caption(f"`{module.__name__}`: the file that builds {arch}")
    st.code(inspect.getsource(module), language="python", line_numbers=True)
with conv_tab:
    conv_arithmetic()
