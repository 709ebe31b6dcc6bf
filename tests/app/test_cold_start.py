"""A class opening a fresh server at once: every tab gets its page, never an error page."""

import pytest

from tests.app.browser import running_app
from tests.app.wire import open_tabs_at_once

# Where a class lands: the home page, and the pages a shared link opens.
PAGES = ["", "train", "compare", "inspect", "features", "latent", "sequences"]
TABS = 20
TRIALS = 2


@pytest.mark.parametrize("trial", range(TRIALS))
def test_twenty_tabs_opening_a_fresh_server_at_once_never_get_an_error_page(trial):
    with running_app(f"cold_start_{trial}") as url:
        results = open_tabs_at_once(url, [PAGES[i % len(PAGES)] for i in range(TABS)])
    failures = [r for r in results if r.exceptions or r.error or not r.finished]
    assert not failures, [(r.page, r.exceptions, r.error, r.finished) for r in failures]
    assert len(results) == TABS


# plotly reads sys.modules["pandas"] without importing it (_plotly_utils.optional_imports,
# should_load=False), so a figure built while another tab's thread is still importing pandas
# finds the half-made module. Recorded here: how pandas stood when the first module that builds
# plotly figures was imported (Streamlit imports plotly itself at start), in a fresh process that
# opens the app and goes to Train (the page whose loss chart failed).
PANDAS_BEFORE_PLOTLY = """
import json, sys
from streamlit.testing.v1 import AppTest

seen = {}
FIGURES = ("deeparch.figures.", "deeparch.lessons.present")

class Watch:
    def find_spec(self, name, path=None, target=None):
        builds_figures = name.startswith(FIGURES) and name != "deeparch.figures.text"
        if builds_figures and "figures" not in seen:
            pandas = sys.modules.get("pandas")
            spec = getattr(pandas, "__spec__", None)
            seen["figures"] = {
                "pandas_imported": pandas is not None,
                "pandas_initialising": bool(getattr(spec, "_initializing", False)),
                "has_series": hasattr(pandas, "Series"),
            }
        return None

sys.meta_path.insert(0, Watch())
at = AppTest.from_file("app.py", default_timeout=300)
at.run()
at.switch_page("pages/train.py").run()
print(json.dumps({"seen": seen, "failed": [e.value for e in at.exception]}))
"""


def test_pandas_is_whole_before_any_figure_module_so_no_tab_sees_it_half_made():
    import json
    import subprocess
    import sys

    from tests.app.browser import REPO

    result = subprocess.run(
        [sys.executable, "-c", PANDAS_BEFORE_PLOTLY], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {
        "seen": {
            "figures": {"pandas_imported": True, "pandas_initialising": False, "has_series": True}
        },
        "failed": [],
    }
