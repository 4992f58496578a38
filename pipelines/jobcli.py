"""Command-line front shared by the job scripts (`pipelines/<source>.py`)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from pipelines.stages import JobConfig
from shards import formats as shard_formats

EPILOG = """runners:
  local   in-process (debugging, tests)
  ray     Ray Data: local cluster when no address is given; RAY_ADDRESS / --address for a running one;
          or submit:  ray job submit --working-dir . -- python {script} --input ... --output ...
  beam    Apache Beam; DirectRunner by default. Other Beam options pass through after `--`, e.g.
          -- --runner=FlinkRunner --flink_master=host:8081   (Prism/Flink/Spark job servers fetch binaries at
          run time: offline, give local paths, e.g. --prism_location=/opt/prism)

Re-running with the same arguments resumes: committed shards are skipped, partial ones redone, and the
output is byte-identical to an uninterrupted run. Every input ends in a shard or in catalog.json as rejected.
"""


def parser(description: str, script: str, defaults: dict[str, Any]) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=script, description=description, epilog=EPILOG.format(script=script),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True,
                    help="source root: a local path or an object-store URL (s3://bucket/prefix), read in place")
    ap.add_argument("--output", required=True,
                    help="output root, local path or URL: shards/, catalog.json, tokenizer/ (URL: shards are staged "
                         "in $TMPDIR, then uploaded with shard.json last)")
    ap.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE",
                    help="fsspec option for s3:// (or other) URLs, repeatable, e.g. endpoint_url=http://minio:9000, "
                         "anon=true, client_kwargs='{\"region_name\": \"eu-west-1\"}'. Credentials: the standard "
                         "AWS_* environment variables")
    ap.add_argument("--format", choices=(*shard_formats.names(), "both"), default="both",
                    help=f"shard format: one registered format, or both = {' + '.join(shard_formats.TWINS)} twins "
                         "(same episodes, one folder each)")
    ap.add_argument("--runner", choices=("local", "ray", "beam"), default="local")
    ap.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local cluster)")
    ap.add_argument("--workers", type=int, help="parallel shard writers (default: all CPUs)")
    ap.add_argument("--cpus-per-worker", type=float, default=1.0)
    ap.add_argument("--episodes-per-shard", type=int, default=defaults.get("episodes_per_shard", 32))
    ap.add_argument("--video-size", default="224x224", help="WIDTHxHEIGHT of stored video")
    ap.add_argument("--codec", default="libsvtav1", help="libsvtav1 (LeRobot default) or libx264")
    ap.add_argument("--crf", type=int, default=30)
    ap.add_argument("--no-tokenize", dest="tokenize", action="store_false", default=defaults.get("tokenize", True),
                    help="skip FAST action tokens (pass 1 fit + action.tokens column)")
    ap.add_argument("--token-horizon", type=int, default=defaults.get("token_horizon", 16))
    ap.add_argument("--token-vocab", type=int, default=2048)
    ap.add_argument("--retarget", action=argparse.BooleanOptionalAction, default=defaults.get("retarget", False),
                    help="add retargeted robot joints (action.robot) and residuals")
    ap.add_argument("--hand-qa", action=argparse.BooleanOptionalAction, default=defaults.get("hand_qa", False),
                    help="EgoDex: check hand poses against MediaPipe detections on sampled frames; reject on disagreement")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap


def main(source: str, description: str, script: str, argv: list[str] | None = None,
         defaults: dict[str, Any] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    beam_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, beam_args = argv[:cut], argv[cut + 1:]
    defaults = defaults or {}
    ap = parser(description, script, defaults)
    args = ap.parse_args(argv)
    try:
        configure_storage([args.input, args.output], args.storage_option)
    except ValueError as exc:
        ap.error(str(exc))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(message)s")
    width, height = (int(v) for v in args.video_size.lower().split("x"))
    formats = shard_formats.TWINS if args.format == "both" else (args.format,)
    config = JobConfig(source=source, input=args.input, output=args.output, formats=formats,
                       episodes_per_shard=args.episodes_per_shard, video_width=width, video_height=height,
                       video_codec=args.codec, video_crf=args.crf, retarget=args.retarget, hand_qa=args.hand_qa, tokenize=args.tokenize,
                       token_column=defaults.get("token_column", "action"), token_horizon=args.token_horizon,
                       token_vocab=args.token_vocab)
    from pipelines.runners import run
    catalog = run(config, args.runner, args.address, args.workers, args.cpus_per_worker, beam_args)
    counts = catalog.counts()
    print(f"{source}: {counts['inputs']} inputs -> {counts['ingested']} ingested, {counts['rejected']} rejected; "
          f"{len({s.shard_id for s in catalog.shards})} shard(s) in {args.output}/shards, catalog {args.output}/catalog.json")
    return 0


def configure_storage(urls: list[str], options: list[str]) -> dict[str, dict[str, Any]]:
    """`--storage-option KEY=VALUE` → fsspec configuration of each URL's protocol, in this process
    (`fsspec.config.conf`) and for every worker it starts (`FSSPEC_<PROTOCOL>` JSON in the environment,
    which fsspec reads at import). Values are JSON when they parse (true, 3, {...}), else strings."""
    if not options:
        return {}
    parsed: dict[str, Any] = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise ValueError(f"--storage-option {option!r}: expected KEY=VALUE")
        try:
            parsed[key] = json.loads(value)
        except ValueError:
            parsed[key] = value
    protocols = sorted({url.split("://", 1)[0] for url in urls if "://" in url and not url.startswith("file://")})
    if not protocols:
        raise ValueError("--storage-option given but neither --input nor --output is a URL")
    import fsspec.config

    configured = {}
    for protocol in protocols:
        var = f"FSSPEC_{protocol.upper()}"
        merged = {**json.loads(os.environ.get(var, "{}")), **parsed}
        os.environ[var] = json.dumps(merged, sort_keys=True)
        fsspec.config.conf.setdefault(protocol, {}).update(merged)
        configured[protocol] = merged
    return configured
