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

    from lake_assets.cli.common import QUIET_RUN_CONFIG, lake_resources_for, quiet_dagster
    from lake_assets.definitions import defs
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
def browser():
    """One headless Chromium for the module (Playwright's sync API allows one instance at a time)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: scripts/test.sh installs Debian's chromium package")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser, base: str):
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(base + "/overview")
    try:  # a fresh instance greets with a one-time "join the community" dialog
        page.get_by_role("button", name="Skip").click(timeout=8_000)
    except Exception:
        pass
    return page


@pytest.fixture(scope="module")
def page(browser, webserver):
    page = open_page(browser, webserver)
    yield page
    page.close()


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


# ------------------------------------------------------------------------------------------------
# Plots, inline equity curves, previews, warning checks and the backfill page (issue 13, item 18)
# ------------------------------------------------------------------------------------------------
UI_DAYS = ("2019-02-04", "2019-02-05")


def _datafeed_with_a_repeated_tick(src_day: Path, root: Path) -> Path:
    """The real fixture day filed under both ``UI_DAYS``; the first day's 10h file repeats one tick
    exactly (a WARN of ``ticks:no_duplicates``), the second day is untouched."""
    import lzma

    for n, day in enumerate(UI_DAYS):
        y, m, d = (int(x) for x in day.split("-"))
        dst = root / "EURUSD" / f"{y:04d}" / f"{m - 1:02d}" / f"{d:02d}"
        dst.mkdir(parents=True, exist_ok=True)
        for h in range(24):
            data = (src_day / f"{h:02d}h_ticks.bi5").read_bytes()
            if n == 0 and h == 10:
                records = lzma.decompress(data)
                data = lzma.compress(records[:20] + records, format=lzma.FORMAT_ALONE)
            (dst / f"{h:02d}h_ticks.bi5").write_bytes(data)
    return root


@pytest.fixture(scope="module")
def research_ui(tmp_path_factory, datafeed_dir):
    """A lake with two days of EURUSD ticks and bars (one day warns of a repeated tick) and two
    strategy runs (Donchian breakout, MA crossover) backtested in one range run; a backfill created
    as the UI creates one; a webserver on its instance."""
    import dagster as dg

    from lake_assets.cli.backfill import run_backfill
    from lake_assets.cli.common import QUIET_RUN_CONFIG, lake_resources_for, quiet_dagster
    from lake_assets.definitions import defs
    from lake_assets.research.assets import BACKTEST_OUTPUTS, register_strategy_runs
    from lake_resources.settings import LakeSettings

    quiet_dagster()
    root = tmp_path_factory.mktemp("ui-research")
    dagster_home = root / "dagster"
    dagster_home.mkdir()
    shutil.copyfile(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    feed = _datafeed_with_a_repeated_tick(datafeed_dir / "EURUSD/2019/01/04", root / "datafeed")
    specs = root / "strategies"
    specs.mkdir()
    (specs / "donchian.json").write_text('{"name": "donchian", "version": 1, "kind": "breakout", '
                                         '"params": {"window": 60, "exit_window": 30}}')
    (specs / "cross.json").write_text('{"name": "cross", "version": 1, "kind": "ma_crossover", '
                                      '"params": {"fast": 5, "slow": 30}}')
    settings = LakeSettings(home=root / "lake", symbols=("EURUSD", "XAUUSD", "AAPL"))
    resources = {**defs.resources, **lake_resources_for(settings, dukascopy_url=feed.as_uri(),
                                                                  dukascopy_feed="datafeed")}
    job = dg.Definitions(assets=list(defs.assets), asset_checks=list(defs.asset_checks),
                         resources=resources).resolve_implicit_global_asset_job_def()
    env = {"DAGSTER_HOME": str(dagster_home), "LAKE_HOME": str(settings.home_abs), "LAKE_STRATEGIES": str(specs),
           "LAKE_DUKASCOPY_URL": feed.as_uri(), "LAKE_DUKASCOPY_FEED": "datafeed", "LAKE_SYMBOLS": "EURUSD,XAUUSD,AAPL"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            daily = job.execute_in_process(
                instance=instance, run_config=QUIET_RUN_CONFIG,
                asset_selection=[dg.AssetKey(k) for k in ("raw_dukascopy", "ticks", "bars_1m")],
                tags={"dagster/asset_partition_range_start": f"{UI_DAYS[0]}|EURUSD",
                      "dagster/asset_partition_range_end": f"{UI_DAYS[-1]}|EURUSD"},
            )
            assert daily.success
            warned = [e for e in daily.get_asset_check_evaluations()
                      if e.check_name == "no_duplicates" and e.asset_key == dg.AssetKey("ticks") and not e.passed]
            assert [e.partition for e in warned] == [f"{UI_DAYS[0]}|EURUSD"]
            runs = register_strategy_runs(instance, specs)
            order = instance.get_dynamic_partitions("strategy_runs")
            first, last = sorted(runs, key=order.index)
            assert job.execute_in_process(instance=instance, asset_selection=[dg.AssetKey("heuristic_defs")],
                                          run_config={**QUIET_RUN_CONFIG, "ops": {"heuristic_defs": {
                                              "config": {"directory": str(specs)}}}}).success
            backtests = job.execute_in_process(
                instance=instance, asset_selection=[dg.AssetKey(k) for k in BACKTEST_OUTPUTS],
                run_config={**QUIET_RUN_CONFIG, "ops": {"backtests": {"config": {"start": UI_DAYS[0], "end": UI_DAYS[-1]}}}},
                tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
            )
            assert backtests.success
        lines: list[str] = []
        assert run_backfill(settings, start=UI_DAYS[0], end=UI_DAYS[-1], symbols="EURUSD", selection="bars_5m",
                            wait=False, say=lines.append) == 0
        backfill_id = lines[0].split()[1].rstrip(":")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    by_name = {r.split(".")[0]: r for r in runs}
    return {"root": root, "env": env, "runs": by_name, "backfill_id": backfill_id}


@pytest.fixture(scope="module")
def research_page(browser, research_ui):
    port = free_port()
    log = research_ui["root"] / "webserver.log"
    binary = str(Path(sys.executable).parent / "dagster-webserver")
    with open(log, "wb") as out:
        proc = subprocess.Popen([binary, "-h", "127.0.0.1", "-p", str(port), "-m", "lake_assets.definitions"],
                                cwd=REPO_ROOT, env={**os.environ, **research_ui["env"]}, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/server_info", proc, log)
        page = open_page(browser, f"http://127.0.0.1:{port}")
        yield page, f"http://127.0.0.1:{port}"
        page.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.mark.parametrize("asset", ["ticks", "bars_1m"])
def test_row_counts_are_plotted_one_plot_per_symbol(research_page, asset):
    """The asset's metadata plots (Overview > Metadata > Plots > Events) show the row count of each
    partition in a plot of its own symbol (``rows/EURUSD``), and no run totals posing as a partition's
    values (``run/rows``)."""
    page, base = research_page
    page.goto(f"{base}/assets/{asset}?view=overview")
    page.get_by_role("button", name="Plots").click()
    page.get_by_role("button", name="Events").click()
    plot = page.get_by_text("rows/EURUSD", exact=True).first
    plot.wait_for(state="visible")
    plot.scroll_into_view_if_needed()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(ARTIFACTS / f"ui_{asset}_row_count_plots.png"))
    text = page.inner_text("body")
    assert "dagster/row_count" in text and "rows/EURUSD" in text
    assert "run/rows" not in text and "run/bytes" not in text


def test_equity_curve_is_an_inline_image(research_page, research_ui):
    """A backtest run's equity curve shows as an image in the event's metadata itself (not only behind
    "[Show Markdown]"), with each symbol's final return beside it."""
    page, base = research_page
    run = research_ui["runs"]["cross"]
    page.goto(f"{base}/assets/backtest_equity?view=events")
    page.get_by_text(run, exact=True).first.click()
    image = page.locator("img[src^='data:image/svg+xml']").first
    image.wait_for(state="visible")
    box = image.bounding_box()
    assert box and box["width"] > 100 and box["height"] > 30
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "ui_backtest_equity_inline.png"))
    assert "return on capital: EURUSD" in page.inner_text("body")


@pytest.mark.parametrize("name", ["cross", "donchian"])
def test_each_run_preview_shows_its_own_rows(research_page, research_ui, name):
    """The ``preview`` of each strategy run's ``backtest_runs`` partition holds that run's rows (the
    MA crossover and Donchian runs showed the first run's rows)."""
    page, base = research_page
    run = research_ui["runs"][name]
    other = next(r for n, r in research_ui["runs"].items() if n != name)
    page.goto(f"{base}/assets/backtest_runs?view=events")
    page.get_by_text(run, exact=True).first.click()
    row = page.locator("tr").filter(has=page.get_by_text("preview", exact=True)).first
    row.get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for(state="visible")
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / f"ui_backtest_runs_preview_{name}.png"))
    text = dialog.inner_text()
    page.keyboard.press("Escape")
    assert run in text and other not in text


def test_warning_check_list_and_detail_say_what_they_cover(research_page):
    """``ticks:no_duplicates`` warned on one day of a two-day run and passed on the other. The checks
    list sums up every partition: "Failed" (with a warning icon). The detail's "Latest execution" is the
    check on the asset's latest materialization, which in a range run may be either day (Dagster emits
    a range run's materializations in no fixed order): it names its partition and shows that
    partition's own result, never another's. (The issue's "Failed in the list, Passed in the detail" is
    this: two different partitions; the README says so.)"""
    page, base = research_page
    page.goto(f"{base}/assets/ticks?view=checks")
    page.get_by_text("no_duplicates", exact=True).first.click()
    page.get_by_text("Latest execution").first.wait_for(state="visible")
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / "ui_ticks_warning_check.png"))
    label = page.get_by_text("no_duplicates", exact=True).first
    row = label.locator("xpath=ancestor::*[contains(., 'Succeeded') or contains(., 'Failed')][1]")
    assert "Failed" in row.inner_text(), row.inner_text()
    detail = page.inner_text("body").split("Latest execution", 1)[1].split("Metadata", 1)[0]
    shown = [d for d in UI_DAYS if f"{d}|EURUSD" in detail]
    assert len(shown) == 1, detail
    expected = "Failed" if shown[0] == UI_DAYS[0] else "Passed"
    assert expected in detail and ({"Failed", "Passed"} - {expected}).pop() not in detail, detail


def test_backfill_overview_lists_its_assets(research_page, research_ui):
    """A backfill created as the UI creates one (``lake backfill --no-wait``): its Overview tab lists
    the asset and its targeted partitions."""
    page, base = research_page
    page.goto(f"{base}/runs/b/{research_ui['backfill_id']}?tab=overview")
    page.get_by_text("Partitions targeted").first.wait_for(state="visible")
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / "ui_backfill_overview.png"))
    text = page.inner_text("body")
    assert "bars_5m" in text and f"{UI_DAYS[0]}|EURUSD" in text
