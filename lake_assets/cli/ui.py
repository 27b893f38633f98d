"""``lake ui``: ``dagster dev`` on the lake's ``DAGSTER_HOME``, stopped cleanly on Ctrl-C / SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

from lake_assets.cli.common import REPO_ROOT, Say, _print, prepare_dagster_home


# ------------------------------------------------------------------------------------------
# lake ui
# ------------------------------------------------------------------------------------------
def ui_command(host: str, port: int) -> list[str]:
    return [os.path.join(os.path.dirname(sys.executable), "dagster"), "dev", "-h", host, "-p", str(port),
            "-w", str(REPO_ROOT / "workspace.yaml")]


def run_ui(settings, *, host: str = "127.0.0.1", port: int = 3000, say: Say = _print) -> int:
    """Start ``dagster dev`` (webserver + daemon) on the lake's DAGSTER_HOME; stop cleanly on Ctrl-C/SIGTERM.

    ``dagster dev`` runs in its own session so a terminal's Ctrl-C reaches it once, from us: it then
    stops the webserver, the daemon and the code server itself.
    """

    def restore_sigint() -> None:
        # started from a non-interactive shell, SIGINT would be inherited as ignored
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    prepare_dagster_home(settings)
    proc = subprocess.Popen(ui_command(host, port), cwd=REPO_ROOT, preexec_fn=restore_sigint, start_new_session=True)
    stopping = threading.Event()

    def forward(signum, _frame) -> None:
        if not stopping.is_set():
            stopping.set()
            say(f"lake ui: stopping (signal {signal.Signals(signum).name})")
            proc.send_signal(signal.SIGINT)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    say(f"Dagster UI on http://{host}:{port} (DAGSTER_HOME={settings.dagster_home}, lake {settings.home_abs}); Ctrl-C stops it")
    try:
        while True:
            try:
                code = proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                continue
        return 0 if stopping.is_set() and code in (0, -signal.SIGINT, 130) else code
    finally:
        if proc.poll() is None:
            _stop_group(proc)
        for s, handler in previous.items():
            signal.signal(s, handler)


def _stop_group(proc: subprocess.Popen, grace: float = 30.0) -> None:
    """SIGINT, then SIGTERM, then SIGKILL to the process group of ``proc`` until it is gone."""
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
