"""Home: the gallery of every registered architecture, each a card with a drawing and buttons."""

from pathlib import Path

import streamlit as st

from deeparch.errors import DeeparchError
from deeparch.figures.diagrams import asset_for
from deeparch.figures.layer_drawing import layer_stack_drawing
from deeparch.figures.text import escape_markdown
from deeparch.introspection.table import summarize
from deeparch.models import archs_in_gallery_order, create_model, get_arch, list_families
from pages import _shared  # also for use_app_router: app.py routes every page

CARDS_PER_ROW = 3
# Cards of a row as tall as the tallest, with their buttons on one line at the bottom: the
# one-sentence summaries differ in length.
EQUAL_CARDS_CSS = """<style>
[data-testid="stColumn"]:has([class*="st-key-home_card_"]) > [data-testid="stVerticalBlock"],
[data-testid="stColumn"]:has([class*="st-key-home_card_"]) > div > [data-testid="stLayoutWrapper"],
[class*="st-key-home_card_"] { height: 100%; }
[class*="st-key-home_card_"] > :last-child { margin-top: auto; }
</style>"""
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"


@st.cache_data(show_spinner=False)
def default_parameter_count(arch: str) -> int | None:
    """Parameters of an architecture at its defaults, on its default dataset (None if it fails)."""
    try:
        model, _ = create_model(arch)
    except (DeeparchError, RuntimeError):
        return None
    return sum(p.numel() for p in model.parameters())


@st.cache_data(show_spinner=False)
def drawing_from_layer_table(arch: str) -> str | None:
    """An SVG of the layer stack at defaults (None if it cannot be built): drawn once per process,
    as st.cache_data is shared by every session."""
    try:
        return layer_stack_drawing(summarize(arch))
    except (DeeparchError, RuntimeError):
        return None


def card(arch: str) -> None:
    spec = get_arch(arch)
    with st.container(border=True, key=f"home_card_{arch}"):
        st.markdown(f"#### {escape_markdown(arch)}")
        st.caption(
            f"family **{escape_markdown(spec.family)}** · task **{escape_markdown(spec.task)}** · "
            f"data {escape_markdown(spec.default_dataset)}"
        )
        # Its own drawing or its family's in assets/, else one made from its layer table.
        drawing = asset_for(arch, spec.family, ASSETS_DIR) or drawing_from_layer_table(arch)
        if drawing is not None:
            st.image(drawing, width="stretch")  # a file, or the SVG text itself
        # The first sentence is the one-line summary; the whole description is in the tooltip.
        st.markdown(spec.summary, help=spec.description)
        count = default_parameter_count(arch)
        st.markdown(f"**{count:,}** parameters at defaults" if count is not None else "")
        inspect_col, train_col = st.columns(2)
        if inspect_col.button("Inspect", key=f"home_inspect_{arch}", width="stretch"):
            st.switch_page("pages/inspect.py", query_params={"arch": arch})
        if train_col.button("Train", key=f"home_train_{arch}", type="primary", width="stretch"):
            st.switch_page("pages/train.py", query_params={"arch": arch})


# The title and introduction are drawn by app.py before torch is imported (pages/_home_heading.py).
# From the simplest idea to the newest (each family module's GALLERY_POSITION): a student reads
# the gallery top to bottom.
archs = archs_in_gallery_order()
st.html(EQUAL_CARDS_CSS)
chosen = st.pills(
    "Families", list_families(), selection_mode="multi", key=_shared.keep("home_families")
)
shown = [a for a in archs if not chosen or get_arch(a).family in chosen]
for start in range(0, len(shown), CARDS_PER_ROW):
    columns = st.columns(CARDS_PER_ROW)
    for column, arch in zip(columns, shown[start : start + CARDS_PER_ROW]):
        with column:
            card(arch)
