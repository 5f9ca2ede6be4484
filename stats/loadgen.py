"""A small HTTP/1.1 load generator for the tracking benchmark (no Django, no imports of
the project): keep-alive connections replaying a list of paths, with latencies.

Run as ``python -m stats.loadgen <port> <seconds> <connections> <paths file>``; prints one
JSON object: requests, accepted (200 and 302 answers), errors and latency percentiles.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


async def _connection(port: int, paths: list[str], offset: int, until: float, out: dict) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    latencies, index = out["latencies"], offset
    try:
        while time.monotonic() < until:
            path = paths[index % len(paths)]
            index += 1
            started = time.perf_counter()
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Mozilla/5.0 (X11; "
                "Linux x86_64) Firefox/128.0\r\nX-Forwarded-Proto: https\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            out["accepted" if status in (200, 302) else "errors"] += 1
    except (OSError, asyncio.IncompleteReadError):
        out["errors"] += 1
    finally:
        writer.close()


async def run(port: int, seconds: float, connections: int, paths: list[str]) -> dict:
    out: dict = {"latencies": [], "accepted": 0, "errors": 0}
    until = time.monotonic() + seconds
    started = time.monotonic()
    step = max(1, len(paths) // connections)
    await asyncio.gather(
        *(_connection(port, paths, i * step, until, out) for i in range(connections))
    )
    elapsed = time.monotonic() - started
    latencies = sorted(out.pop("latencies"))

    def percentile(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000, 2)

    return {
        **out,
        "requests": len(latencies),
        "seconds": round(elapsed, 2),
        "p50_ms": percentile(0.5) if latencies else None,
        "p99_ms": percentile(0.99) if latencies else None,
    }


def main() -> None:
    port, seconds, connections, paths_file = sys.argv[1:5]
    with open(paths_file, encoding="ascii") as fh:
        paths = fh.read().split()
    result = asyncio.run(run(int(port), float(seconds), int(connections), paths))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
