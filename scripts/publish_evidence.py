#!/usr/bin/env python3
"""Copy the small outputs of the evidence studies into the repository (docs/evidence/).

    python scripts/publish_evidence.py runs/counsel-evidence runs/molma-evidence
    python scripts/publish_evidence.py RUN [RUN ...] --out docs/evidence

For every run folder: the report (report.md, report.html, claims.md, figures/), the resolved
config, the study overview, the result table and the evidence stages' JSON files; the EMORL
report is rebuilt first (`moalign report`) so its claims table sees a MOLMA run that finished
after it. Files over `--max-mb` are skipped with a note, so the copy stays a few MB. Nothing
else (adapters, checkpoints, generations) is copied: the run folder keeps those.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from moalign.runs.report import build_report

PATTERNS = ("config.yaml", "study.json", "eval/table.json", "seed_*/evidence/*.json",
            "seed_*/search/results.jsonl", "compare/*.json", "report/*.md", "report/*.html",
            "report/figures/*")


def publish(run: Path, out: Path, max_bytes: int) -> list[Path]:
    """Rebuild `run`'s report, then copy its small artifacts under ``out / run.name``."""
    build_report(run)
    dest = out / run.name
    if dest.exists():
        shutil.rmtree(dest)
    copied = []
    for pattern in PATTERNS:
        for src in sorted(run.glob(pattern)):
            if not src.is_file():
                continue
            if src.stat().st_size > max_bytes:
                print(f"skipped {src} ({src.stat().st_size / 2**20:.1f} MiB > limit)")
                continue
            target = dest / src.relative_to(run)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
            copied.append(target)
    return copied


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run folders (MOLMA runs last or first)")
    ap.add_argument("--out", type=Path, default=Path("docs/evidence"))
    ap.add_argument("--max-mb", type=float, default=2.0, help="skip single files above this")
    args = ap.parse_args()
    # MOLMA runs first: the EMORL report's claim C5 reads the MOLMA run's artifacts
    for run in sorted(args.runs, key=lambda r: "molma" not in r.name):
        if not (run / "config.yaml").is_file():
            raise SystemExit(f"{run} is not a run folder (no config.yaml); run the study first")
        files = publish(run, args.out, int(args.max_mb * 2**20))
        size = sum(f.stat().st_size for f in files) / 2**20
        print(f"{run} -> {args.out / run.name}: {len(files)} files, {size:.1f} MiB")


if __name__ == "__main__":
    main()
