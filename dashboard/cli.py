"""`psi0 dashboard` — serve the read-only dashboard, or export one episode to Rerun.

  psi0 dashboard OUT [OUT ...] [--port 8050] [--host 127.0.0.1]
  psi0 dashboard OUT --host 0.0.0.0 --allow-remote [--allow-host NAME ...] [--no-token]
  psi0 dashboard export-rerun OUT --episode SOURCE_ID --out episode.rrd
"""
from __future__ import annotations

import argparse
import ipaddress
import logging
import secrets
import socket
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
    p.add_argument("roots", nargs="+",
                   help="output roots, each holding catalog.json (or a bare shard folder, or an s3:// URL of either)")
    p.add_argument("--port", type=int, default=8050)
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to bind (default 127.0.0.1: this machine only). Any other address exposes "
                        "the data to the network and needs --allow-remote")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow binding a non-loopback address: prints a warning and requires a random access token "
                        "(printed in the URL) on every request")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a further host name browsers may use to reach the server (e.g. the machine's DNS name); "
                        "requests naming any other host get 403 (protects against DNS rebinding)")
    p.add_argument("--no-token", action="store_true",
                   help="with --allow-remote: serve without a token (anyone who can reach the port reads the data)")
    a = p.parse_args(argv)
    loopback = is_loopback(a.host)
    if not loopback and not a.allow_remote:
        print(f"psi0 dashboard: --host {a.host} would serve every dataset to the network; pass --allow-remote to do "
              "that (a token is then required), or use the default 127.0.0.1 (e.g. through `ssh -L 8050:127.0.0.1:8050`)",
              file=sys.stderr)
        return 2
    hosts = allowed_hosts(a.host, a.allow_host)
    token = None if loopback or a.no_token else secrets.token_urlsafe(24)
    if not loopback:
        print(f"psi0 dashboard: WARNING: serving on {a.host}, reachable from other machines"
              + ("" if token else " WITHOUT a token: anyone who can reach the port reads the data"), file=sys.stderr)
    from shards.location import Location

    for r in a.roots:
        if not Location.of(r).join("catalog.json").is_file():
            print(f"psi0 dashboard: {r} has no catalog.json (serving it anyway: a bare shard opens as a one-shard "
                  "root, anything else shows an error panel)", file=sys.stderr)
    import uvicorn

    from dashboard.app import create_app

    shown = a.host if loopback or a.host not in ("0.0.0.0", "::") else socket.gethostname()
    url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{a.port}/" + (f"?token={token}" if token else "")
    print(f"psi0 dashboard on {url}  ({', '.join(map(str, a.roots))})", flush=True)
    uvicorn.run(create_app(a.roots, allowed_hosts=hosts, token=token), host=a.host, port=a.port, log_level="warning")
    return 0


def is_loopback(host: str) -> bool:
    """localhost or a loopback address (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(bind: str, extra: list[str]) -> list[str]:
    """Host names a browser may use: the localhost names, the bound address, and for a wildcard bind this
    machine's name (`--allow-host` adds more)."""
    from dashboard.app import LOOPBACK_HOSTS

    hosts = list(LOOPBACK_HOSTS) + [bind.strip("[]")] + list(extra)
    if bind in ("0.0.0.0", "::"):
        hosts += [socket.gethostname(), socket.getfqdn()]
    return sorted({h.lower() for h in hosts if h})


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
