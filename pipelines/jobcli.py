"""`psi0 ingest SOURCE --input ... --output ...`: the one front door of the ingest jobs.

The entry scripts users type (`pipelines/egodex_tokenize.py`, `pipelines/humanoid_everyday.py`,
`pipelines/teleop_ingest.py`) are this command with the source fixed.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from converters.registry import SOURCES, get
from converters.source import Source
from pipelines.stages import JobConfig
from shards import formats as shard_formats
from shards.scheduling import REALTIME_PRIORITY

EPILOG = """runners:
  local   in-process (debugging, tests)
  ray     Ray Data: a fresh local cluster when no address is given; RAY_ADDRESS / --address for a running one;
          or submit to a `ray start --head` cluster from the repository root. A Ray 2.60 head runs with token
          auth once ~/.ray/auth_token exists (`ray get-auth-token --generate`, or a first local --runner ray run);
          RAY_AUTH_MODE=token makes the client send that token (another machine: copy it, `ray get-auth-token`):
            RAY_AUTH_MODE=token ray job submit --working-dir . -- \\
                python {script} --input ... --output ... --runner ray
  beam    Apache Beam; DirectRunner by default. Other Beam options pass through after `--`, e.g.
          -- --runner=FlinkRunner --flink_master=host:8081   (Prism/Flink/Spark job servers fetch binaries at
          run time: offline, give local paths, e.g. --prism_location=/opt/prism)

Re-running with the same arguments resumes: committed shards are skipped, partial ones redone, and the
output is byte-identical to an uninterrupted run. Every input ends in a shard or in catalog.json as rejected.
"""


def _source_help(source: Source) -> str:
    """What `--help` of one source says about it: what it reads, produces and derives."""
    info = source.describe()
    lines = [f"{info['summary']}.", f"  layout: {info['layout']}",
             f"  fps {info['fps']:g}; embodiments: {', '.join(info['embodiments'])}", f"  tokens: {info['tokens']}"]
    if info.get("hand_qa"):
        lines.append(f"  hand QA: {info['hand_qa']}")
    lines.append("  derived (not recorded):")
    lines += [f"    {key}: {how}" for key, how in info["derived"].items()]
    return "\n".join(lines)


def parser(prog: str, source: Source | None) -> argparse.ArgumentParser:
    """The job's options; with `source` None the first argument names the source."""
    if source is None:
        listing = "\n".join(f"  {name:<18} {s.describe()['summary']}" for name, s in sorted(SOURCES.items()))
        description = ("Ingest a dataset into LeRobot v3 / Zarr v3 shards with FAST action tokens.\n\nsources:\n"
                       + listing + "\n\n`psi0 ingest SOURCE --help` shows what a source produces and its defaults. "
                       "The scripts in pipelines/\n(egodex_tokenize.py, humanoid_everyday.py, teleop_ingest.py) are "
                       "this command with the source fixed.")
        script = "-m psi0 ingest SOURCE"
    else:
        description = _source_help(source)
        script = prog if prog.endswith(".py") else f"-m {prog}"
    examples = ("\nexamples:\n"
                "  psi0 ingest egodex --input /data/egodex --output /data/shards/egodex --runner ray\n"
                "  psi0 ingest humanoid_everyday --input s3://raw/he --output s3://shards/he "
                "--storage-option endpoint_url=http://minio:9000\n"
                "  python pipelines/teleop_ingest.py --input recordings/ --output out/teleop\n")
    usage = f"{prog}{' SOURCE' if source is None else ''} --input INPUT --output OUTPUT [options] [-- beam options]"
    ap = argparse.ArgumentParser(prog=prog, usage=usage, description=description,
                                 epilog=EPILOG.format(script=script) + examples,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    if source is None:
        ap.add_argument("source", choices=sorted(SOURCES), metavar="SOURCE", help="which dataset: " +
                        ", ".join(sorted(SOURCES)))
    def default(option: str) -> str:
        if source is not None:
            return f" (default: {getattr(source.defaults, option)})"
        return " (default: the source's: " + ", ".join(f"{name} {getattr(s.defaults, option)}"
                                                       for name, s in sorted(SOURCES.items())) + ")"
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
    ap.add_argument("--episodes-per-shard", type=int, help="episodes per shard" + default("episodes_per_shard"))
    ap.add_argument("--video-size", default="224x224", help="WIDTHxHEIGHT of stored video")
    ap.add_argument("--codec", default="libsvtav1", help="libsvtav1 (LeRobot default) or libx264")
    ap.add_argument("--crf", type=int, default=30)
    ap.add_argument("--no-tokenize", dest="tokenize", action="store_false", default=True,
                    help="skip FAST action tokens (pass 1 fit + action.tokens column)")
    ap.add_argument("--token-horizon", type=int, help="frames per tokenized action chunk" + default("token_horizon"))
    ap.add_argument("--token-vocab", type=int, default=2048)
    ap.add_argument("--tokenizer", metavar="DIR",
                    help="tokenize with this FAST folder instead of fitting one per output root: one fitted over a "
                         "stage-1 mixture (`psi0 tokenizer fit --input out/egodex out/he --out DIR`) so every root "
                         "shares one token space, or the Psi0 authors' (e.g. src/fast/egodex-rel-50w-1x48-v2048-s100)")
    ap.add_argument("--tokenizer-stats", metavar="FILE",
                    help="q01/q99 for an authors' tokenizer folder, which has none (their assets/stats/*.json)")
    ap.add_argument("--retarget", action=argparse.BooleanOptionalAction, default=False,
                    help="add retargeted robot joints (action.robot) and residuals")
    with_qa = ", ".join(name for name, s in sorted(SOURCES.items()) if s.hand_qa() is not None)
    ap.add_argument("--hand-qa", action=argparse.BooleanOptionalAction, default=False,
                    help=f"the source's hand-pose QA ({with_qa}: MediaPipe detections on sampled frames vs the "
                         "recorded hand joints); reject on disagreement")
    ap.add_argument("--realtime", type=int, nargs="?", const=REALTIME_PRIORITY, default=0, metavar="PRIORITY",
                    help=f"run each shard's codec threads (loader, decoders, encoders) SCHED_FIFO PRIORITY (bare flag: "
                         f"{REALTIME_PRIORITY}); needs root or CAP_SYS_NICE, else a warning and ordinary scheduling. "
                         "5-6%% fewer CPU seconds on the ingest benchmark; same bytes. Only on nodes that do "
                         "nothing but ingest: while busy it leaves other processes 5%% of the CPU")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap


def main(argv: list[str] | None = None, source: str | None = None, prog: str = "psi0 ingest") -> int:
    """`psi0 ingest SOURCE ...`, or with `source` given, one source's entry script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    beam_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, beam_args = argv[:cut], argv[cut + 1:]
    if source is None and argv and argv[0] in SOURCES:       # `psi0 ingest egodex --help` teaches about egodex
        source, argv, prog = argv[0], argv[1:], f"{prog} {argv[0]}"
    ap = parser(prog, get(source) if source else None)
    args = ap.parse_args(argv)
    the_source = get(source or args.source)
    try:
        configure_storage([args.input, args.output], args.storage_option)
    except ValueError as exc:
        ap.error(str(exc))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(message)s")
    width, height = (int(v) for v in args.video_size.lower().split("x"))
    formats = shard_formats.TWINS if args.format == "both" else (args.format,)
    defaults = the_source.defaults
    try:
        config = JobConfig(
            source=the_source.name, input=args.input, output=args.output, formats=formats,
            episodes_per_shard=_or(args.episodes_per_shard, defaults.episodes_per_shard), video_width=width,
            video_height=height, video_codec=args.codec, video_crf=args.crf, retarget=args.retarget,
            hand_qa=args.hand_qa, tokenize=args.tokenize, token_horizon=_or(args.token_horizon, defaults.token_horizon),
            token_vocab=args.token_vocab, tokenizer=args.tokenizer, tokenizer_stats=args.tokenizer_stats,
            realtime=args.realtime)
    except ValueError as exc:
        ap.error(str(exc))
    from pipelines.runners import run
    catalog = run(config, args.runner, args.address, args.workers, args.cpus_per_worker, beam_args)
    counts = catalog.counts()
    print(f"{the_source.name}: {counts['inputs']} inputs -> {counts['ingested']} ingested, {counts['rejected']} "
          f"rejected; {len({s.shard_id for s in catalog.shards})} shard(s) in {args.output}/shards, "
          f"catalog {args.output}/catalog.json")
    return 0


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


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
