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
