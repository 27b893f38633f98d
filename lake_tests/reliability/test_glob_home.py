"""Glob characters in ``LAKE_HOME`` (issue 13, item 5): every path given to DuckDB or polars is literal,
so a lake at ``/x/g*b/lake`` never reads the lake at ``/x/glob/lake`` beside it."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from lake_resources.catalog.datasets import dataset_spec
from lake_resources.client import LakeClient
from lake_resources.settings import LakeSettings
from lake_resources.storage import Lake
from lake_tests.reliability.conftest import REPO_ROOT, child_env

TICKS = dataset_spec("ticks")
BARS = dataset_spec("bars_1m")
PART = TICKS.partition(symbol="EURUSD", date="2019-02-04")
LAKE_BIN = Path(sys.executable).parent / "lake"

#: (odd directory, the neighbour its glob would match)
PAIRS = {"star": ("g*b", "glob"), "class": ("[1]", "1"), "braces": ("{a,b}", "a"), "star-class": ("x[*]y", "x*y")}


@pytest.mark.data_loss
@pytest.mark.parametrize("pair", list(PAIRS))
def test_glob_characters_in_lake_home_never_mix_lakes(tmp_path, fixture_versions, pair):
    """Two lakes side by side, ``/x/<odd>/lake`` and the ``/x/<neighbour>/lake`` its glob matches, each
    with its own ticks (hot and cold) and bars (warm): ``LakeClient.read``, ``lake sql`` (API and CLI)
    and warm writes of the odd lake see exactly its own rows."""
    odd, neighbour = PAIRS[pair]
    frame = fixture_versions["old"]["frame"]
    lakes = {}
    for name, n in ((odd, 300), (neighbour, 500)):
        settings = LakeSettings(home=tmp_path / name / "lake")
        lake = Lake(settings)
        lake.write(TICKS, PART, frame.head(n))  # hot
        lake.write(TICKS, TICKS.partition(symbol="EURUSD", date="2019-02-05"),
                   frame.head(n).with_columns(ts=frame["ts"].head(n) + timedelta(days=1)),
                   tier="cold")
        bars = frame.head(n).select("ts", "symbol")
        lake.write(BARS, BARS.partition(symbol="EURUSD", date="2019-02-04"), bars)  # warm write
        lakes[name] = (settings, n)
    settings, n = lakes[odd]
    client = LakeClient(settings)
    assert client.read("ticks").height == 2 * n
    assert client.read("ticks", symbols="EURUSD", start="2019-02-05", end="2019-02-05").height == n
    assert client.read("bars_1m").height == n
    assert client.sql("select count(*) as n from ticks")["n"][0] == 2 * n
    assert client.sql("select count(*) as n from bars_1m")["n"][0] == n
    assert Lake(settings).verify(TICKS, PART, "hot")[0]
    proc = subprocess.run([str(LAKE_BIN), "sql", "--format", "csv", "select count(*) as n from ticks"],
                          env=child_env({"LAKE_HOME": str(settings.home)}), capture_output=True, text=True,
                          timeout=120, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["n", str(2 * n)]


def test_question_mark_in_lake_home_is_refused_with_a_clear_message(tmp_path):
    """A ``LAKE_HOME`` with ``?`` (DuckDB reads it as URL parameters of the warm file's path, so warm
    writes failed) is refused up front, with one message naming LAKE_HOME; nothing is created."""
    home = tmp_path / "a?c" / "lake"
    for build in (lambda: LakeSettings(home=home), lambda: LakeSettings.from_env({"LAKE_HOME": str(home)})):
        with pytest.raises(ValueError) as refused:
            Lake(build())
        assert "LAKE_HOME" in str(refused.value) and "'?'" in str(refused.value)
        assert len(str(refused.value).splitlines()) == 1
    assert not (tmp_path / "a?c").exists()
