"""`psi0 dashboard` — serve the read-only dashboard, or export one episode to Rerun.

  psi0 dashboard OUT [OUT ...] [--port 8050] [--host 127.0.0.1]
  psi0 dashboard export-rerun OUT --episode SOURCE_ID --out episode.rrd
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("psi0.dashboard")


def _serve(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="psi0 dashboard", description=(
        "Read-only web dashboard over psi0 output roots (catalog.json + LeRobot and/or Zarr shards). "
        "Shows sources, shards, hours, rejects by reason, per-dimension stats and histograms; an episode "
        "browser filterable by quality score (e.g. hand_qa.detection_rate); episode pages with every camera "
        "playing in sync with action/state plots, the FAST tokens of the current chunk decoded against the "
        "true actions, retargeting residuals, the MediaPipe QA score and (EgoDex) projected hand keypoints "
        "over the video; and every rejected input. Example: psi0 dashboard out/ --port 8050. "
        "Also: `psi0 dashboard export-rerun OUT --episode ID --out f.rrd`."))
    p.add_argument("roots", nargs="*",
                   help="output roots, each holding catalog.json (or a bare shard folder, or an s3:// URL of either)")
    p.add_argument("--evals", nargs="+", default=[], metavar="DIR",
                   help="`psi0 eval --out` folders (or folders above them): the /evals page shows their runs, "
                        "per-task success with Wilson intervals, episode videos and action curves")
    p.add_argument("--port", type=int, default=8050)
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to bind (default 127.0.0.1: local only; the app has no auth)")
    a = p.parse_args(argv)
    if not a.roots and not a.evals:
        p.error("give output roots and/or --evals DIR")
    from shards.location import Location

    for r in a.roots:
        if not Location.of(r).join("catalog.json").is_file():
            print(f"psi0 dashboard: {r} has no catalog.json (serving it anyway: a bare shard opens as a one-shard "
                  "root, anything else shows an error panel)", file=sys.stderr)
    import uvicorn

    from dashboard.app import create_app

    print(f"psi0 dashboard on http://{a.host}:{a.port}/  ({', '.join(map(str, a.roots))})"
          + (f"; evaluations on http://{a.host}:{a.port}/evals" if a.evals else ""), flush=True)
    uvicorn.run(create_app(a.roots, a.evals), host=a.host, port=a.port, log_level="warning")
    return 0


def _export(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="psi0 dashboard export-rerun", description=(
        "Write one ingested episode to a Rerun .rrd file (scalars per named dimension + camera frames); "
        "open it with `rerun f.rrd`."))
    p.add_argument("root", help="output root holding catalog.json (or an s3:// URL of one)")
    p.add_argument("--episode", required=True, help="source id of the episode (as in catalog.json inputs)")
    p.add_argument("--out", type=Path, required=True, help="the .rrd file to write")
    a = p.parse_args(argv)
    from dashboard.export_rerun import export_episode

    try:
        counts = export_episode(a.root, a.episode, a.out)
    except (KeyError, ValueError) as e:
        print(f"psi0 dashboard export-rerun: {e}", file=sys.stderr)
        return 2
    print(f"wrote {a.out}: {counts['scalars']} scalars, {counts['images']} images")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "export-rerun":
        return _export(argv[1:])
    return _serve(argv)


if __name__ == "__main__":
    raise SystemExit(main())
