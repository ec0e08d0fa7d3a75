"""Assemble BENCHMARKS.md from the result files each benchmark writes in bench/results/.

    .venv/bin/python -m bench.report

Each results file starts with the command that produced it; this only concatenates them, in
the order of the data flow, so every figure in BENCHMARKS.md comes from a command in bench/.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = (
    "ingest",
    "ingest_paths",
    "broker_flood",
    "broker_restart",
    "reconnect_storm",
    "storage",
    "alerts_quality",
    "alerts_throughput",
    "alerts_backfill",
    "routing_cvrplib",
    "routing_forecast",
    "routing_forecast_day_variation",
    "routing_closed_loop",
    "routing_closed_loop_oakham",
    "routing_roads",
    "api",
    "screens",
)
HEADER = """# Benchmarks

Measured on this project's 2-core, 24 GiB machine, which is shared and noisy: compare figures
within one run (each section is one run), not across sections. Each section names the command
that produced it; `python -m bench.report` rebuilds this file from `bench/results/`.
"""


def main() -> None:
    results = ROOT / "bench" / "results"
    files = sorted(
        results.glob("*.md"),
        key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else len(ORDER), p.stem),
    )
    parts = [HEADER]
    for path in files:
        text = path.read_text().strip()
        lines = text.splitlines()
        if lines and lines[0].startswith("Command:"):
            # A file that opens with its command: the command goes under the file's title.
            title = next((i for i, line in enumerate(lines) if line.startswith("#")), None)
            if title is not None:
                lines = [*lines[1:title], lines[title], "", lines[0], *lines[title + 1 :]]
                text = "\n".join(lines).strip()
        # Demote each file's headings one level under this document's title.
        parts.append(
            "\n".join("#" + line if line.startswith("#") else line for line in text.splitlines())
        )
    (ROOT / "BENCHMARKS.md").write_text("\n\n".join(parts) + "\n")
    print(f"BENCHMARKS.md: {len(files)} sections")


if __name__ == "__main__":
    main()
