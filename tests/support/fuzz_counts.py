"""How many cases each fuzz test ran: printed whatever pytest captures, and recorded in
test-artifacts/fuzz-counts.json (the figures in docs/reliability.md come from there)."""

from __future__ import annotations

import json
from pathlib import Path

ARTIFACT = Path(__file__).resolve().parents[2] / "test-artifacts" / "fuzz-counts.json"


def report(capsys, name: str, count: int) -> None:
    with capsys.disabled():
        print(f"\n[fuzz] {name}: {count} cases")
    record_count(name, count)


def record_count(name: str, count: int) -> None:
    counts = json.loads(ARTIFACT.read_text()) if ARTIFACT.exists() else {}
    counts[name] = count
    ARTIFACT.parent.mkdir(exist_ok=True)
    ARTIFACT.write_text(json.dumps(counts, indent=2, sort_keys=True))
