"""What a page waits for on a fresh server: the imports before its first element, the work done
once per server instead of once per session, and the Start button's first loss point."""

import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import streamlit
from streamlit.testing.v1 import AppTest

from deeparch import warmup
from deeparch.engine.state import JobState
from deeparch.introspection import shared
from deeparch.models import get_arch
from pages import _home_heading as home_heading
from pages._train_views import wait_for_first_point
from tests.app.browser import REPO
from tests.app.test_pages import inspect_count, open_page

# What app.py and Home import before Home's first card is sent (pages/home.py's own imports).
APP_IMPORTS = (
    "pages._shared",
    "deeparch.models",
    "deeparch.figures.diagrams",
    "deeparch.figures.layer_drawing",
    "deeparch.introspection.table",
    "deeparch.figures.training",
)


def test_the_pages_import_neither_torchvision_nor_torch_dynamo():
    # torchvision's import imports torch._dynamo, and the two took as long as torch itself
    # (python -X importtime): no page should wait for them before its first element.
    code = "import sys\n" + "".join(f"import {name}\n" for name in APP_IMPORTS)
    code += "print(__import__('json').dumps(sorted(m for m in sys.modules "
    code += "if m.split('.')[0] == 'torchvision' or m.startswith('torch._dynamo'))))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


# A fresh server's first Home run with torch made unimportable: what it drew before the failed
# import is what the student sees while torch loads.
BEFORE_TORCH = """
import json, sys
from streamlit.testing.v1 import AppTest

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not imported yet")

sys.meta_path.insert(0, NoTorch())
at = AppTest.from_file("app.py", default_timeout=300)
at.run()
print(json.dumps({"titles": [t.value for t in at.title], "failed": bool(at.exception),
                  "torch": "torch" in sys.modules}))
"""


def test_home_draws_its_heading_before_torch_is_imported():
    result = subprocess.run(
        [sys.executable, "-c", BEFORE_TORCH], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {"titles": [home_heading.TITLE], "failed": True, "torch": False}


# Two sessions of one fresh server (one process): each opens Home, then Inspect on cnn. The
# warm-up starts once, and cnn's layer table and graph are computed once for both sessions and
# the warm-up together.
TWO_SESSIONS = """
import json, sys
from streamlit.testing.v1 import AppTest
from deeparch import warmup
from deeparch.engine.state import JobState
from deeparch.introspection import shared
from deeparch.introspection.shared import computed_counts
sessions = []
for _ in range(2):
    at = AppTest.from_file("app.py", default_timeout=300)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    sessions.append(at)
record = warmup.start_warm_up()
assert record.done.wait(300)
for at in sessions:
    at.switch_page("pages/inspect.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(m.value.startswith("**93,322** parameters") for m in at.markdown)
print(json.dumps({
    "counts": computed_counts(), "steps": sorted(record.seconds), "errors": record.errors,
    "dynamo": "torch._dynamo" in sys.modules,
    "same": warmup.start_warm_up() is record,
}))
"""


def test_the_warm_up_runs_once_per_server_and_inspect_reuses_its_work():
    result = subprocess.run(
        [sys.executable, "-c", TWO_SESSIONS], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["counts"] == {"tables": 1, "graphs": 1}
    assert outcome["steps"] == sorted(name for name, _ in warmup.STEPS)
    assert outcome["errors"] == {}
    assert outcome["dynamo"]  # the first optimizer's import is done before anyone presses Start
    assert outcome["same"]


def test_a_shared_table_is_computed_once_per_setting_and_defaults_share_a_key():
    memo = shared.SharedResults(lambda arch, overrides: object(), kept=2)
    first = memo.get(shared.settings_key("mlp", {}, None), "mlp", {})
    spec_defaults = {field.name: field.default for field in get_arch("mlp").fields()}
    same = memo.get(shared.settings_key("mlp", spec_defaults, "mnist"), "mlp", spec_defaults)
    assert same is first and memo.computed == 1
    other = memo.get(shared.settings_key("mlp", {"hidden_sizes": (8,)}, None), "mlp", {})
    assert other is not first and memo.computed == 2
    memo.get(shared.settings_key("cnn", {}, None), "cnn", {})  # kept=2: the oldest (mlp) leaves
    again = memo.get(shared.settings_key("mlp", {}, None), "mlp", {})
    assert again is not first and memo.computed == 4


def test_concurrent_callers_of_one_key_wait_for_one_computation():
    started, release = threading.Event(), threading.Event()

    def slow(value):
        started.set()
        release.wait(60)
        return [value]

    memo = shared.SharedResults(slow)
    results = []
    callers = [threading.Thread(target=lambda: results.append(memo.get("k", 1))) for _ in range(3)]
    for caller in callers:
        caller.start()
    assert started.wait(60)
    release.set()
    for caller in callers:
        caller.join(60)
    assert memo.computed == 1 and len(results) == 3
    assert all(result is results[0] for result in results)


class FakeJob:
    """A job whose first loss point is published after `steps_before_point` snapshots."""

    def __init__(self, state, steps_before_point):
        self.state = state
        self.snapshots = 0
        self.steps_before_point = steps_before_point

    def snapshot(self):
        self.snapshots += 1
        ready = self.snapshots > self.steps_before_point
        return {"losses": {"train": [1.0] if ready else []}}


def test_start_waits_for_the_first_point_only_while_the_job_trains():
    training = FakeJob(JobState.RUNNING, steps_before_point=3)
    assert wait_for_first_point(training, seconds=60) and training.snapshots == 4
    queued = FakeJob(JobState.QUEUED, steps_before_point=3)
    assert not wait_for_first_point(queued, seconds=60) and queued.snapshots == 1
    slow = FakeJob(JobState.RUNNING, steps_before_point=10**9)
    assert not wait_for_first_point(slow, seconds=0.05)  # the deadline ends the wait


def test_the_train_page_draws_the_empty_loss_chart_before_any_run():
    # So that the browser has loaded plotly.js before Start (its first chart fetches it).
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
    at.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    charts = [
        chart for chart in at.get("plotly_chart") if chart.proto.id.endswith("train_loss_chart")
    ]
    assert len(charts) == 1 and json.loads(charts[0].proto.spec)["data"] == []


def drawn_views(at: AppTest) -> dict:
    """What each of Inspect's tabs drew in the last run."""
    return {
        "Layers": len(at.dataframe) > 0,
        "Diagram": len(at.get("graphviz_chart")) > 0,
        "Source code": len(at.code) > 0,
        "Convolution arithmetic": any("output size" in s.value for s in at.success),
    }


def test_inspect_runs_only_its_open_tab_which_the_address_and_other_pages_keep():
    # A fresh tab that ran all four loaded the browser code of a table, a graph, a code viewer
    # and a plotly chart before the student saw the count (README: Waiting for a page).
    warmup.start_warm_up().done.wait(300)  # its graph computed, so the count below is Inspect's
    at = open_page("pages/inspect.py", {"arch": "mlp", "hidden_sizes": "7,5"})
    assert drawn_views(at) == {
        "Layers": True, "Diagram": False, "Source code": False, "Convolution arithmetic": False,
    }  # fmt: skip
    graphs = shared.computed_counts()["graphs"]
    assert not any(key.endswith("view") for key in at.query_params)  # the default is not written
    for view in ("Diagram", "Source code", "Convolution arithmetic"):
        at.session_state["inspect_view"] = view  # what a click on the tab sends
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert [name for name, shown in drawn_views(at).items() if shown] == [view]
        assert at.query_params["inspect_view"] == view
    assert shared.computed_counts()["graphs"] == graphs + 1  # traced when the Diagram opened
    assert inspect_count(at, "parameters") == f"{784 * 7 + 7 + 7 * 5 + 5 + 5 * 10 + 10:,}"
    at.switch_page("pages/train.py").run()
    at.switch_page("pages/inspect.py").run()
    assert [name for name, shown in drawn_views(at).items() if shown] == ["Convolution arithmetic"]
    linked = open_page("pages/inspect.py", {"arch": "cnn", "inspect_view": "Source code"})
    assert [name for name, shown in drawn_views(linked).items() if shown] == ["Source code"]
    assert not linked.warning  # the tab's parameter is no setting the link failed to use


def test_streamlit_loads_markdown_with_its_first_script_and_metrics_and_tables_on_demand():
    # Why Inspect's counts are Markdown: what the first script imports paints with the page's
    # title, while an element loaded on demand (import()) was drawn in one frame with every other
    # such element of the run, the layer table's 1.7 MB included (README: Waiting for a page).
    scripts = Path(streamlit.__file__).parent / "static" / "static" / "js"
    entry = (scripts / re.search(r'src="\./static/js/([^"]+)"', index_html()).group(1)).read_text()
    assert re.search(r'from"\./StreamlitMarkdown\.[\w-]+\.js"', entry)
    for on_demand in ("Metric", "DataFrame"):
        assert re.search(rf"import\(`\./{on_demand}\.[\w-]+\.js`\)", entry), on_demand


def index_html() -> str:
    return (Path(streamlit.__file__).parent / "static" / "index.html").read_text()


def test_inspect_sends_its_counts_and_subtotals_as_text_before_the_layer_table():
    at = open_page("pages/inspect.py", {"arch": "cnn"})
    sent = [element for element in at.main if element.type in ("markdown", "dataframe")]
    kinds = [element.type for element in sent]
    assert not at.metric and kinds.count("dataframe") == 1  # the layer table, the one widget
    table = at.dataframe[0].value
    mult_adds = int(table["mult_adds"].sum())  # the rows' own figures
    line = f"**93,322** parameters · **93,322** trainable · **{mult_adds:,}** mult-adds per sample"
    assert [e.value for e in sent if e.type == "markdown"].count(line) == 1
    count = next(i for i, e in enumerate(sent) if e.type == "markdown" and e.value == line)
    assert count < kinds.index("dataframe")  # sent first, and painted first (text)
    # Chollet's convnet: features 320 + 18,496 + 36,928, classifier 36,928 + 650 (Keras' table)
    features, classifier = 320 + 18_496 + 36_928, 36_928 + 650
    subtotals = (
        "| part | params | share |\n|---|--:|--:|\n"
        f"| features | {features:,} | {features / 93_322:.1%} |\n"
        f"| classifier | {classifier:,} | {classifier / 93_322:.1%} |"
    )
    assert [e.value for e in sent if e.type == "markdown"].count(subtotals) == 1
    assert int(table["params"].sum()) == features + classifier
