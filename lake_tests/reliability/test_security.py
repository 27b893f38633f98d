"""Security: names validated at every boundary (no path traversal), no SQL pasted from user strings,
``lake sql`` read-only, credentials never shown, the UI on loopback, TLS endpoints verified."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from lake_resources.catalog.datasets import dataset_spec
from lake_resources.client import LakeClient
from lake_resources.settings import LakeSettings
from lake_resources.storage import Lake, LakeStorageError
from lake_tests.reliability.conftest import (
    REPO_ROOT,
    child_env,
    failure_messages,
    lake_resources_for,
    materialize,
)

TICKS = dataset_spec("ticks")
PART = TICKS.partition(symbol="EURUSD", date="2019-02-04")
LAKE_BIN = Path(sys.executable).parent / "lake"

#: Names that must never reach a path or a query.
HOSTILE = ["../etc", "..", "../../outside", "/etc/passwd", "EURUSD/../../x", "EUR\\USD", "EURUSD\x00", "eur usd",
           "", "EURUSD;DROP TABLE ticks", "EURUSD' OR '1'='1", "%2e%2e%2f", "~root", "a" * 200]


def _refused(fn, *args, **kwargs) -> str:
    """Call ``fn``; it must raise a validation error (a ``ValueError``); returns the message."""
    with pytest.raises(ValueError) as refused:
        fn(*args, **kwargs)
    return str(refused.value)


def _files_outside(root: Path, allowed: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and allowed not in p.parents]


@pytest.fixture
def nested_lake(tmp_path) -> tuple[Path, LakeSettings]:
    """A lake at ``tmp/a/b/lake``, so anything escaping it by ``..`` lands where the test can see it."""
    home = tmp_path / "a" / "b" / "lake"
    return tmp_path, LakeSettings(home=home)


def test_no_path_traversal_through_the_read_api(nested_lake, fixture_versions):
    """Hostile dataset names, symbols and dates given to ``LakeClient.read``/``partitions``/``sql``
    parameters are refused before any path or query is built."""
    root, settings = nested_lake
    lake = Lake(settings)
    lake.write(TICKS, PART, fixture_versions["old"]["frame"])
    client = LakeClient(lake=lake)
    for bad in HOSTILE:
        _refused(client.read, bad or "x/y")
        _refused(client.read, "ticks", symbols=[bad])
        _refused(client.partitions, "ticks", start=bad or "x")
    assert _files_outside(root, settings.home_abs) == []
    # A hostile value as a bound parameter is data, not SQL: it matches nothing and changes nothing.
    for bad in HOSTILE:
        assert client.sql("select count(*) as n from ticks where symbol = ?", [bad])["n"][0] == 0
    assert client.sql("select count(*) as n from ticks")["n"][0] == fixture_versions["old"]["rows"]


def test_no_path_traversal_through_writes_and_the_raw_zone(nested_lake, fixture_versions):
    """Hostile symbols, dates, dataset names, raw-zone sources and file names given to
    ``Lake.write``/``put_raw``/``get_raw`` are refused; nothing is written outside the lake."""
    root, settings = nested_lake
    lake = Lake(settings)
    df = fixture_versions["old"]["frame"].head(10)
    for bad in HOSTILE:
        _refused(lake.write, "ticks", (("symbol", bad), ("date", "2019-02-04")), df)
        _refused(lake.write, "ticks", (("symbol", "EURUSD"), ("date", bad)), df)
        _refused(lake.write, bad or "x/y", (("symbol", "EURUSD"), ("date", "2019-02-04")), df)
        _refused(lake.put_raw, bad, "EURUSD", "2019-02-04", "00h_ticks.bi5", b"x")
        _refused(lake.put_raw, "dukascopy", bad, "2019-02-04", "00h_ticks.bi5", b"x")
        _refused(lake.put_raw, "dukascopy", "EURUSD", "2019-02-04", bad, b"x")
        _refused(lake.get_raw, "dukascopy", "EURUSD", "2019-02-04", bad)
    _refused(lake.write, "backtest_runs", (("run", "../../x"),), pl.DataFrame({"a": [1]}))
    assert _files_outside(root, settings.home_abs) == []


def test_no_path_traversal_through_dagster_partition_keys(dagster_defs):
    """Hostile partition keys and dataset metadata reaching the IO manager are refused before they
    become a storage path (date x symbol keys, run-id keys, ``lake/dataset`` metadata)."""
    import dagster as dg

    from lake_assets.partitions import date_symbol_partitions, strategy_runs
    from lake_resources.dagster_io import LakeIOManager, partition_from_key

    for bad in HOSTILE:
        _refused(partition_from_key, TICKS, date_symbol_partitions, f"2019-02-04|{bad}")
        _refused(partition_from_key, TICKS, date_symbol_partitions, f"{bad}|EURUSD")
        _refused(partition_from_key, dataset_spec("backtest_runs"), strategy_runs, bad)
        _refused(LakeIOManager._spec, dg.AssetKey("ticks"), {"lake/dataset": bad or "x/y"})


def test_no_path_traversal_through_strategy_specs_vendor_files_and_sources(tmp_path):
    """Hostile strategy names (which become run ids and partition paths), vendor names, pull ids and
    Dukascopy symbols are refused at their boundaries."""
    from lake_resources.research.heuristics import parse_spec
    from lake_resources.sources.dukascopy.datafeed import DukascopySource
    from lake_resources.sources.vendor import LandingDirVendor, write_pull

    spec = json.loads((REPO_ROOT / "strategies" / "saw_tooth_v1.json").read_text())
    source = DukascopySource(tmp_path)
    for bad in HOSTILE:
        _refused(parse_spec, spec | {"name": bad})
        _refused(LandingDirVendor, tmp_path / "landing", bad or "../x")
        _refused(write_pull, tmp_path / "landing", b"{}", vendor="acme", feed="bars", symbol="AAPL", day="2019-02-04",
                 pull_id=bad or "../x")
        _refused(write_pull, tmp_path / "landing", b"{}", vendor="acme", feed="bars", symbol=bad, day="2019-02-04", pull_id="p1")
        _refused(source.fetch_day, bad, "2019-02-04")
    assert not (tmp_path / "landing").exists() or not any((tmp_path / "landing").rglob("*.json"))
    assert not any(p.is_file() for p in tmp_path.parent.rglob("outside"))


def test_no_path_traversal_through_replay_arguments(tmp_path, monkeypatch, capsys):
    """``lake replay`` with a hostile symbol, dataset or date exits 2 with a one-line error naming the
    bad value; nothing is read or written."""
    from lake_assets.cli import main

    monkeypatch.setenv("LAKE_HOME", str(tmp_path / "lake"))
    for argv in (["--symbols", "../../etc"], ["--symbols", "EURUSD", "--dataset", "../ticks"],
                 ["--symbols", "EURUSD", "--start", "../2019"]):
        args = {"--start": "2019-02-04", "--end": "2019-02-05", "--dataset": "bars_1m"}
        full = ["replay"] + argv + [x for k, v in args.items() if k not in argv for x in (k, v)]
        assert main(full) == 2
        err = capsys.readouterr().err
        assert err.startswith("lake replay: invalid") and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "lake").exists() or not any(p.is_file() for p in (tmp_path / "lake").rglob("*"))


# ---------------------------------------------------------------------------------------------
# lake sql is read-only
# ---------------------------------------------------------------------------------------------
WRITES = [
    "insert into warm.ticks select * from warm.ticks limit 1",
    "delete from warm.ticks",
    "update warm.ticks set bid = 0",
    "drop table warm.ticks",
    "create table warm.evil as select 1 as x",
    "delete from warm._lake_partitions",
    "attach '{warm}' as rw (READ_WRITE); insert into rw.ticks select * from rw.ticks limit 1",
]


@pytest.fixture
def warm_lake(tmp_path, fixture_versions) -> tuple[LakeSettings, dict]:
    settings = LakeSettings(home=tmp_path / "lake")
    lake = Lake(settings)
    lake.write(TICKS, PART, fixture_versions["old"]["frame"], tier="warm")
    return settings, _warm_state(settings)


def _warm_state(settings: LakeSettings) -> dict:
    import duckdb

    with duckdb.connect(str(settings.warm_path), read_only=True) as con:
        tables = sorted(r[0] for r in con.execute("select table_name from information_schema.tables").fetchall())
        manifests = con.execute("select * from _lake_partitions order by all").fetchall()
        rows = con.execute("select count(*), sum(bid) from ticks").fetchone()
    return {"tables": tables, "manifests": manifests, "rows": rows}


@pytest.mark.data_loss
@pytest.mark.parametrize("statement", WRITES, ids=["insert", "delete", "update", "drop", "create", "manifest", "attach-rw"])
def test_lake_sql_cannot_write_the_warm_database(warm_lake, statement):
    """``lake sql`` (``LakeClient.sql``) opens the warm database read-only: a write statement fails
    with a read-only error and the warm file is unchanged."""
    settings, before = warm_lake
    with pytest.raises(Exception) as refused:
        LakeClient(settings).sql(statement.format(warm=settings.warm_path))
    assert "read-only" in str(refused.value) or "already attached" in str(refused.value), refused.value
    assert _warm_state(settings) == before


@pytest.mark.data_loss
def test_lake_sql_cannot_write_the_warm_database_by_detaching_and_reattaching_it(warm_lake):
    """``lake sql`` cannot be talked into writing the warm database by detaching the read-only
    attachment and attaching the file again (read-write by default)."""
    settings, before = warm_lake
    statement = f"detach warm; attach '{settings.warm_path}' as w2; delete from w2.ticks"
    with contextlib.suppress(Exception):  # a refusal is fine: the point is that nothing changes
        LakeClient(settings).sql(statement)
    assert _warm_state(settings) == before


def test_lake_sql_cli_refuses_writes_with_a_clear_error(warm_lake):
    """``lake sql "insert into warm.…"`` exits non-zero with a one-line error saying the database is
    read-only (not a Python traceback), and the warm file is unchanged."""
    settings, before = warm_lake
    proc = subprocess.run([str(LAKE_BIN), "sql", WRITES[0]], env=_env({"LAKE_HOME": str(settings.home)}),
                          capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert proc.returncode != 0
    assert "read-only" in proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr[-1500:]
    assert _warm_state(settings) == before


def _env(extra: dict[str, str]) -> dict[str, str]:
    return child_env(extra)


# ---------------------------------------------------------------------------------------------
# Credentials never shown
# ---------------------------------------------------------------------------------------------
def _grep_tree(root: Path, needles: list[str]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path}: {n[:6]}…" for n in needles if n.encode() in data]
    return hits


def test_credentials_never_reach_logs_metadata_or_errors(tmp_path, own_s3, own_bucket_env, dagster_defs, datafeed_dir,
                                                        monkeypatch, capfd):
    """Credentials come from the environment (``dg.EnvVar``) and are never written anywhere: a
    successful and a failing materialization against S3 with distinctive keys leave no trace of them
    in the Dagster event log, run records, instance storage, console output or error messages."""
    import dagster as dg
    from dagster._serdes import serialize_value

    secrets = own_s3.secrets
    wrong_secret = "wrong-secret-" + own_s3.secret_key[::-1]
    needles = secrets + [wrong_secret]
    for key, value in own_bucket_env.items():
        monkeypatch.setenv(key, value)
    instance_dir = tmp_path / "dagster"
    instance_dir.mkdir()
    instance = dg.DagsterInstance.local_temp(tempdir=str(instance_dir))
    home = tmp_path / "lake"
    ok = materialize(dagster_defs, ["raw_dukascopy", "ticks"],
                     lake_resources_for(home, datafeed_dir, own_bucket_env, use_env_vars=True), instance=instance)
    assert ok.success, failure_messages(ok)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong_secret)
    failed = materialize(dagster_defs, ["raw_dukascopy"],
                         lake_resources_for(tmp_path / "lake2", datafeed_dir, own_bucket_env, use_env_vars=True),
                         instance=instance)
    assert not failed.success
    assert any("signature" in m.lower() or "denied" in m.lower() for m in failure_messages(failed))

    exposed = []
    for result in (ok, failed):
        run = instance.get_run_by_id(result.run_id)
        exposed.append(json.dumps(run.run_config, default=str) + json.dumps(run.tags))
        exposed += [serialize_value(entry) for entry in instance.all_logs(result.run_id)]
    exposed += failure_messages(failed)
    console = capfd.readouterr()
    exposed += [console.out, console.err]
    instance.dispose()
    leaks = [n[:6] + "…" for n in needles for text in exposed if n in text]
    assert leaks == []
    assert _grep_tree(instance_dir, needles) == []
    assert _grep_tree(home, needles) == []


def test_credentials_never_shown_by_lake_sql_or_lake_config(tmp_path, own_s3, own_bucket_env, fixture_versions):
    """``lake config -v`` and failing ``lake sql`` queries against S3 never print the S3 keys, and
    ``lake sql "select * from duckdb_secrets()"`` shows the secret redacted (stdout and stderr grepped)."""
    settings = LakeSettings.from_env({"LAKE_HOME": str(tmp_path / "lake"), **own_bucket_env})
    lake = Lake(settings)
    lake.ensure_bucket()
    lake.write(TICKS, PART, fixture_versions["old"]["frame"].head(100), tier="cold")
    env = _env({"LAKE_HOME": str(settings.home), **own_bucket_env})
    outputs = []
    for argv in (["config", "-v"],
                 ["sql", f"select * from read_parquet('s3://{settings.s3_bucket}/missing/part-0.parquet')"],
                 ["sql", "select * from no_such_dataset"],
                 ["sql", "--format", "json", "select * from duckdb_secrets()"]):
        proc = subprocess.run([str(LAKE_BIN), *argv], env=env, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
        outputs.append((argv, proc.returncode, proc.stdout + proc.stderr))
    assert outputs[1][1] != 0 and outputs[2][1] != 0  # the failing queries did fail
    assert "lake_s3" in outputs[3][2]  # the secret object is listed ...
    for argv, _rc, text in outputs:
        assert own_s3.secret_key not in text, f"lake {' '.join(argv)[:40]} printed the secret key"
    for argv, _rc, text in outputs[:3]:  # DuckDB's own secrets listing shows the key id, by design
        assert own_s3.access_key not in text, f"lake {' '.join(argv)[:40]} printed the access key"


def test_storage_errors_name_the_endpoint_but_never_the_keys(tmp_path, own_s3, own_bucket_env, fixture_versions):
    """An S3 error (wrong secret) raised by the lake names the tier and endpoint, never the keys."""
    env = own_bucket_env | {"AWS_SECRET_ACCESS_KEY": "wrong-" + own_s3.secret_key}
    lake = Lake(LakeSettings.from_env({"LAKE_HOME": str(tmp_path / "lake"), **env}))
    with pytest.raises(LakeStorageError) as failure:
        lake.write(TICKS, PART, fixture_versions["old"]["frame"].head(10), tier="cold")
    text = str(failure.value) + repr(failure.value) + repr(lake.settings)
    assert own_s3.endpoint in text
    for secret in own_s3.secrets + [env["AWS_SECRET_ACCESS_KEY"]]:
        assert secret not in text


# ---------------------------------------------------------------------------------------------
# The UI binds loopback
# ---------------------------------------------------------------------------------------------
def test_webserver_binds_loopback_unless_told_otherwise(tmp_path, monkeypatch):
    """``lake ui`` starts ``dagster dev -h 127.0.0.1`` by default (``--host`` changes it)."""
    import lake_assets.cli.ui as operate  # where run_ui starts dagster dev
    from lake_assets.cli import build_parser

    commands = []

    class Started:
        def __init__(self, cmd, **kwargs):
            commands.append(cmd)

        def wait(self, timeout=None):
            return 0

        def poll(self):
            return 0

        def send_signal(self, signum):
            pass

    monkeypatch.setenv("LAKE_HOME", str(tmp_path / "lake"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setattr(operate.subprocess, "Popen", Started)
    monkeypatch.setattr(operate.signal, "signal", lambda *args: None)  # keep the test process's handlers
    for argv, host in ((["ui"], "127.0.0.1"), (["ui", "--host", "0.0.0.0"], "0.0.0.0")):
        args = build_parser().parse_args(argv)
        assert args.fn(args) == 0
        cmd = commands[-1]
        assert cmd[1] == "dev" and cmd[cmd.index("-h") + 1] == host


# ---------------------------------------------------------------------------------------------
# TLS endpoints
# ---------------------------------------------------------------------------------------------
def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def tls_s3(tmp_path_factory):
    """A real S3 server (``weed mini``) serving HTTPS with a certificate from a test CA made here."""
    from lake_tests.reliability.conftest import SecretS3Server
    from lake_tests.s3server import _free_port

    certs = tmp_path_factory.mktemp("tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=quant-lake test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=certs)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1",
             cwd=certs)
    (certs / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                                   "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=certs)

    https_port = _free_port()

    class TlsS3Server(SecretS3Server):
        def start(self, timeout: float = 60):
            real_popen = subprocess.Popen

            def popen(cmd, *args, **kwargs):  # the same server, plus its HTTPS listener
                return real_popen(cmd + [f"-s3.cert.file={certs / 'server.pem'}", f"-s3.key.file={certs / 'server.key'}",
                                         f"-s3.port.https={https_port}"], *args, **kwargs)

            subprocess.Popen = popen
            try:
                return super().start(timeout)
            finally:
                subprocess.Popen = real_popen

    server = TlsS3Server(tmp_path_factory.mktemp("tls-s3")).start()
    server.https_endpoint = f"https://127.0.0.1:{https_port}"
    server.ca = certs / "ca.pem"
    yield server
    server.stop()


def _tls_settings(tmp_path, server, verify: str, bucket: str) -> LakeSettings:
    env = server.env(bucket) | {"LAKE_S3_ENDPOINT": server.https_endpoint, "LAKE_S3_VERIFY": verify,
                                "LAKE_HOME": str(tmp_path / "lake")}
    return LakeSettings.from_env(env)


@pytest.mark.parametrize("verify", ["ca-bundle", "false"])
def test_tls_s3_endpoint_works_for_every_engine(tmp_path, tls_s3, fixture_versions, verify):
    """Cold tier on an HTTPS S3 endpoint with a self-signed CA: with ``LAKE_S3_VERIFY`` set to the CA
    bundle (verified) or to ``false`` (test setups), writes (s3fs), reads (polars) and ``lake sql``
    (DuckDB httpfs) all work."""
    settings = _tls_settings(tmp_path, tls_s3, str(tls_s3.ca) if verify == "ca-bundle" else "false", f"tls-{verify}")
    lake = Lake(settings)
    lake.ensure_bucket()
    frame = fixture_versions["old"]["frame"].head(1000)
    lake.write(TICKS, PART, frame, tier="cold")
    assert lake.verify(TICKS, PART, "cold")[0]
    client = LakeClient(lake=lake)
    problems = {}
    try:
        assert client.read("ticks", symbols="EURUSD").equals(frame)
    except Exception as exc:  # noqa: BLE001 - collected so every engine is reported
        problems["polars (LakeClient.read)"] = str(exc)[:300]
    try:
        assert client.sql("select count(*) as n from ticks")["n"][0] == frame.height
    except Exception as exc:  # noqa: BLE001
        problems["DuckDB (LakeClient.sql)"] = str(exc)[:300]
    assert problems == {}


def test_tls_s3_endpoint_with_an_unknown_ca_is_refused(tmp_path, tls_s3, fixture_versions):
    """With verification on (the default) a certificate from an unknown CA is refused: the write fails
    with a certificate error naming the endpoint, and nothing is stored."""
    settings = _tls_settings(tmp_path, tls_s3, "true", "tls-default")
    lake = Lake(settings)
    with pytest.raises(LakeStorageError) as refused:
        lake.write(TICKS, PART, fixture_versions["old"]["frame"].head(10), tier="cold")
    assert tls_s3.https_endpoint in str(refused.value) and "certificate" in str(refused.value).lower()
    trusting = Lake(_tls_settings(tmp_path, tls_s3, str(tls_s3.ca), "tls-default"))
    assert not trusting.cold.fs.exists(f"{settings.s3_bucket}/lake/cold/ticks")


def test_tls_verify_option_reaches_every_engine():
    """``LAKE_S3_VERIFY`` (true / false / a CA bundle path) is passed to s3fs, polars and DuckDB."""
    import duckdb

    from lake_resources.storage.s3 import configure_duckdb_s3, polars_storage_options, s3fs_kwargs

    base = {"LAKE_S3_ENDPOINT": "https://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}
    seen = {}
    for verify in ("true", "false", "/etc/lake/ca.pem"):
        settings = LakeSettings.from_env(base | {"LAKE_S3_VERIFY": verify})
        con = duckdb.connect()
        configure_duckdb_s3(con, settings)
        setting = lambda name: con.execute(f"select current_setting('{name}')").fetchone()[0]  # noqa: E731
        seen[verify] = (s3fs_kwargs(settings)["client_kwargs"]["verify"],
                        polars_storage_options(settings).get("aws_allow_invalid_certificates", "false"),
                        setting("enable_curl_server_cert_verification"), setting("ca_cert_file"))
        con.close()
    assert seen["true"] == (True, "false", True, "")
    assert seen["false"] == (False, "true", False, "")
    assert seen["/etc/lake/ca.pem"] == ("/etc/lake/ca.pem", "false", True, "/etc/lake/ca.pem")
