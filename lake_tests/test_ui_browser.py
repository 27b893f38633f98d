"""The Dagster UI on a small real lake, driven in headless Chromium.

The fixture day (real Dukascopy files, 2019-02-04|EURUSD) is materialized in-process through
``raw_dukascopy -> ticks`` with their asset checks, into a fresh ``DAGSTER_HOME`` with the project's
``dagster.yaml``; then ``dagster-webserver`` serves that instance on a free loopback port and the
browser opens the asset graph, the ``ticks`` partitions page and its checks page. Screenshots go to
``lake_tests/_artifacts/`` (gitignored).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO_ROOT / "lake_tests" / "_artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PARTITION = "2019-02-04|EURUSD"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[0]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {timeout:.0f}s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory, datafeed_dir):
    """A lake and a Dagster instance holding one materialized partition of raw_dukascopy and ticks."""
    import dagster as dg

    from lake_assets.definitions import defs
    from lake_assets.operate import QUIET_RUN_CONFIG, lake_resources_for, quiet_dagster
    from lake_resources.settings import LakeSettings
    from lake_resources.storage import Lake

    quiet_dagster()
    root = tmp_path_factory.mktemp("ui")
    dagster_home = root / "dagster"
    dagster_home.mkdir()
    shutil.copyfile(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    settings = LakeSettings(home=root / "lake")
    resources = {**defs.resources, **lake_resources_for(settings, dukascopy_url=datafeed_dir.as_uri(),
                                                                  dukascopy_feed="datafeed")}
    job = dg.Definitions(
        assets=list(defs.assets), asset_checks=list(defs.asset_checks), resources=resources,
    ).resolve_implicit_global_asset_job_def()
    keys = [dg.AssetKey("raw_dukascopy"), dg.AssetKey("ticks")]
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        result = job.execute_in_process(
            instance=instance, partition_key=PARTITION, asset_selection=keys, run_config=QUIET_RUN_CONFIG,
        )
        assert result.success
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations() if e.asset_key == dg.AssetKey("ticks")}
    expected_checks = {ck.name for ck in defs.resolve_asset_graph().asset_check_keys if ck.asset_key == dg.AssetKey("ticks")}
    assert expected_checks, "no asset checks defined on ticks"
    assert set(checks) == expected_checks  # every check ran on the materialized partition
    rows = Lake(settings).read_partition("ticks", (("symbol", "EURUSD"), ("date", "2019-02-04"))).height
    return {"root": root, "dagster_home": dagster_home, "lake_home": settings.home_abs,
            "checks": checks, "ticks_rows": rows, "datafeed": datafeed_dir}


@pytest.fixture(scope="module")
def webserver(small_lake):
    port = free_port()
    log = small_lake["root"] / "webserver.log"
    env = {**os.environ, "DAGSTER_HOME": str(small_lake["dagster_home"]), "LAKE_HOME": str(small_lake["lake_home"]),
           "LAKE_DUKASCOPY_URL": small_lake["datafeed"].as_uri(),
           "LAKE_DUKASCOPY_FEED": "datafeed"}
    binary = str(Path(sys.executable).parent / "dagster-webserver")
    with open(log, "wb") as out:
        proc = subprocess.Popen([binary, "-h", "127.0.0.1", "-p", str(port), "-m", "lake_assets.definitions"],
                                cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/server_info", proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def page(webserver):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: scripts/test.sh installs Debian's chromium package")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(webserver + "/overview")
        try:  # a fresh instance greets with a one-time "join the community" dialog
            page.get_by_role("button", name="Skip").click(timeout=8_000)
        except Exception:
            pass
        yield page
        browser.close()


def test_asset_graph_shows_the_daily_graph(page, webserver):
    from lake_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    names = sorted(k.to_user_string() for k in graph.materializable_asset_keys
                   if graph.get(k).group_name in ("ingest", "canonical"))
    selection = urllib.parse.quote('group:"ingest" or group:"canonical"')
    page.goto(f"{webserver}/asset-groups~{selection}")
    page.get_by_role("button", name="settings", exact=True).click()
    page.get_by_role("menuitem").filter(has_text="Expand all groups").click()
    page.keyboard.press("Escape")
    for name in names:
        page.get_by_text(name, exact=True).first.wait_for(state="visible")
    page.wait_for_timeout(1500)  # let edges and statuses settle before the picture
    page.screenshot(path=str(ARTIFACTS / "ui_asset_graph.png"))
    text = page.inner_text("body")
    assert "ingest" in text and "canonical" in text
    missing = [n for n in names if n not in text]
    assert not missing, f"asset graph lacks {missing}"


def test_partitions_page_shows_the_materialized_partition(page, webserver, small_lake):
    page.goto(f"{webserver}/assets/ticks?view=partitions&partition={urllib.parse.quote(PARTITION)}")
    page.get_by_text("Materialized (1)").wait_for(state="visible")
    page.get_by_text(PARTITION, exact=True).first.wait_for(state="visible")
    page.get_by_text("dagster/row_count").first.wait_for(state="visible")
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / "ui_ticks_partitions.png"))
    text = page.inner_text("body")
    assert "Materialized (1)" in text and "Failed (0)" in text
    for symbol in ("EURUSD", "XAUUSD", "AAPL"):  # the symbol dimension is listed
        assert symbol in text
    # the materialization's metadata: the stored row count, read back from the lake independently
    assert str(small_lake["ticks_rows"]) in text


def test_checks_page_shows_every_check_result(page, webserver, small_lake):
    page.goto(f"{webserver}/assets/ticks?view=checks")
    checks = small_lake["checks"]
    for name in checks:
        page.get_by_text(name, exact=True).first.wait_for(state="visible")
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / "ui_ticks_checks.png"))
    text = page.inner_text("body")
    assert f"Checks ({len(checks)})" in text
    for name, passed in checks.items():
        # the list row of the check: the nearest element holding its name and a status word
        label = page.get_by_text(name, exact=True).first
        row = label.locator("xpath=ancestor::*[contains(., 'Succeeded') or contains(., 'Failed')][1]")
        words = row.inner_text().split()
        words = [w for i, w in enumerate(words) if i == 0 or w != words[i - 1]]  # the name is rendered twice
        assert words[:2] == [name, "Succeeded" if passed else "Failed"], f"check {name} shows {words[:4]}"
