"""The team deployment (docker-compose.yml + deploy/): it cannot run here (no Docker), so these tests
read it the way Compose and Dagster would and check that every service, port and variable the code
expects is there, that the least-privilege MinIO set-up is complete, and that nothing secret or
wide-open is the default."""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from lake_resources.settings import ENV_VARS

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE = REPO_ROOT / "docker-compose.yml"
DEPLOY = REPO_ROOT / "deploy"
SERVICES = {"minio", "minio-init", "postgres", "code-location", "webserver", "daemon", "data-server"}
DAGSTER_SERVICES = ("code-location", "webserver", "daemon")
#: Variables of the settings registry deliberately not set in a deployment, with the reason.
NOT_DEPLOYED = {"LAKE_AS_OF": "test/replay override of 'now'; a deployment runs on the clock",
                "LAKE_SERVE_TOKENS": "read by `lake serve` (the data-server service), not by the pipelines",
                "LAKE_SERVE_TOKEN_FILE": "the data-server takes its tokens from LAKE_SERVE_TOKENS in .env"}
#: Compose-style interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}.
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(value, env: dict[str, str], missing: list[str]):
    """Resolve a Compose value the way ``docker compose config`` does (enough for this file)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, missing) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        have = env.get(name)
        if op in (":-", "-"):
            return have if have or (op == "-" and have is not None) else arg
        if op in (":?", "?"):
            if not have:
                missing.append(f"{name} ({arg})")
                return ""
            return have
        if have is None:
            missing.append(name)
            return ""
        return have

    return _VAR.sub(sub, value.replace("$$", "\0")).replace("\0", "$")


def env_example() -> dict[str, str]:
    out = {}
    for line in (DEPLOY / "env.example").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


@pytest.fixture(scope="module")
def raw_compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())  # YAML merge keys (<<) resolved like Compose does


@pytest.fixture(scope="module")
def compose(raw_compose) -> dict:
    """The compose file as deployed with deploy/env.example as .env (the documented first step)."""
    missing: list[str] = []
    resolved = interpolate(raw_compose, env_example(), missing)
    assert not missing, f"variables required by docker-compose.yml but not in deploy/env.example: {missing}"
    return resolved


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def published(service: dict) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of each published port."""
    out = []
    for spec in service.get("ports") or []:
        host, hport, cport = str(spec).rsplit(":", 2) if str(spec).count(":") == 2 else ("0.0.0.0", *str(spec).split(":"))
        out.append((host, int(hport), int(cport)))
    return out


def test_every_service_is_defined_and_wired(compose):
    services = compose["services"]
    assert SERVICES <= set(services), f"missing services: {SERVICES - set(services)}"
    # the Dagster services run the project image built from deploy/Dockerfile
    for name in DAGSTER_SERVICES:
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        assert services[name]["image"] == services["code-location"]["image"]
    deps = {name: set(services[name].get("depends_on") or {}) for name in services}
    assert {"postgres", "minio-init"} <= deps["code-location"]
    assert services["code-location"]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    assert {"postgres", "code-location"} <= deps["webserver"] and {"postgres", "code-location"} <= deps["daemon"]
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"
    assert services["minio-init"]["restart"] == "no"  # one-shot job
    for name in ("minio", "postgres"):
        assert services[name].get("healthcheck"), f"{name} needs a healthcheck for depends_on: service_healthy"
    # named volumes exist for every named mount
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for mount in service.get("volumes") or []:
            source = str(mount).split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts undeclared volume {source}"
            else:
                assert (REPO_ROOT / source).exists(), f"{name} mounts {source}, which is not in the repo"


def test_code_location_has_every_lake_variable(compose):
    env = environment(compose["services"]["code-location"])
    expected = set(ENV_VARS) - set(NOT_DEPLOYED) | {"LAKE_SCHEDULES", "LAKE_AUTOMATION"}
    assert not expected - set(env), f"code-location lacks {sorted(expected - set(env))}"
    assert not set(NOT_DEPLOYED) & set(env), f"{sorted(set(NOT_DEPLOYED) & set(env))} must not be set in the code location"
    # the endpoint names the minio service and the port MinIO serves S3 on inside the network
    endpoint = env["LAKE_S3_ENDPOINT"]
    assert re.fullmatch(r"http://minio:(\d+)", endpoint), endpoint
    minio_ports = {c for _, _, c in published(compose["services"]["minio"])}
    assert int(endpoint.rsplit(":", 1)[1]) in minio_ports
    # the pipelines write with the read-write user of minio-init, on the same bucket
    init_env = environment(compose["services"]["minio-init"])
    assert env["AWS_ACCESS_KEY_ID"] == init_env["LAKE_RW_ACCESS_KEY"]
    assert env["AWS_SECRET_ACCESS_KEY"] == init_env["LAKE_RW_SECRET_KEY"]
    assert env["LAKE_S3_BUCKET"] == init_env["LAKE_S3_BUCKET"]
    # the settings the code reads accept these values
    from lake_resources.settings import LakeSettings

    settings = LakeSettings.from_env(env)
    assert settings.cold_is_s3 and settings.cold_root == f"s3://{env['LAKE_S3_BUCKET']}/{env['LAKE_S3_PREFIX']}/cold"
    assert set(settings.symbols) >= {"EURUSD", "XAUUSD", "AAPL"}
    # paths inside the image exist in the repo (the Dockerfile copies the repo to /opt/quant-lake)
    for key in ("LAKE_LIFECYCLE", "LAKE_STRATEGIES"):
        assert env[key].startswith("/opt/quant-lake/")
        assert (REPO_ROOT / env[key].removeprefix("/opt/quant-lake/")).exists(), env[key]
    assert env["LAKE_SCHEDULES"] == "running", "the team deployment runs the daily ingest schedule"


def test_dagster_instance_variant_is_valid_and_fed_by_the_environment(compose, monkeypatch):
    from dagster._core.instance.config import dagster_instance_config

    text = (DEPLOY / "dagster.yaml").read_text()
    referenced = set(re.findall(r"env:\s*([A-Z_][A-Z0-9_]*)", text))
    assert {"DAGSTER_POSTGRES_HOST", "DAGSTER_POSTGRES_PASSWORD"} <= referenced
    for name in DAGSTER_SERVICES:
        env = environment(compose["services"][name])
        assert not referenced - set(env), f"{name} lacks {sorted(referenced - set(env))} used by deploy/dagster.yaml"
        assert env["DAGSTER_HOME"] == "/opt/dagster/home"
        # the host is the postgres service, with the credentials postgres is started with
        pg = environment(compose["services"]["postgres"])
        assert env["DAGSTER_POSTGRES_HOST"] == "postgres"
        assert (env["DAGSTER_POSTGRES_USER"], env["DAGSTER_POSTGRES_PASSWORD"], env["DAGSTER_POSTGRES_DB"]) == (
            pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"])
    for key, value in environment(compose["services"]["webserver"]).items():
        monkeypatch.setenv(key, value)
    config, _ = dagster_instance_config(str(DEPLOY))  # Dagster's own schema validation
    assert set(config["storage"]) == {"postgres"}
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    # same pools as the embedded instance: one DuckDB writer at a time
    embedded = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    assert config["concurrency"]["pools"] == embedded["concurrency"]["pools"]
    # both free the pool slots of a run that ended however it ended (a SIGKILLed worker keeps its slot)
    assert config["run_monitoring"] == embedded["run_monitoring"]
    assert config["run_monitoring"]["enabled"] and config["run_monitoring"]["free_slots_after_run_end_seconds"] > 0
    # step logs go to a path the code location writes and the webserver reads
    log_dir = config["compute_logs"]["config"]["base_dir"]
    for name in ("code-location", "webserver"):
        mounts = [str(m) for m in compose["services"][name]["volumes"]]
        assert any(m.split(":")[1] == log_dir for m in mounts), f"{name} does not mount {log_dir}"
    # the Dockerfile puts this file into DAGSTER_HOME
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"COPY deploy/dagster\.yaml \$\{DAGSTER_HOME\}/dagster\.yaml", dockerfile)
    assert "DAGSTER_HOME=/opt/dagster/home" in dockerfile


def test_webserver_and_daemon_load_the_code_location_over_grpc(compose):
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    grpc = entry["grpc_server"]
    code = compose["services"]["code-location"]
    command = code["command"]
    assert command[:3] == ["dagster", "code-server", "start"]
    assert int(command[command.index("-p") + 1]) == grpc["port"] and str(grpc["port"]) in code["expose"]
    assert command[command.index("-h") + 1] == "0.0.0.0"  # reachable from the other containers
    assert command[command.index("-m") + 1] == "lake_assets.definitions"
    assert grpc["host"] == "code-location"
    assert command[command.index("--location-name") + 1] == grpc["location_name"]
    for name in ("webserver", "daemon"):
        cmd = compose["services"][name]["command"]
        path = cmd[cmd.index("-w") + 1]
        assert path == "/opt/quant-lake/deploy/workspace.yaml"
    assert "COPY deploy/workspace.yaml ./deploy/workspace.yaml" in (DEPLOY / "Dockerfile").read_text()
    assert compose["services"]["webserver"]["command"][0] == "dagster-webserver"
    assert compose["services"]["daemon"]["command"][:2] == ["dagster-daemon", "run"]


def test_ports_are_loopback_unless_told_otherwise(compose, raw_compose):
    services = compose["services"]
    web = published(services["webserver"])
    assert [(h, c) for h, _, c in web] == [("127.0.0.1", 3000)]
    assert all(h == "127.0.0.1" for h, _, _ in published(services["minio"]))
    assert {c for _, _, c in published(services["minio"])} == {9000, 9001}
    assert [(h, c) for h, _, c in published(services["data-server"])] == [("127.0.0.1", 8787)]
    for name in ("postgres", "code-location", "daemon", "minio-init"):
        assert not services[name].get("ports"), f"{name} must not be published on the host"
    # binding to the team's network is an explicit, documented choice
    assert "${LAKE_UI_BIND:-127.0.0.1}:3000:3000" in raw_compose["services"]["webserver"]["ports"]
    overridden = interpolate(raw_compose, {**env_example(), "LAKE_UI_BIND": "10.0.0.5"}, [])
    assert published(overridden["services"]["webserver"])[0][0] == "10.0.0.5"


def test_secrets_have_no_defaults_and_reach_only_who_needs_them(raw_compose, compose):
    text = COMPOSE.read_text()
    for secret in ("MINIO_ROOT_PASSWORD", "LAKE_RO_SECRET_KEY", "LAKE_RW_SECRET_KEY", "DAGSTER_POSTGRES_PASSWORD",
                   "LAKE_SERVE_TOKENS"):
        uses = re.findall(r"\$\{" + secret + r"(:?[-?])?", text)
        assert uses and all(op in (":?", "?") for op in uses), f"{secret} must be required (${{{secret}:?...}}), never defaulted"
    holders = {name for name, s in compose["services"].items() if "AWS_SECRET_ACCESS_KEY" in environment(s)}
    assert holders == {"code-location", "data-server"}
    # the data server reads with the read-only user; only the code location writes
    init_env = environment(compose["services"]["minio-init"])
    server_env = environment(compose["services"]["data-server"])
    assert (server_env["AWS_ACCESS_KEY_ID"], server_env["AWS_SECRET_ACCESS_KEY"]) == (
        init_env["LAKE_RO_ACCESS_KEY"], init_env["LAKE_RO_SECRET_KEY"])
    assert not any("MINIO_ROOT" in k for k in environment(compose["services"]["code-location"]))


def test_minio_users_have_least_privilege():
    ro = json.loads((DEPLOY / "minio" / "lake-readonly.json").read_text())
    rw = json.loads((DEPLOY / "minio" / "lake-readwrite.json").read_text())

    def grants(policy):
        out = []
        for st in policy["Statement"]:
            assert st["Effect"] == "Allow"
            for action in st["Action"]:
                for resource in st["Resource"]:
                    out.append((action, resource))
        return out

    for policy in (ro, rw):
        for action, resource in grants(policy):
            assert resource in ("arn:aws:s3:::quant-lake", "arn:aws:s3:::quant-lake/*"), resource
            assert "*" not in action and not action.startswith(("admin:", "s3:CreateBucket", "s3:DeleteBucket", "s3:PutBucket"))
    ro_actions = {a for a, _ in grants(ro)}
    assert ro_actions == {"s3:GetBucketLocation", "s3:ListBucket", "s3:GetObject"}
    rw_actions = {a for a, _ in grants(rw)}
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"} <= rw_actions
    # object actions only on objects, bucket actions only on the bucket
    for action, resource in grants(rw) + grants(ro):
        assert resource.endswith("/*") == (action not in ("s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"))


def test_minio_init_creates_bucket_users_and_policies(compose):
    init = compose["services"]["minio-init"]
    assert init["entrypoint"] == ["/bin/sh", "/deploy/minio/init.sh"]
    assert "./deploy/minio:/deploy/minio:ro" in init["volumes"]
    script = (DEPLOY / "minio" / "init.sh").read_text()
    subprocess.run(["sh", "-n", str(DEPLOY / "minio" / "init.sh")], check=True)
    env = environment(init)
    for name in re.findall(r"\$\{([A-Z_][A-Z0-9_]*):\?\}", script):
        assert name in env, f"init.sh requires {name}, minio-init does not set it"
    assert 'mc mb --ignore-existing "lake/$LAKE_S3_BUCKET"' in script
    assert "--with-lock" in script and "mc version enable" in script
    for access in ("readonly", "readwrite"):
        assert "lake-$access.json" in script or f"lake-{access}.json" in script
    assert re.search(r"mc admin policy attach lake lake-readonly --user \"\$LAKE_RO_ACCESS_KEY\"", script)
    assert re.search(r"mc admin policy attach lake lake-readwrite --user \"\$LAKE_RW_ACCESS_KEY\"", script)
    assert env["LAKE_RO_ACCESS_KEY"] != env["LAKE_RW_ACCESS_KEY"]


def test_image_pins_match_the_project():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    lib_pin = re.search(r'"dagster-aws==([0-9.]+)"', pyproject).group(1)  # dagster libraries share one version
    assert f"dagster-postgres=={lib_pin}" in dockerfile
    assert re.search(r"^FROM python:3\.11", dockerfile, re.M), "same Python as requires-python"
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M), "the image runs unprivileged"
    ignore = [line for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert ignore[0] == "*", "the build context sends only what the image needs (not .venv, .lake, .env)"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for line in re.findall(r"^COPY (.+)$", dockerfile, re.M):
        *sources, _dest = line.split()
        for source in sources:
            source = source.rstrip("/")
            assert (REPO_ROOT / source).exists(), f"Dockerfile copies {source}, not in the repo"
            assert source in allowed, f"Dockerfile copies {source}, excluded by Dockerfile.dockerignore"


MC_RECORDER = """#!/bin/sh
# Stands in for MinIO's `mc` (no MinIO client here): records each call, and keeps policy files it is given.
printf '%s\\n' "$*" >> "$MC_LOG"
if [ "$1 $2 $3" = "admin policy create" ]; then cp "$6" "$MC_LOG.$5.json"; fi
"""


@pytest.mark.parametrize(("object_lock", "versioning"), [("off", "off"), ("on", "off"), ("off", "on")])
def test_minio_init_runs_under_posix_sh(tmp_path, object_lock, versioning):
    """init.sh runs under dash (a POSIX sh, as the mc image may lack bash): it makes the bucket (with object
    lock when asked), renders both policies for the configured bucket and creates and attaches both users;
    run twice, it makes the same calls (idempotent by mc's flags). `mc` is a recording stand-in."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mc").write_text(MC_RECORDER)
    (bin_dir / "mc").chmod(0o755)
    log = tmp_path / "mc.log"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "MC_LOG": str(log), "MINIO_ROOT_USER": "root", "MINIO_ROOT_PASSWORD": "pw",
           "LAKE_S3_BUCKET": "team-lake", "LAKE_RO_ACCESS_KEY": "ro", "LAKE_RO_SECRET_KEY": "ro-secret",
           "LAKE_RW_ACCESS_KEY": "rw", "LAKE_RW_SECRET_KEY": "rw-secret", "LAKE_S3_OBJECT_LOCK": object_lock,
           "LAKE_S3_VERSIONING": versioning, "TMPDIR": str(tmp_path)}
    for _ in range(2):
        done = subprocess.run(["/bin/sh", str(DEPLOY / "minio" / "init.sh")], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "bucket team-lake ready: users ro (read-only), rw (read-write)" in done.stdout
    calls = [re.sub(rf"{re.escape(str(tmp_path))}/tmp\.\w+/", "TMP/", c) for c in log.read_text().splitlines()]
    assert calls[: len(calls) // 2] == calls[len(calls) // 2:]
    assert "admin policy create lake lake-readonly TMP/lake-readonly.json" in calls
    once = calls[: len(calls) // 2]
    assert once[0] == "alias set lake http://minio:9000 root pw"
    assert once[1] == ("mb --ignore-existing --with-lock lake/team-lake" if object_lock == "on"
                       else "mb --ignore-existing lake/team-lake")
    assert ("version enable lake/team-lake" in once) == (versioning == "on")
    assert "admin user add lake ro ro-secret" in once and "admin user add lake rw rw-secret" in once
    assert "admin policy attach lake lake-readonly --user ro" in once
    assert "admin policy attach lake lake-readwrite --user rw" in once
    for access in ("readonly", "readwrite"):
        rendered = json.loads(Path(f"{log}.lake-{access}.json").read_text())
        resources = {r for st in rendered["Statement"] for r in
                     (st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]])}
        assert resources and all(r.startswith("arn:aws:s3:::team-lake") for r in resources), resources


def test_data_server_serves_the_code_locations_lake(compose):
    """The data-server runs `lake serve` on the lake the pipelines write (same volume, same bucket), off
    loopback inside the network, so it needs tokens: the ones in .env, which the code accepts."""
    from lake_assets.cli import build_parser
    from lake_resources.serve.auth import TokenStore, check_bind
    from lake_resources.settings import LakeSettings

    services = compose["services"]
    server, code = services["data-server"], services["code-location"]
    args = build_parser().parse_args(server["command"][1:])
    assert server["command"][0] == "lake" and args.command == "serve"
    assert args.port == published(server)[0][2] and args.host == "0.0.0.0"
    env, code_env = environment(server), environment(code)
    for key in ("LAKE_HOME", "LAKE_S3_ENDPOINT", "LAKE_S3_BUCKET", "LAKE_S3_PREFIX", "LAKE_S3_REGION"):
        assert env[key] == code_env[key], key
    assert [m for m in server["volumes"] if m.endswith(":" + env["LAKE_HOME"])] == [f"lake-data:{env['LAKE_HOME']}"]
    tokens = TokenStore.load(env=env)  # the example tokens parse (name:scope:token, 16+ characters)
    assert len(tokens) >= 1
    check_bind(args.host, tokens)  # with tokens, binding 0.0.0.0 in the container is allowed
    assert LakeSettings.from_env(env).cold_root == LakeSettings.from_env(code_env).cold_root
    assert "8787" in (DEPLOY / "Dockerfile").read_text()
    health = " ".join(server["healthcheck"]["test"])
    assert f"127.0.0.1:{args.port}/health" in health
