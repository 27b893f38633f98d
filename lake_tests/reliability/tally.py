"""The reliability tally file: written by one pytest process, or merged from the parts that pytest-xdist
workers leave (each worker collects and runs only its share of the scenarios)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

TALLY_PATH = Path(__file__).resolve().parents[1] / "_artifacts" / "reliability_tally.json"
PARTS_DIR = TALLY_PATH.with_name("reliability_tally.parts")


def write_part(worker: str, entries: list[dict]) -> None:
    """A worker's scenarios, for the controller to merge (``merge_parts``)."""
    PARTS_DIR.mkdir(parents=True, exist_ok=True)
    (PARTS_DIR / f"{worker}.json").write_text(json.dumps(entries))


def clear_parts() -> None:
    for part in PARTS_DIR.glob("*.json") if PARTS_DIR.is_dir() else ():
        part.unlink()


def merge_parts() -> None:
    """Write the tally of every worker's part (none: nothing ran, the tally is left as it was)."""
    entries = [e for part in sorted(PARTS_DIR.glob("*.json")) if PARTS_DIR.is_dir()
               for e in json.loads(part.read_text())]
    clear_parts()
    if entries:
        write_tally(entries)


def write_tally(ran: list[dict]) -> None:
    failed = [e for e in ran if e["outcome"] == "failed"]
    summary = {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "scenarios_tried": len(ran),
        "survived": sum(e["outcome"] == "survived" for e in ran),
        "failed": len(failed),
        "skipped": sum(e["outcome"] == "skipped" for e in ran),
        "data_lost": sum(e["asserts_no_data_loss"] for e in failed),
        "by_group": {
            group: {
                "tried": sum(e["group"] == group for e in ran),
                "survived": sum(e["group"] == group and e["outcome"] == "survived" for e in ran),
            }
            for group in sorted({e["group"] for e in ran})
        },
        "scenarios": sorted(ran, key=lambda e: e["id"]),
    }
    TALLY_PATH.parent.mkdir(parents=True, exist_ok=True)
    TALLY_PATH.write_text(json.dumps(summary, indent=1) + "\n")
