"""Inspect: an architecture's layers, parameter counts with their formulas, diagram and source."""

import inspect
import sys

import streamlit as st

from deeparch import share
from deeparch.data import dataset_label
from deeparch.errors import ConfigError, DeeparchError
from deeparch.figures.conv_layer import layer_figure
from deeparch.figures.graph import graph_dot
from deeparch.figures.text import code_span, escape_markdown
from deeparch.introspection.convmath import LAYER_BOUNDS, LAYER_MODES, layer_axis
from deeparch.introspection.model_graph import collapse
from deeparch.introspection.shared import shared_graph, shared_table
from deeparch.introspection.table import (
    TORCHVISION_PREFIX,
    LayerTable,
    summarize_torchvision,
    torchvision_model_names,
    torchvision_module,
)
from deeparch.models import get_arch, list_archs
from deeparch.models.registry import compatible_datasets
from pages._components import conv_window, instant_toggle
from pages._shared import (
    config_form,
    keep,
    seed_values,
    show_errors,
    specs_of,
    typed_overrides,
    write_link,
)
from pages._train_views import freeze_picker

SOURCES = ("deeparch", "torchvision")
VIEWS = ("Layers", "Diagram", "Source code", "Convolution arithmetic")
VIEW_KEY = "inspect_view"  # the open tab, also the address's parameter (?inspect_view=Diagram)
# A torchvision model is built in the server's memory; the largest (vit_h_14, regnet_y_128gf:
# over 600 million parameters, 2.5 GB of float32) would crowd out a class's training jobs.
TORCHVISION_MAX_PARAMS = 200_000_000
SUMMARIES_KEPT = 128  # layer tables kept per server: a few MB of rows, shared by every session
ROW_PIXELS, MAX_TABLE_PIXELS = 35, 700  # show every row of a small model without scrolling
NUMBER_COLUMNS = {
    "params": st.column_config.NumberColumn("params", format="localized"),
    "trainable": st.column_config.NumberColumn("trainable", format="localized"),
    "mult_adds": st.column_config.NumberColumn("mult-adds", format="localized"),
}
TABLE_COLUMNS = ["name", "type", "output_shape", "params", "mult_adds", "formula", "part"]
# Small cases to start from: a 2x2 filter shrinks a 3x3 map to 2x2; zero padding keeps the size;
# stride 2 over 10 positions with a filter of 5 leaves 3 outputs; a transposed convolution as a
# learnable upsampler (DCGAN's generator, FCN's upsampling); WaveNet's causal dilated convolution;
# the 2x2 max pooling of VGG and LeNet-style nets.
CONV_DEFAULTS = {
    "dims": "2-D", "mode": "convolution", "size": 7, "kernel": 3, "stride": 1, "padding": 0,
    "dilation": 1, "output_padding": 0, "causal": False, "ceil_mode": False,
}  # fmt: skip
CONV_EXAMPLES = {
    "3×3 input, 2×2 filter": {"size": 3, "kernel": 2},
    "zero padding keeps 5×5": {"size": 5, "kernel": 3, "padding": 1},
    "stride 2: 10 → 3": {"size": 10, "kernel": 5, "stride": 2},
    "upsampler 2 → 12": {"mode": "transposed convolution", "size": 2, "kernel": 8, "stride": 4},
    "causal 1-D, dilation 2": {
        "dims": "1-D", "size": 12, "kernel": 3, "dilation": 2, "causal": True,
    },
    "2×2 max pooling": {"mode": "pooling", "size": 8, "kernel": 2, "stride": 2},
}  # fmt: skip
CONV_NUMBERS = ("size", "kernel", "stride", "padding", "dilation", "output_padding")
CONV_FORMULAS = {
    "convolution": "output = ⌊(input + 2·padding − dilation·(kernel − 1) − 1) / stride⌋ + 1",
    "causal": "left padding = dilation·(kernel − 1), none on the right: "
    "output = ⌊(input − 1) / stride⌋ + 1, and output t reads inputs t and earlier only",
    "transposed convolution": "output = (input − 1)·stride − 2·padding + dilation·(kernel − 1) "
    "+ output_padding + 1: each input cell adds the kernel times its value into the output, "
    "stride cells apart; padding crops the output",
    "pooling": "output = ⌊(input + 2·padding − kernel) / stride⌋ + 1 (⌈…⌉ in ceil mode); PyTorch's "
    "stride defaults to the kernel",
}


def shape_text(shape: object) -> str:
    return "—" if not shape else "×".join(str(n) for n in shape)


# The counts and subtotals are Markdown, not st.metric or st.dataframe: Markdown's browser code
# is in the script every Streamlit page loads first, so a fresh tab paints them with the title,
# where a metric waited for its own script and was drawn with the layer table (README: Waiting
# for a page).
def counts_text(table: LayerTable) -> str:
    """The model's totals on one line, numbers first, as Home's cards write them."""
    return (
        f"**{table.total_params:,}** parameters · **{table.trainable_params:,}** trainable · "
        f"**{table.total_mult_adds:,}** mult-adds per sample"
    )


def subtotals_text(table: LayerTable) -> str:
    """Parameters per part as a Markdown table: part, count, share of the total."""
    total = max(table.total_params, 1)
    lines = ["| part | params | share |", "|---|--:|--:|"]
    lines += [
        f"| {escape_markdown(part)} | {count:,} | {count / total:.1%} |"
        for part, count in table.subtotals.items()
    ]
    return "\n".join(lines)


def layer_detail(row: object) -> None:
    """Everything about one layer: shapes, the worked-out count, its receptive field and code."""
    detail = row.detail
    st.markdown(f"### {code_span(row.name)} · {escape_markdown(row.type)}")
    st.code(f"{row.name.split('.')[-1]} = {detail.get('code', row.type)}", language="python")
    shapes = st.columns(4)
    shapes[0].metric("input shape", shape_text(detail.get("input_shape")))
    shapes[1].metric("output shape", shape_text(row.output_shape))
    shapes[2].metric("weight shape", shape_text(detail.get("weight_shape")))
    shapes[3].metric("bias shape", shape_text(detail.get("bias_shape")))
    st.markdown(f"**Parameters:** {code_span(row.formula)}")
    if detail.get("formula_legend"):
        st.caption(escape_markdown(detail["formula_legend"]))
    others = {
        k: v for k, v in detail.get("parameter_shapes", {}).items() if k not in ("weight", "bias")
    }
    if others:
        st.write({name: shape_text(shape) for name, shape in others.items()})
    if detail.get("receptive_field"):
        field, jump = detail["receptive_field"], detail.get("jump") or []
        st.info(
            f"Receptive field {escape_markdown(shape_text(field))}: one output position of this "
            f"layer sees a {escape_markdown(shape_text(field))} window of the input; neighbouring "
            f"outputs are {escape_markdown(shape_text(jump))} input positions apart."
        )
    st.caption(
        f"{row.mult_adds:,} mult-adds per sample · called {detail.get('calls', 0):d} time(s)"
    )


def conv_arithmetic() -> None:
    """Output size of a convolution, transposed convolution or pooling layer, with its cells.

    The numbers are checked by deeparch (convmath.layer_axis), not by the boxes' bounds: an
    out-of-range box would stay red in the browser and leave the previous result on the page.
    """
    for key, default in CONV_DEFAULTS.items():
        keep(f"conv_{key}", default)
    example_cols = st.columns(len(CONV_EXAMPLES))
    for column, (label, values) in zip(example_cols, CONV_EXAMPLES.items()):
        column.button(label, key=f"conv_example_{label}", on_click=_apply_example, args=(values,))
    kind_col, dims_col, flags_col = st.columns([3, 1, 2])
    mode = kind_col.radio("layer", LAYER_MODES, key="conv_mode", horizontal=True)
    dims = dims_col.radio("dimensions", ("2-D", "1-D"), key="conv_dims", horizontal=True)
    transposed, pooling = mode == "transposed convolution", mode == "pooling"
    causal = flags_col.checkbox(
        "causal (1-D convolution)",
        key="conv_causal",
        disabled=dims != "1-D" or mode != "convolution",
        help="pad dilation·(kernel − 1) on the left only, so no output reads a later input",
    ) and (dims == "1-D" and mode == "convolution")
    ceil_mode = flags_col.checkbox(
        "ceil mode (pooling)", key="conv_ceil_mode", disabled=not pooling
    )
    ceil_mode = ceil_mode and pooling
    shown = [n for n in CONV_NUMBERS if n != "output_padding" or transposed]
    boxes = dict(zip(shown, st.columns(len(shown))))
    numbers = {}
    for name, column in boxes.items():
        low, high = LAYER_BOUNDS[name]
        ignored = (name == "dilation" and pooling) or (name == "padding" and causal)
        numbers[name] = column.number_input(
            name.replace("_", " "), step=1, key=f"conv_{name}", disabled=ignored,
            help=f"a whole number from {low} to {high}"
            + (" (not used here)" if ignored else ""),
        )  # fmt: skip
        if ignored:
            numbers[name] = 1 if name == "dilation" else 0
    numbers.setdefault("output_padding", 0)
    st.write(CONV_FORMULAS["causal" if causal else mode])
    try:
        axis = layer_axis(mode, **numbers, causal=causal, ceil_mode=ceil_mode)
    except ConfigError as error:  # the message instead of any result: nothing stale stays
        st.error(escape_markdown(str(error)))
        return
    size_text = f"{axis.out:d} × {axis.out:d}" if dims == "2-D" else f"{axis.out:d}"
    st.success(f"output size: **{size_text}**")
    rank = 2 if dims == "2-D" else 1
    if instant_toggle("conv_instant", "the sliding window"):
        conv_window(axis.to_dict(), rank, key="conv_component")
        return
    side = "in" if transposed else "out"
    last = (axis.size if transposed else axis.out) - 1
    what = "input" if transposed else "output"
    position_cols = st.columns(2)
    positions = []
    for column, (name, label) in zip(
        position_cols, (("row", f"{what} row"), ("col", f"{what} column"))
    ):
        if name == "row" and rank == 1:
            positions.append(0)
            continue
        key = keep(f"conv_{name}", 0)
        if not 0 <= st.session_state.get(key, 0) <= last:
            st.session_state[key] = 0
        positions.append(column.slider(label, 0, max(last, 1), key=key, disabled=last == 0))
    figure = layer_figure(axis, rank, side, *positions)
    st.plotly_chart(figure, key="conv_figure", config={"displayModeBar": False})


def _apply_example(values: dict) -> None:
    for key, value in {**CONV_DEFAULTS, **values}.items():
        st.session_state[f"conv_{key}"] = value
    st.session_state["conv_row"] = st.session_state["conv_col"] = 0


@st.cache_resource(max_entries=SUMMARIES_KEPT, show_spinner="Building the model ...")
def layer_summary(arch: str, overrides: dict, dataset: str | None, freeze: str = "") -> LayerTable:
    """One layer table per server for each setting (read-only: every session shares it)."""
    if arch.startswith(TORCHVISION_PREFIX):
        name = arch.removeprefix(TORCHVISION_PREFIX)
        return summarize_torchvision(name, overrides, max_params=TORCHVISION_MAX_PARAMS)
    return shared_table(arch, overrides, dataset, freeze)  # the server's warm-up may have it


@st.cache_resource(max_entries=SUMMARIES_KEPT, show_spinner="Tracing the model ...")
def graph_summary(arch: str, overrides: dict, dataset: str | None):
    return shared_graph(arch, overrides, dataset)


@st.cache_data(show_spinner=False)
def torchvision_names() -> list[str]:
    return torchvision_model_names()


def apply_link() -> None:
    """Fill the widgets from the URL once per distinct link (?arch=cnn&channels=8,16, or
    ?arch=torchvision:googlenet); what it cannot use is said, field by field."""
    params = st.query_params.to_dict()
    params.pop("job", None)
    params.pop(VIEW_KEY, None)  # the tabs read their own parameter
    signature = share.link("", params)
    if not params or st.session_state.get("inspect_applied_link") == signature:
        return
    st.session_state["inspect_applied_link"] = signature
    shared = share.decode_inspect(params)
    if shared.arch is not None and shared.arch.startswith(TORCHVISION_PREFIX):
        st.session_state["inspect_source"] = "torchvision"
        st.session_state["inspect_torchvision_model"] = shared.arch.removeprefix(TORCHVISION_PREFIX)
        classes = shared.arch_values.get(share.NUM_CLASSES.name, share.NUM_CLASSES.default)
        seed_values([share.NUM_CLASSES], "inspect_torchvision", {"num_classes": classes})
    elif shared.arch is not None:
        st.session_state["inspect_source"] = "deeparch"
        st.session_state["inspect_arch"] = shared.arch
        if shared.dataset is not None:
            st.session_state[f"inspect_dataset_{shared.arch}"] = shared.dataset
        spec = get_arch(shared.arch)
        values = {field.name: field.default for field in spec.fields()} | shared.arch_values
        seed_values(spec.fields(), f"inspect_{shared.arch}", values)
    for problem in shared.problems:
        st.warning(f"The link's value was not used: {escape_markdown(problem)}")


def show_link(arch: str, dataset: str | None, values: dict) -> None:
    """The settings in the address bar, so the address reopens this table."""
    params = share.encode_inspect(arch, dataset, values)
    st.session_state["inspect_applied_link"] = share.link("", params)  # no need to apply it
    write_link(params, owned_by_widgets=(VIEW_KEY,))


def layers_view(table: LayerTable, arch: str, frozen: str) -> None:
    st.caption("Click a row to open that layer.")
    # The trainable column only when a part is frozen (else it repeats params).
    columns = TABLE_COLUMNS if not frozen else [*TABLE_COLUMNS[:4], "trainable", *TABLE_COLUMNS[4:]]
    frame = table.to_dataframe()[columns]
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
        st.markdown("**Subtotal per part**")
        st.markdown(subtotals_text(table))
    selected = event.selection.rows if event is not None else []
    if selected:
        layer_detail(table.rows[selected[0]])


def diagram_view(arch: str, overrides: dict, dataset: str | None) -> None:
    graph = graph_summary(arch, overrides, dataset)
    if st.toggle(
        "collapse repeated blocks",
        key=keep("inspect_collapse_blocks", False),
        help="Draw each repeated block (a ResNet block, an Inception module) as one box.",
        disabled=not graph.repeated_blocks,
    ):
        graph = collapse(graph, graph.repeated_blocks)
    if not graph.traced:
        st.warning(f"drawn in module order: {escape_markdown(graph.reason)}")
    for note in graph.notes:
        st.caption(escape_markdown(note))
    st.caption("Shapes on the arrows include the batch dimension (1).")
    with st.container(key="inspect_diagram"):
        st.graphviz_chart(graph_dot(graph))


def source_view(arch: str, from_torchvision: bool) -> None:
    if from_torchvision:
        module = torchvision_module(arch.removeprefix(TORCHVISION_PREFIX))
    else:
        module = sys.modules[get_arch(arch).builder.__module__]
    st.caption(f"{code_span(module.__name__)}: the file that builds {code_span(arch)}")
    st.code(inspect.getsource(module), language="python", line_numbers=True)


def build_table(arch: str, overrides: dict, dataset: str | None, frozen: str, errors: dict):
    """The layer table, or None with the reason shown (under its box where it names a field)."""
    try:
        return layer_summary(arch, overrides, dataset, frozen)
    except ConfigError as error:
        errors[error.field] = error
    except DeeparchError as error:
        st.error(escape_markdown(str(error)))
    except RuntimeError as error:  # a combination no check foresaw: say so, never a traceback
        st.error(escape_markdown(f"{arch} cannot be built with these settings: {error}"))
    return None


def choose_deeparch() -> tuple[str, str | None, list, dict, dict]:
    """The architecture, dataset and hyperparameter widgets; returns the choice and its form."""
    archs = list_archs()
    top = st.columns([2, 2, 3])
    arch = top[0].selectbox(
        "architecture", archs, key=keep("inspect_arch", "cnn" if "cnn" in archs else archs[0])
    )
    spec = get_arch(arch)
    datasets = compatible_datasets(spec)  # the default dataset first
    # Shapes need no files: a dataset whose files are missing is marked, and still inspected.
    dataset = top[1].selectbox(
        "dataset", datasets, key=keep(f"inspect_dataset_{arch}"), format_func=dataset_label
    )
    top[2].caption(spec.description)
    with st.expander("Hyperparameters", expanded=True):
        specs = specs_of(spec.config_cls)
        raw, slots = config_form(specs, f"inspect_{arch}", columns=3)
    return arch, dataset, specs, raw, slots


def choose_torchvision() -> tuple[str, None, list, dict, dict]:
    names = torchvision_names()
    top = st.columns([2, 2, 3])
    default = "resnet18" if "resnet18" in names else names[0]
    model = top[0].selectbox(
        "torchvision model", names, key=keep("inspect_torchvision_model", default)
    )
    with top[1]:
        raw, slots = config_form([share.NUM_CLASSES], "inspect_torchvision", columns=1)
    top[2].caption(
        f"torchvision's {code_span(model)} classifier, built untrained (no weights are "
        "downloaded) and run on one 3×224×224 image."
    )
    return TORCHVISION_PREFIX + model, None, [share.NUM_CLASSES], raw, slots


st.title("Inspect an architecture")
apply_link()
source = st.radio(
    "models", SOURCES, key=keep("inspect_source", SOURCES[0]), horizontal=True,
    format_func={"deeparch": "deeparch's architectures", "torchvision": "torchvision"}.get,
)  # fmt: skip
from_torchvision = source == "torchvision"
arch, dataset, specs, raw, slots = choose_torchvision() if from_torchvision else choose_deeparch()
overrides, errors = typed_overrides(specs, raw)
frozen = "" if errors or from_torchvision else freeze_picker(arch, overrides, dataset, "inspect")
table = None if errors else build_table(arch, overrides, dataset, frozen, errors)
show_errors(errors, slots)
if not errors:
    show_link(arch, dataset, overrides)

if table is not None:
    st.markdown(counts_text(table))
    for note in table.notes:
        st.info(escape_markdown(note))
# Only the open tab runs (README: Waiting for a page): a fresh tab that drew all four loaded the
# browser code of a table, a graph, a code viewer and a plotly chart at once.
layers_tab, diagram_tab, code_tab, conv_tab = st.tabs(
    list(VIEWS), key=keep(VIEW_KEY), bind="query-params"
)
if table is None:
    for tab in (layers_tab, diagram_tab):
        if tab.open:
            tab.info("Fix the setting marked above to see the layers.")
elif layers_tab.open:
    with layers_tab:
        layers_view(table, arch, frozen)
elif diagram_tab.open:
    with diagram_tab:
        if from_torchvision:
            st.info("The diagram is drawn for deeparch's own architectures.")
        else:
            diagram_view(arch, overrides, dataset)
if code_tab.open:
    with code_tab:
        source_view(arch, from_torchvision)
if conv_tab.open:
    with conv_tab:
        conv_arithmetic()
