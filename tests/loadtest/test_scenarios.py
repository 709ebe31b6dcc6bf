"""The load test's scenarios, small: cold-start error pages counted as the server logged them,
and a closed tab's job stopped by the server."""

import asyncio
import textwrap

from scripts.loadtest.abandon import abandon
from scripts.loadtest.scenarios import Options, cold
from tests.app.browser import REPO
from tests.loadtest.servers import tracebacks_in

FAILING_EVERY = 3
TABS = 9


def failing_app(folder):
    """An app whose home page fails for every third session's first run, with a Train page."""
    (folder / "pages").mkdir(parents=True)
    (folder / "app.py").write_text(
        textwrap.dedent(
            """
            import streamlit as st

            page = st.navigation(
                [st.Page("pages/home.py", title="Home", default=True),
                 st.Page("pages/train.py", title="Train")]
            )
            page.run()
            """
        )
    )
    (folder / "pages" / "home.py").write_text(
        textwrap.dedent(
            f"""
            import itertools
            import streamlit as st

            @st.cache_resource
            def visits():
                return itertools.count()

            if next(visits()) % {FAILING_EVERY} == 0:
                raise RuntimeError("a deliberate failure")
            st.title("Home")
            """
        )
    )
    (folder / "pages" / "train.py").write_text("import streamlit as st\nst.title('Train')\n")
    return folder


def test_cold_start_counts_each_error_page_the_server_logged(tmp_path):
    app = failing_app(tmp_path / "app")
    options = Options(
        scenario="cold", students=TABS, start_server=True, app_dir=app, repeat=1,
        open_pages=("",), log_dir=tmp_path / "logs", timeout_s=120,
    )  # fmt: skip
    result = asyncio.run(cold(options))
    trial = result["trials"][0]
    expected = len(range(0, TABS, FAILING_EVERY))
    assert result["error_pages_per_trial"] == [expected]
    assert tracebacks_in(tmp_path / "logs" / "cold-0.log") == expected
    assert trial["page_s"]["n"] == TABS and not trial["problems"]
    assert trial["train_page_s"]["n"] == TABS - expected  # a failed tab goes no further


def test_cold_start_of_the_app_reports_what_the_server_logged(tmp_path):
    options = Options(
        scenario="cold", students=8, start_server=True, app_dir=REPO, repeat=1,
        log_dir=tmp_path, timeout_s=240,
    )  # fmt: skip
    result = asyncio.run(cold(options))
    trial = result["trials"][0]
    assert not trial["problems"]
    assert trial["page_s"]["n"] == 8
    assert result["open_pages"][:2] == ["", "train"]  # the home page and shared links
    assert result["error_pages_per_trial"] == [tracebacks_in(tmp_path / "cold-0.log")]


def test_a_closed_tab_is_seen_by_the_server_and_its_job_stops(tmp_path):
    options = Options(
        scenario="abandon", students=1, start_server=True, app_dir=REPO,
        server_env={"DEEPARCH_HEARTBEAT_S": "2"}, abandon_wait_s=90, log_dir=tmp_path,
        timeout_s=120,
    )  # fmt: skip
    result = asyncio.run(abandon(options))
    assert result["jobs_started"] == 1 and not result["problems"]
    assert result["states_when_closed"] in ({"running": 1}, {"queued": 1})
    # stopped by the heartbeat, or released with the session that ended
    assert result["final_states"] in ({"stopped": 1}, {"released": 1})
    assert result["jobs_never_seen_stopped"] == 0
    assert result["server_idle_after_close_s"] is not None
