"""A class opening a fresh server at once: every tab gets its page, never an error page."""

import pytest

from tests.app.browser import ARTIFACTS, free_port, start_server, stop_server, wait_healthy
from tests.app.wire import open_tabs_at_once

# Where a class lands: the home page, and the pages a shared link opens.
PAGES = ["", "train", "compare", "inspect", "features", "latent", "sequences"]
TABS = 20
TRIALS = 2


@pytest.mark.parametrize("trial", range(TRIALS))
def test_twenty_tabs_opening_a_fresh_server_at_once_never_get_an_error_page(trial):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = start_server(port, ARTIFACTS / f"cold_start_{trial}.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server)
        pages = [PAGES[i % len(PAGES)] for i in range(TABS)]
        results = open_tabs_at_once(url, pages)
    finally:
        stop_server(server)
    failures = [r for r in results if r.exceptions or r.error or not r.finished]
    assert not failures, [(r.page, r.exceptions, r.error, r.finished) for r in failures]
    assert len(results) == TABS
