"""The policy server across a delayed, jittery link: round trip and RTC behaviour vs injected delay.

    PYTHONPATH=. python benchmarks/eval_link.py --run runs/quick/s3 [--seconds 6]

Starts `psi0 serve --run RUN` in its own process on 127.0.0.1, first times `--pings` back-to-back requests
straight to it (round trip vs the server's own `total_ms`: the difference is protocol + loopback), then for
each one-way delay / jitter
(0, 40 +- 10, 80 +- 20 ms, through deploy.linkproxy on loopback) drives the simulated robot in real time
with `psi0 robot`'s loop and reports: round trip p50 / p99, the engine's latency p50 / p99 and predicted
delay, late chunks, underruns, and whether every committed prefix was executed exactly. Last line JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))


def main(argv: list[str] | None = None) -> int:
    import numpy as np  # noqa: PLC0415

    from deploy.bundle import describe_run, dummy_observation  # noqa: PLC0415
    from deploy.client import PolicyClient, RemoteChunkPolicy, wait_healthy  # noqa: PLC0415
    from deploy.linkproxy import DelayProxy  # noqa: PLC0415
    from deploy.robot import SimRobotIO, run_robot  # noqa: PLC0415
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--task", default="bimanual_lift")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--pings", type=int, default=30, help="direct back-to-back requests timed first")
    args = ap.parse_args(argv)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = str(_HERE.parent)
    server = subprocess.Popen([sys.executable, "-m", "psi0", "serve", "--run", args.run, "--port", str(port),
                               "--threads", "1"], env={**os.environ, "PYTHONPATH": root},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = []
    try:
        if not wait_healthy(f"http://127.0.0.1:{port}", 180):
            raise SystemExit("server did not become healthy")
        schema, _ = describe_run(args.run)
        direct = PolicyClient(f"ws://127.0.0.1:{port}/ws", timeout_s=30)
        rtt, server_ms = [], []
        for _ in range(args.pings):
            _, info = direct.infer(dummy_observation(schema))
            rtt.append(info["round_trip_ms"])
            server_ms.append(info["server_timing"]["total_ms"])
        direct.close()
        overhead = np.asarray(rtt) - np.asarray(server_ms)
        ping = {"pings": args.pings, "round_trip_ms_p50": float(np.percentile(rtt, 50)),
                "round_trip_ms_p99": float(np.percentile(rtt, 99)),
                "server_total_ms_p50": float(np.percentile(server_ms, 50)),
                "server_total_ms_p99": float(np.percentile(server_ms, 99)),
                "protocol_overhead_ms_p50": float(np.percentile(overhead, 50)),
                "protocol_overhead_ms_p99": float(np.percentile(overhead, 99))}
        print(json.dumps(ping), file=sys.stderr, flush=True)
        for delay_ms, jitter_ms in ((0.0, 0.0), (40.0, 10.0), (80.0, 20.0)):
            with DelayProxy(port, delay_ms / 1e3, jitter_ms / 1e3, lifetime_s=args.seconds + 60) as proxy:
                io = SimRobotIO(schema, args.task, 1000)
                try:
                    rep = run_robot(io, RemoteChunkPolicy(PolicyClient(proxy.url(), timeout_s=5)), schema,
                                    ticks=int(args.seconds * schema.fps), latency_guess_s=0.1)
                finally:
                    io.close()
            ex = np.asarray(rep.executed)
            exact = all(np.array_equal(ex[r.start_step + i], r.prefix[i]) for r in rep.requests
                        for i in range(r.delay) if r.start_step + i < len(ex))
            s = rep.summary()
            rows.append({"one_way_ms": delay_ms, "jitter_ms": jitter_ms, "round_trip_ms_p50": s["round_trip_ms_p50"],
                         "round_trip_ms_p99": s["round_trip_ms_p99"], "latency_ms_p50": s["latency_ms_p50"],
                         "latency_ms_p99": s["latency_ms_p99"], "delay_mean_ticks": s["delay_mean"],
                         "late": s["late"], "underruns": s["underruns"], "dropped": s["dropped"],
                         "chunks": s["chunks"], "overruns": s["overruns"], "prefix_executed_exactly": exact})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    finally:
        server.kill()
        server.wait(timeout=10)
    print(json.dumps({"run": args.run, "direct": ping, "links": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
