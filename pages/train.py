"""Train: pick data and hyperparameters, start a job, watch its curves live, save or load it."""

from collections.abc import Callable
from functools import partial
from urllib.parse import urlencode

import streamlit as st

from deeparch import share
from deeparch.checkpoint import archive
from deeparch.engine.config import TrainConfig, train_defaults, train_field_specs
from deeparch.engine.divergence import loss_explosion_note
from deeparch.engine.state import ACTIVE_STATES, SAVABLE_STATES
from deeparch.errors import ConfigError, DeeparchError
from deeparch.figures import training as viz
from deeparch.figures.text import escape_markdown
from deeparch.models import get_arch, list_archs
from deeparch.models.registry import compatible_datasets
from pages._datasets import dataset_picker
from pages._export import export_downloads
from pages._results import confusion_section, run_results
from pages._shared import (
    config_form,
    control_job,
    current_job,
    display_value,
    is_mine,
    keep,
    kept_value,
    manager,
    paced_refresh_s,
    progress_fraction,
    remember_job,
    remember_loaded,
    seed_values,
    session_jobs,
    session_owner,
    show_errors,
    specs_of,
    typed_overrides,
)
from pages._train_views import (
    freeze_picker,
    hidden_train_fields,
    training_views,
    wait_for_first_point,
)

TRAIN_PREFIX = "train_cfg"
# Seconds between chart refreshes while a job runs: each refresh costs the browser a redraw, and
# the browser shares the CPU with training.
LIVE_REFRESH_S = 1.0
# Until a new run's first loss point is drawn the page looks faster (the wait after Start is
# what a student feels); then LIVE_REFRESH_S again.
FIRST_POINT_REFRESH_S = 0.3
WORKING_STATES = ("queued", "running")  # a change between these changes nothing but the panel
UPLOAD_OUTCOME_KEY = "train_upload_outcome"  # the last upload's message, kept across the rerun


def apply_share_link() -> None:
    """Fill the widgets from the URL once per distinct link (?arch=mlp&lr=0.01&...)."""
    params = st.query_params.to_dict()
    params.pop("job", None)
    signature = urlencode(sorted(params.items()))
    if not params or st.session_state.get("train_applied_link") == signature:
        return
    st.session_state["train_applied_link"] = signature
    shared = share.decode(params)
    if shared.arch is not None:
        st.session_state["train_arch"] = shared.arch
        follow_arch_defaults(shared.arch)  # the link's own values, seeded below, win over these
        if shared.dataset is not None:
            st.session_state[f"train_dataset_{shared.arch}"] = shared.dataset
        arch_specs = specs_of(get_arch(shared.arch).config_cls)
        seed_values(arch_specs, f"train_{shared.arch}", shared.arch_values)
        seed_values(train_field_specs(), TRAIN_PREFIX, shared.train_values)
    for problem in shared.problems:
        st.warning(f"The link's value was not used: {escape_markdown(problem)}")


def follow_arch_defaults(arch: str) -> None:
    """When the architecture changes, its training defaults replace the previous one's (other
    settings the student changed stay)."""
    previous = st.session_state.get("train_defaults_arch")
    st.session_state["train_defaults_arch"] = arch
    if previous == arch:
        return
    changed = set(get_arch(arch).train_defaults)
    if previous in list_archs():
        changed |= set(get_arch(previous).train_defaults)
    defaults = train_defaults(arch)
    for spec in train_field_specs():
        if spec.name in changed:
            value = display_value(spec, defaults[spec.name])
            st.session_state[f"{TRAIN_PREFIX}_{spec.name}"] = value


def apply_job_settings(job) -> None:
    """Show a job's own settings in the form once per session (a reload with ?job=<id>); the
    student's later changes stay. A job started here already has the form's settings."""
    if job is None or st.session_state.get("train_form_job") == job.id:
        return
    st.session_state["train_form_job"] = job.id
    config = job.config
    st.session_state["train_arch"] = config.arch
    follow_arch_defaults(config.arch)
    spec = get_arch(config.arch)
    st.session_state[f"train_dataset_{config.arch}"] = config.dataset or spec.default_dataset
    arch_values = {field.name: field.default for field in spec.fields()} | dict(config.arch_config)
    seed_values(spec.fields(), f"train_{config.arch}", arch_values)
    train_values = {name: getattr(config, name) for name in train_defaults(config.arch)}
    seed_values(train_field_specs(), TRAIN_PREFIX, train_values)


def start_job(arch: str, dataset: str, arch_values: dict, train_values: dict, slots: dict) -> None:
    config = {**train_values, "arch": arch, "dataset": dataset, "arch_config": arch_values}
    try:
        job = manager().submit(TrainConfig.from_dict(config), owner=session_owner())
    except ConfigError as error:
        show_errors({error.field: error}, slots)
        return
    except DeeparchError as error:
        st.error(escape_markdown(str(error)))
        return
    except RuntimeError as error:  # a combination no check foresaw: say so, never a traceback
        st.error(escape_markdown(f"{arch} cannot train with these settings: {error}"))
        return
    remember_job(job)
    st.session_state["train_form_job"] = job.id  # the form holds its settings already
    # The rerun below draws the first loss point if it came within the wait; else the panel
    # looks for it every FIRST_POINT_REFRESH_S.
    drawn = wait_for_first_point(job)
    st.session_state["train_first_point"] = None if drawn else job.id
    st.session_state["train_last_state"] = job.state
    st.rerun()  # the sidebar, drawn before this page, shows the new job from the next run on


def job_controls(job) -> None:
    state = job.state
    if not is_mine(job):  # a link to another session's job: look, never touch
        st.caption("Another session's job, shown read-only: only its student can control it.")
        return
    pause_col, step_col, stop_col, _ = st.columns([1, 1, 1, 3])
    if state == "paused":
        if pause_col.button("Resume", key="train_resume", width="stretch"):
            control_job(job, "resume")
    elif pause_col.button(
        "Pause", key="train_pause", width="stretch", disabled=state not in ACTIVE_STATES
    ):
        control_job(job, "pause")
    if step_col.button(
        "Step",
        key="train_step",
        width="stretch",
        disabled=state != "paused",
        help="Train one batch while paused",
    ):
        control_job(job, "step")
    if stop_col.button(
        "Stop", key="train_stop", width="stretch", disabled=state not in ACTIVE_STATES
    ):
        control_job(job, "stop")


def live_panel() -> None:
    """Progress, speed and the live curves of the current job; reruns on its own while it trains."""
    job = current_job()
    if job is None:
        st.info("Press **Start** to train with the settings above.")
        # The loss chart's place, empty: the browser loads plotly.js (Streamlit's largest script,
        # 4.7 MB, fetched and compiled for a tab's first chart) while the student fills the
        # form, instead of between Start and the first loss point.
        st.columns(2)[0].plotly_chart(viz.loss_figure({}), key="train_loss_chart")
        return
    job_controls(job)
    snap = job.snapshot(owner=session_owner())  # reading as the owner keeps the job alive
    state = snap["state"]
    epoch = f"epoch {snap.get('epoch', 0)}/{snap.get('epochs', 0)}"
    text = f"{epoch} · step {snap.get('step', 0)}/{snap.get('total_steps', 0)}"
    if state == "queued":
        text = f"queued (position {snap.get('queue_position')}): another job is training"
    st.progress(progress_fraction(snap), text=escape_markdown(f"{state} · {text}"))
    numbers = st.columns(5)
    numbers[0].metric("state", state)
    numbers[1].metric("samples/s", f"{snap.get('samples_per_s') or 0:,.0f}")
    eta = snap.get("eta_s")
    numbers[2].metric("ETA", f"{eta:.0f} s" if eta is not None and state in ACTIVE_STATES else "—")
    numbers[3].metric("elapsed", f"{snap.get('elapsed_s') or 0:.1f} s")
    numbers[4].metric("device", str(snap.get("device", "?")))
    if state in ("failed", "diverged"):
        st.error(escape_markdown(f"The run {state}: {snap.get('reason') or 'no reason given'}"))
    elif state == "stopped" and snap.get("reason"):
        st.warning(escape_markdown(snap["reason"]))
    explosion = loss_explosion_note(snap.get("losses", {}), float(snap.get("lr") or 0.0))
    if explosion and state != "diverged":
        st.warning(escape_markdown(explosion))
    charts = st.columns(2)
    charts[0].plotly_chart(viz.loss_figure(snap.get("losses", {})), key="train_loss_chart")
    if snap.get("epoch_metrics"):
        charts[1].plotly_chart(
            viz.epoch_metrics_figure(snap["epoch_metrics"]), key="train_epoch_chart"
        )
    else:
        charts[1].caption("Validation metrics appear at the end of each epoch.")
    run_results(snap)
    confusion_section(job, snap)
    training_views(snap)
    previous = st.session_state.get("train_last_state")
    st.session_state["train_last_state"] = state
    first_point = any(snap.get("losses", {}).values())
    first_point = first_point and st.session_state.get("train_first_point") == job.id
    if first_point:
        st.session_state["train_first_point"] = None  # drawn: back to the slower refresh
    changed = previous is not None and previous != state
    if first_point or (changed and not {previous, state} <= set(WORKING_STATES)):
        st.rerun()  # the whole page: the checkpoint buttons and the sidebar follow the new state


def checkpoint_zip_on_click(job) -> Callable[[], bytes]:
    """The download's data, built only when the student clicks (Streamlit calls it then, in its
    own thread). Bytes built on each rerun stayed in the session and in Streamlit's media store
    as long as the tab lived, a 134 MB transfer model's too. It holds the job's id, not the job:
    a run that leaves memory meanwhile is freed, and packed from the run store."""
    job_id, owner, name = job.id, job.owner, archive.packed_name(job.arch, job.id)
    return lambda: archive.pack_saved(partial(manager().save_checkpoint, owner, job_id), name)


def load_upload(uploaded) -> tuple[str, ...]:
    """Validate an uploaded checkpoint (.safetensors or a .zip of one) and load it as a run; the
    outcome to show: ("error", message) or ("loaded", architecture, file name)."""
    owner = session_owner()
    try:
        job = archive.load_upload(
            uploaded.getvalue(),
            uploaded.name,
            lambda weights: manager().load_checkpoint(weights, owner=owner),
        )
    except DeeparchError as error:
        return ("error", str(error))
    remember_loaded(job)
    return ("loaded", job.snapshot()["arch"], archive.shown_name(uploaded.name))


def show_upload_outcome() -> None:
    outcome = st.session_state.get(UPLOAD_OUTCOME_KEY)
    if outcome and outcome[0] == "error":
        st.error(escape_markdown(outcome[1]))
    elif outcome:
        arch = escape_markdown(outcome[1])
        name = escape_markdown(outcome[2])
        st.success(f"Loaded {arch} ({name}); compare it on the Compare page.")


def checkpoint_section(job) -> None:
    save_col, load_col = st.columns(2)
    with save_col:
        st.markdown("**Save**")
        if job is not None and job.state in SAVABLE_STATES:
            st.download_button(
                "Download checkpoint (.zip)",
                checkpoint_zip_on_click(job),
                file_name=f"deeparch-{job.arch}-{job.id}.zip",
                mime="application/zip",
                key="train_download",
                on_click="ignore",
            )
            if get_arch(job.arch).family == "transfer":
                st.caption(
                    "A torchvision model's checkpoint is larger than an upload may be here: "
                    "continue it with `python -m deeparch train ... --resume FILE`."
                )
        else:
            st.caption("Pause or finish a run to download its weights (.safetensors + .json).")
    with load_col:
        st.markdown("**Load**")
        # No `type` filter: the browser's refusal would read " files are not allowed" without the
        # types that are; deeparch's own names them (and says why a .pt is never opened).
        uploads = st.session_state.setdefault("train_uploads", 0)
        uploaded = st.file_uploader(
            "a deeparch checkpoint (.zip or .safetensors)",
            key=f"train_upload_{uploads}" if uploads else "train_upload",
        )
        if uploaded is not None:
            st.session_state[UPLOAD_OUTCOME_KEY] = load_upload(uploaded)
            # A new widget key: Streamlit forgets the file the old widget held (read once), and
            # the page draws the new, empty widget at once, so the next file is not lost.
            st.session_state["train_uploads"] = uploads + 1
            st.rerun()
        show_upload_outcome()


st.title("Train")
apply_share_link()
apply_job_settings(current_job())
archs = list_archs()
top = st.columns([2, 2, 3])
arch_key = keep("train_arch", "mlp" if "mlp" in archs else archs[0])
arch = top[0].selectbox("architecture", archs, key=arch_key)
follow_arch_defaults(arch)
spec = get_arch(arch)
datasets = compatible_datasets(spec)
dataset_key = keep(f"train_dataset_{arch}", datasets[0])
if st.session_state.get(dataset_key) not in datasets:
    st.session_state[dataset_key] = datasets[0]
dataset, dataset_missing = dataset_picker(top[1], datasets, dataset_key)
top[2].caption(spec.description)

arch_specs = specs_of(spec.config_cls)
with st.expander(f"{arch} hyperparameters", expanded=True):
    arch_raw, arch_slots = config_form(arch_specs, f"train_{arch}", columns=3)
# The settings as the widgets hold them before this run draws them (a changed optimizer
# included), so the fields they leave unused are hidden in this same run.
chosen = {spec.name: kept_value(f"{TRAIN_PREFIX}_{spec.name}") for spec in train_field_specs()}
chosen = {name: value for name, value in chosen.items() if value is not None}
with st.expander("Training settings", expanded=True):
    train_raw, train_slots = config_form(
        train_field_specs(), TRAIN_PREFIX, columns=4, exclude=hidden_train_fields(arch, chosen)
    )
arch_values, arch_errors = typed_overrides(arch_specs, arch_raw)
train_values, train_errors = typed_overrides(train_field_specs(), train_raw)
train_values["freeze"] = freeze_picker(arch, arch_values, dataset)
slots = {**train_slots, **arch_slots}
show_errors({**arch_errors, **train_errors}, slots)
valid = not arch_errors and not train_errors and not dataset_missing

# One run at a time per student: a second Start would queue a second job without a word.
running = [job for job in session_jobs(include_loaded=False) if job.state in ACTIVE_STATES]
start_col, link_col = st.columns([1, 5])
if start_col.button(
    "Start", key="train_start", type="primary", disabled=not valid or bool(running),
    width="stretch",
):  # fmt: skip
    start_job(arch, dataset, arch_values, train_values, slots)
if running:
    link_col.caption(
        f"Your {escape_markdown(running[0].arch)} run is {escape_markdown(running[0].state)}: "
        "stop it (below or in the sidebar) to start another, or replace it."
    )
    if link_col.button("Stop it and start these settings", key="train_replace", disabled=not valid):
        for job in running:
            job.stop("replaced by a new run")
        start_job(arch, dataset, arch_values, train_values, slots)
with link_col.popover("Share these settings"):
    params = share.encode(arch, dataset, arch_values, train_values)
    st.code(share.link(st.context.url or "", params), language=None)

job = current_job()
active = job is not None and job.state in ACTIVE_STATES
# Only a training job is looked at fast for its first point; a queued one waits for others'
# runs, and thirty tabs polling their queue positions every 0.3 s would slow those runs down.
waiting = job is not None and job.state == "running"
waiting = waiting and st.session_state.get("train_first_point") == job.id
# Both paced by the class: thirty tabs pressing Start together polled every 0.3 s (100 reruns a
# second) and the server dropped 21 of them in the load test's 30-student stage.
refresh = paced_refresh_s(FIRST_POINT_REFRESH_S if waiting else LIVE_REFRESH_S)
st.fragment(live_panel, run_every=refresh if active else None)()
st.divider()
checkpoint_section(job)
export_downloads(job)
