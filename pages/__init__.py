"""The app's pages, and the one check that must run before any of their helper modules is imported.

Streamlit 1.67 assumes the old pages/ directory mode until some script calls st.navigation. On a
fresh server the first visitor of a URL like /train?arch=mlp therefore gets pages/train.py run on
its own, without app.py (no job sidebar, no thread setting, pages/_shared.py listed as a page).
Every page imports a module of this package, so this package switches the mode off and starts the
run again through app.py.

Why here and not in pages/_shared.py: st.rerun() raises. Raised while a module is being imported,
it leaves that module half-executed, and Python hands the half-executed module object to every
other thread that was waiting for the same import: on a cold start with 20 tabs opening at once,
the others failed with "cannot import name ... from pages._shared". This package defines nothing
else, so whoever receives it half-executed misses nothing.
"""

import streamlit as st

# Streamlit internals: where a release lacks them, that release needs no such help.
try:
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.runtime.scriptrunner import get_script_run_ctx
except ImportError:
    PagesManager = None


def use_app_router() -> None:
    """Leave Streamlit's pages/ directory mode (once per server) and rerun through app.py."""
    if PagesManager is None:
        return
    uses_pages_directory = getattr(PagesManager, "uses_pages_directory", None)
    if uses_pages_directory and get_script_run_ctx(suppress_warning=True) is not None:
        PagesManager.uses_pages_directory = False
        st.rerun()


use_app_router()
