"""Bad input: symbols that cannot give data (issue 13, item 12). An unknown instrument is an error with
one line (``LakeValidationError``; the CLI exits 2), never a silent empty result; a catalogue instrument
outside ``LAKE_SYMBOLS`` says how to add it; symbols configured or stored in the lake read as before.

Runs on a real lake holding the real EURUSD day of ticks (the fixture), read by ``LakeClient`` and by
``lake replay`` through the CLI's ``main``.
"""

from __future__ import annotations

import polars as pl
import pytest

from lake_assets.cli import main
from lake_resources.catalog.validation import LakeValidationError
from lake_resources.client import LakeClient
from lake_resources.settings import LakeSettings
from lake_resources.storage import Lake

PART = (("symbol", "EURUSD"), ("date", "2019-02-04"))


@pytest.fixture
def lake_home(tmp_path, fixture_versions, monkeypatch):
    home = tmp_path / "lake"
    lake = Lake(LakeSettings(home=home))
    frame = fixture_versions["old"]["frame"]
    lake.write("ticks", PART, frame)
    # a symbol no catalogue lists, stored in the lake (as a vendor connector with its own symbols would)
    lake.write("ticks", (("symbol", "ZZVEND"), ("date", "2019-02-04")), frame.with_columns(symbol=pl.lit("ZZVEND")))
    for name in ("LAKE_SYMBOLS", "LAKE_S3_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LAKE_HOME", str(home))
    return home


def _replay(symbols: str) -> list[str]:
    return ["replay", "--symbols", symbols, "--dataset", "ticks", "--start", "2019-02-04", "--end", "2019-02-05",
            "--as-fast-as-possible"]


def test_unknown_symbol_read_is_an_error_not_an_empty_frame(lake_home):
    """``LakeClient.read('ticks', symbols='FOOBAR')``: a LakeValidationError naming the symbol and the
    catalogue, not 0 rows."""
    client = LakeClient(LakeSettings(home=lake_home))
    with pytest.raises(LakeValidationError, match=r"unknown instrument\(s\) FOOBAR: not in the instrument catalogue"):
        client.read("ticks", symbols="FOOBAR")
    with pytest.raises(LakeValidationError, match="FOOBAR"):
        client.read("bars_1m", symbols=["EURUSD", "foobar"], start="2019-02-04", end="2019-02-05")


def test_unknown_symbol_replay_exits_2_with_one_line(lake_home, capsys):
    """``lake replay --symbols FOOBAR``: exit status 2 and one line on stderr, nothing on stdout."""
    assert main(_replay("EURUSD,FOOBAR")) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith("lake replay: unknown instrument(s) FOOBAR")


def test_catalogue_symbol_outside_lake_symbols_says_how_to_add_it(lake_home, capsys):
    """GBPJPY, a real Dukascopy instrument neither in LAKE_SYMBOLS nor stored: the error says so and gives
    the LAKE_SYMBOLS value and command that would add it (CLI: exit 2, one line)."""
    with pytest.raises(LakeValidationError) as caught:
        LakeClient(LakeSettings(home=lake_home)).read("ticks", symbols="GBPJPY")
    message = str(caught.value)
    assert "GBPJPY is not ingested by this lake (LAKE_SYMBOLS=EURUSD,GBPUSD,USDJPY,XAUUSD,BTCUSD,AAPL,MSFT, default)" in message
    assert message.endswith("to add it: lake config --set LAKE_SYMBOLS=EURUSD,GBPUSD,USDJPY,XAUUSD,BTCUSD,AAPL,MSFT,GBPJPY")
    assert main(_replay("GBPJPY")) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "LAKE_SYMBOLS=" in err


def test_configured_and_stored_symbols_still_read(lake_home, fixture_versions, capsys):
    """Not a false alarm: configured symbols (EURUSD with data, AAPL, a vendor symbol, with none in this
    range) and a symbol stored in the lake but in no catalogue (ZZVEND) read as before."""
    client = LakeClient(LakeSettings(home=lake_home))
    assert client.read("ticks", symbols="EURUSD").height == fixture_versions["old"]["rows"]
    assert client.read("ticks", symbols="ZZVEND").height == fixture_versions["old"]["rows"]
    assert client.read("bars_1m", symbols=["AAPL", "MSFT"]).height == 0
    assert main(_replay("EURUSD")) == 0
    assert len(capsys.readouterr().out.splitlines()) == fixture_versions["old"]["rows"]
