"""A person's path through the Airflow UI and the MLflow UI, in a real (headless) chromium.

scripts/airflow-ui.sh starts the stack on a throw-away project (a copy of params.yaml). In the
browser: log in (simple auth manager), open intent_retrain, open its Trigger form, check that
every Param the DAG defines shows its title and description, untick "Unpause ... on trigger",
type bad values and see them refused (the DAG staying paused), then trigger a tiny run (one epoch
on 60 examples of a 2-layer random BERT), unpause the DAG with its toggle (a paused DAG's runs
stay queued), wait for the run, read the gate decision and the MLflow link in the summary task's
log, follow the link to the run's metrics in MLflow, and find the ``champion`` alias on the
registered model.

The Params (names, titles, descriptions) are read from the DAG files in dags/ at test time.
Screenshots: test-output/browser/. Needs scripts/install-browser.sh.
"""

from __future__ import annotations

import contextlib
import re
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

try:
    from playwright.sync_api import expect

    # React pages on 2 busy cores: the default 5 s per assertion is too short.
    expect.set_options(timeout=30_000)
except ImportError:  # the browser_context fixture fails the test, saying how to install it
    expect = None

if TYPE_CHECKING:  # fixtures' types (conftest.py is not imported: pytest loads it)
    from tests.browser.conftest import Shots, UiStack


pytestmark = pytest.mark.browser

DAG_ID = "intent_retrain"
RUN_TIMEOUT_S = 600
# The trigger form's values: one epoch on 60 training examples.
EPOCHS, SAMPLE_SIZE = 1, 60


def run_overrides(tiny_bert_dir: Path) -> list[str]:
    """params.yaml overrides typed into the form's overrides field: a tiny model and a quick run.

    A random 2-layer BERT trained on 60 examples scores a macro-F1 near 0.08; params.yaml's first
    run value threshold (gate.intent.primary.min_value 0.5) would rightly reject it, so the test
    lowers it: what is tested here is the path through the UIs, not the model."""
    return [
        f"intent.train.model_path={tiny_bert_dir}",
        "gate.intent.primary.min_value=0.0",
        "validation.data_docs=false",
    ]


# ----------------------------------------------------------------------------- form helpers


def label_of(params: dict[str, Any], key: str) -> str:
    """What the form shows as the field's label: the schema's title, else the key."""
    return params[key]["schema"].get("title") or key


def param_row(dialog: Any, label: str) -> Any:
    """The form row (Chakra Field root) whose label is ``label`` (a required field's label ends
    with an asterisk)."""
    label_re = re.compile(rf"^\s*{re.escape(label)}\s*\*?\s*$")
    return dialog.locator("[data-scope=field][data-part=root]").filter(
        has=dialog.page.locator("[data-scope=field][data-part=label]", has_text=label_re)
    )


def _plain(markdown: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    return " ".join(re.sub(r"[*`#>]", "", text).split())


def visible_error(dialog: Any, row: Any, key: str, label: str) -> tuple[str, str] | None:
    """A visible error about the field: (where, text), next to it first, else in the dialog.
    The error is scrolled into view (for the screenshots)."""
    near = row.locator("[data-part=error-text]")
    names = rf"\b({re.escape(key)}|{re.escape(label)})\b"
    # Airflow's ErrorAlert (data-testid=error-alert) is a Chakra alert without role=alert.
    alerts = dialog.locator("[data-testid=error-alert], .chakra-alert__root, [role=alert]").filter(
        has_text=re.compile(names, re.I)
    )
    for where, candidates in (("next to the field", near), ("at the top of the dialog", alerts)):
        for i in range(candidates.count()):
            element = candidates.nth(i)
            if element.is_visible():
                with contextlib.suppress(Exception):
                    element.scroll_into_view_if_needed(timeout=2000)
                return where, element.inner_text()
    return None


def wait_for_error(
    dialog: Any, row: Any, key: str, label: str, timeout: float
) -> tuple[str, str] | None:
    deadline = time.time() + timeout
    while True:
        found = visible_error(dialog, row, key, label)
        if found or time.time() >= deadline:
            return found
        time.sleep(0.25)


def settled_value(box: Any, timeout: float = 3.0) -> str:
    """The field's value once the form has reacted to it (a number field corrects an
    out-of-range value after losing focus, a render later)."""
    deadline = time.time() + timeout
    value = box.input_value()
    while time.time() < deadline:
        time.sleep(0.3)
        again = box.input_value()
        if again == value:
            return value
        value = again
    return value


def toasts(page: Any) -> list[str]:
    roots = page.locator("[data-scope=toast][data-part=root]")
    return [" / ".join(roots.nth(i).inner_text().split("\n")) for i in range(roots.count())]


def dismiss_toasts(page: Any) -> None:
    """Notifications sit over the form's Trigger button, and stay while the pointer rests on
    them: move the pointer away, close them, let them go."""
    page.mouse.move(5, 5)
    closers = page.locator("[data-scope=toast][data-part=close-trigger]")
    for i in reversed(range(closers.count())):
        with contextlib.suppress(Exception):
            closers.nth(i).click(timeout=2000)
    expect(page.locator("[data-scope=toast][data-part=root]")).to_have_count(0, timeout=30_000)


def refused(dialog: Any, row: Any, submit: Any, key: str, label: str) -> tuple[str, str, str]:
    """The form must not take the value now in the field: an error next to it and a disabled
    Trigger button, or a submit that is refused with a visible message. Returns (how, where,
    message)."""
    found = wait_for_error(dialog, row, key, label, timeout=1.5)
    if found and submit.is_disabled():
        return "Trigger button disabled", *found
    page = dialog.page
    posted: list[int] = []  # statuses of the trigger requests this click sends

    def on_response(response: Any) -> None:
        if response.request.method == "POST" and "/dagRuns" in response.url:
            posted.append(response.status)

    dismiss_toasts(page)
    page.on("response", on_response)
    try:
        earlier = found  # an error still shown from an earlier try is not this one's
        found = None
        submit.click()
        # Refused in the browser (no request), or by the API: then wait for its answer.
        deadline = time.time() + 20
        while not posted and time.time() < deadline:
            page.wait_for_timeout(250)
            found = visible_error(dialog, row, key, label)
            if found and found != earlier:
                break
    finally:
        page.remove_listener("response", on_response)
    assert all(status >= 400 for status in posted), f"the API took the bad value: {posted}"
    found = wait_for_error(dialog, row, key, label, timeout=20)
    assert found, f"no visible error about {key!r} after submitting a bad value ({posted})"
    assert dialog.is_visible(), "the Trigger form closed: the bad value was submitted"
    how = f"submit refused (HTTP {posted[0]})" if posted else "submit refused in the browser"
    if toasts(page):
        how += f"; notification: {toasts(page)}"
    return how, *found


# ----------------------------------------------------------------------------- waiting


def wait_until(what: str, check: Any, timeout: float, stack: UiStack, every: float = 1.0) -> Any:
    deadline = time.time() + timeout
    while True:
        stack.check_alive()
        result = check()
        if result:
            return result
        if time.time() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def wait_for_run(stack: UiStack, run_id: str, timeout: float) -> dict[str, Any]:
    """Poll the REST API until the run ends; print each change of the task states."""
    api = stack.api
    quoted = urllib.parse.quote(run_id, safe="")
    t0, last = time.time(), None
    while True:
        stack.check_alive()
        run = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{quoted}")
        tis = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{quoted}/taskInstances")
        states = {ti["task_id"]: ti["state"] for ti in tis["task_instances"]}
        if states != last:
            print(f"  {time.time() - t0:5.0f}s run {run['state']}: {states}")
            last = states
        if run["state"] in ("success", "failed"):
            return run
        if time.time() - t0 > timeout:
            raise AssertionError(
                f"run {run_id} still {run['state']} after {timeout}s: {states}\n"
                f"{stack.task_log_tails(DAG_ID, run_id)}"
            )
        time.sleep(3)


# ----------------------------------------------------------------------------- the test


def test_trigger_retrain_in_airflow_ui_then_follow_it_to_mlflow(
    browser_context: tuple[Any, Shots],  # first: a missing browser fails before anything starts
    dag_params: Any,
    ui_stack: UiStack,
    tiny_bert_dir: Path,
) -> None:
    stack = ui_stack
    context, shots = browser_context
    api = stack.api
    all_params = dag_params()
    assert DAG_ID in all_params, f"{DAG_ID} not among the DAGs in dags/: {sorted(all_params)}"
    params = all_params[DAG_ID]
    overrides = run_overrides(tiny_bert_dir)

    # The dag-processor has parsed dags/ (seconds after the scheduler starts).
    def parsed() -> dict[str, Any] | None:
        status, body = api.call("GET", f"/api/v2/dags/{DAG_ID}")
        return body if status == 200 else None

    dag = wait_until(f"{DAG_ID} to be parsed", parsed, 180, stack)
    assert dag["is_paused"] is True, "a new DAG should start paused"

    # --- log in (simple auth manager) ---
    page = context.new_page()
    page.goto(stack.airflow_url + "/")
    page.get_by_label("Username").fill(stack.user)
    page.get_by_label("Password").fill(stack.password)
    shots.take(page, "airflow-login")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)

    # --- the DAG, its Trigger form ---
    page.goto(stack.airflow_url + "/dags")
    page.get_by_role("link", name=DAG_ID, exact=True).first.click()
    expect(page).to_have_url(re.compile(rf"/dags/{DAG_ID}(/|$)"))
    # The URL changes before the list is gone (each of its rows has a Trigger button too): wait
    # for the DAG page's own breadcrumb, then for a single Trigger button.
    breadcrumb = page.get_by_role("navigation", name="breadcrumb")
    expect(breadcrumb.get_by_role("link", name=DAG_ID, exact=True)).to_be_visible()
    trigger_button = page.get_by_role("button", name=re.compile(r"^Trigger\b"))
    expect(trigger_button).to_have_count(1)
    shots.take(page, "dag")
    trigger_button.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(DAG_ID)
    # Params in named sections sit in accordions of their own: open any that is closed.
    sections = {s["schema"]["section"] for s in params.values() if "section" in s["schema"]}
    for section in sorted(sections):
        trigger = dialog.get_by_role("button", name=section, exact=True)
        if trigger.count() and trigger.first.get_attribute("aria-expanded") == "false":
            trigger.first.click()

    shown = []
    for key, spec in params.items():
        schema = spec["schema"]
        if "const" in schema:  # the form hides constant Params
            continue
        label = label_of(params, key)
        row = param_row(dialog, label)
        expect(row, f"no form field labelled {label!r} for Param {key!r}").to_have_count(1)
        expect(row).to_be_visible()
        description = spec["description"] or schema.get("description")
        if description:
            expect(row.get_by_text(description, exact=True)).to_be_visible()
        elif schema.get("description_md"):
            expect(row.locator("[data-part=helper-text]")).to_contain_text(
                _plain(schema["description_md"])
            )
        else:
            pytest.fail(f"Param {key!r} has no description: the form shows the field unexplained")
        shown.append(label)
    print(f"trigger form shows all {len(shown)} Params with their descriptions: {shown}")
    shots.take(page, "trigger-form")

    # The DAG stays paused: untick "Unpause <dag> on trigger" first. (Airflow 3.3's form unpauses
    # the DAG on every submit while it is ticked, even on one that the API then refuses.)
    unpause_re = re.compile(r"Unpause .+ on trigger")
    unpause = dialog.get_by_label(unpause_re)
    expect(unpause, "the form of a paused DAG offers 'Unpause ... on trigger'").to_have_count(1)
    if unpause.is_checked():
        dialog.get_by_text(unpause_re).first.click()  # the input itself is visually hidden
    expect(unpause).not_to_be_checked()

    def still_paused(after: str) -> None:
        dag = api.get(f"/api/v2/dags/{DAG_ID}")
        assert dag["is_paused"] is True, f"{DAG_ID} was unpaused by {after}"

    # --- bad values ---
    submit = dialog.get_by_role("button", name="Trigger", exact=True)
    key, label = "epochs", label_of(params, "epochs")
    epochs_row = param_row(dialog, label)
    epochs = epochs_row.get_by_role("spinbutton")

    epochs.fill("-3")
    epochs.press("Tab")
    kept = settled_value(epochs)
    if kept == "-3":
        how, where, message = refused(dialog, epochs_row, submit, key, label)
        print(f"UI, {key} = -3: {how}; error {where}: {message!r}")
        still_paused("a refused submit")
    else:
        # Below the schema's minimum the number field corrects the value when it loses focus
        # (without a message): -3 can never be submitted.
        found = visible_error(dialog, epochs_row, key, label)
        print(f"UI, {key} = -3: the field shows {kept!r} after leaving it; error: {found}")
        assert kept != "-3"
    shots.take(page, "epochs-negative")

    epochs.fill("1.5")
    epochs.press("Tab")
    kept = settled_value(epochs)
    assert kept == "1.5", f"the field turned 1.5 into {kept!r}"
    how, where, message = refused(dialog, epochs_row, submit, key, label)
    print(f"UI, {key} = 1.5: {how}; error {where}:\n{message}")
    shots.take(page, "epochs-float-refused")
    assert api.get(f"/api/v2/dags/{DAG_ID}/dagRuns")["total_entries"] == 0, (
        "a run was created from a refused form"
    )
    still_paused("a refused submit")

    # --- a tiny run, the DAG left paused ---
    epochs.fill(str(EPOCHS))
    epochs.press("Tab")
    sample = param_row(dialog, label_of(params, "sample_size")).get_by_role("spinbutton")
    sample.fill(str(SAMPLE_SIZE))
    sample.press("Tab")
    param_row(dialog, label_of(params, "overrides")).locator("textarea").fill("\n".join(overrides))
    expect(unpause).not_to_be_checked()
    shots.take(page, "trigger-form-filled")
    dismiss_toasts(page)
    submit.click()
    expect(dialog).to_be_hidden(timeout=30_000)
    shots.take(page, "triggered")

    runs = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns")["dag_runs"]
    assert len(runs) == 1, runs
    run_id, conf = runs[0]["dag_run_id"], runs[0]["conf"]
    expected = {"epochs": EPOCHS, "sample_size": SAMPLE_SIZE, "overrides": overrides}
    assert {k: conf.get(k) for k in expected} == expected, f"form -> conf: {conf}"
    still_paused("the trigger")
    print(f"triggered {run_id} ({runs[0]['state']}, DAG still paused) with conf {conf}")

    # A paused DAG's runs are not scheduled: unpause it with the toggle in the DAG header.
    page.get_by_test_id("toggle-pause").first.click()
    wait_until(
        f"{DAG_ID} to be unpaused",
        lambda: api.get(f"/api/v2/dags/{DAG_ID}")["is_paused"] is False,
        15,
        stack,
        every=0.5,
    )
    # The DAG page refreshes itself every few seconds: leave it while the run takes the 2 cores
    # (the run is followed through the REST API).
    page.goto("about:blank")
    t_run = time.time()
    run = wait_for_run(stack, run_id, RUN_TIMEOUT_S)
    print(f"run {run['state']} in {time.time() - t_run:.0f}s after unpausing")
    assert run["state"] == "success", stack.task_log_tails(DAG_ID, run_id)

    # --- the summary task's log: gate decision and MLflow link ---
    quoted = urllib.parse.quote(run_id, safe="")
    # The run's task instance page opens on its log.
    page.goto(f"{stack.airflow_url}/dags/{DAG_ID}/runs/{quoted}/tasks/summary")
    mlflow_url_re = re.escape(stack.mlflow_url)
    expect(page.get_by_text(re.compile(r"MLflow run:")).first).to_be_visible(timeout=60_000)
    shots.take(page, "summary-log")
    log_text = page.locator("body").inner_text()
    m = re.search(
        r"(?P<family>\S+): (?P<model>\S+) v(?P<version>\d+) -> gate (?P<decision>[\w-]+), "
        r"(?P<outcome>PROMOTED to champion|not promoted)",
        log_text,
    )
    assert m, f"no gate decision line in the summary log:\n{log_text[-3000:]}"
    reasons = re.findall(r"^\s*reason: (.*)$", log_text, re.M)
    print(f"summary log: {m.group(0)}; reasons: {reasons}")
    assert m["outcome"] == "PROMOTED to champion", (
        f"first run on an empty registry not promoted: gate {m['decision']}, reasons {reasons}"
    )
    link_m = re.search(rf"MLflow run: ({mlflow_url_re}/\S+)", log_text)
    assert link_m, f"no MLflow run link to {stack.mlflow_url} in the summary log"
    mlflow_run_url = link_m.group(1)
    metrics = dict(re.findall(r"^\s*([\w@.]+) = (-?[\d.]+)$", log_text, re.M))
    assert metrics, "no metrics in the summary log"

    # --- follow the link to MLflow ---
    link = page.get_by_role("link", name=mlflow_run_url, exact=True).first
    expect(link).to_be_visible()
    if link.get_attribute("target") == "_blank":
        with context.expect_page() as new_page:
            link.click()
        mlflow_page = new_page.value
    else:
        link.click()
        mlflow_page = page
    mlflow_page.wait_for_url(re.compile(rf"^{mlflow_url_re}/"))
    metric = "macro_f1" if "macro_f1" in metrics else sorted(metrics)[0]
    metric_cell = mlflow_page.get_by_text(re.compile(rf"^(test_)?{re.escape(metric)}$")).first
    expect(metric_cell).to_be_visible(timeout=60_000)
    shots.take(mlflow_page, "mlflow-run")
    metric_row = mlflow_page.get_by_role("row").filter(has=metric_cell)
    values = re.findall(r"-?\d+\.\d+(?:e-?\d+)?", metric_row.first.inner_text())
    assert values and round(float(values[0]), 4) == float(metrics[metric]), (
        f"MLflow shows {metric_row.first.inner_text()!r}, the summary {metric} = {metrics[metric]}"
    )
    print(f"MLflow run page {mlflow_page.url}: {metric_cell.inner_text()} = {values[0]}")

    # --- the registered model: the champion alias on the version just trained ---
    mlflow_page.goto(f"{stack.mlflow_url}/#/models/{urllib.parse.quote(m['model'])}")
    version_link = mlflow_page.get_by_role("link", name=f"Version {m['version']}", exact=True)
    row = mlflow_page.get_by_role("row").filter(has=version_link)
    expect(row).to_have_count(1, timeout=60_000)
    expect(row).to_contain_text("champion")
    shots.take(mlflow_page, "mlflow-model-champion")
    print(f"MLflow model {m['model']}: version {m['version']} has the champion alias")
