"""``python -m taskcell.agents.demo --host 127.0.0.1 --port 8765``: serve the demo agents alone."""

from __future__ import annotations

import argparse

import uvicorn

from taskcell.agents.demo import DEMO_AGENTS, create_demo_app, demo_agent_url


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and run uvicorn until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m taskcell.agents.demo", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--public-url",
        default=None,
        help="the URL clients use to reach this server (default http://HOST:PORT)",
    )
    args = parser.parse_args(argv)
    base_url = args.public_url or f"http://{args.host}:{args.port}"
    for name, _ in DEMO_AGENTS:
        print(f"{name}: {demo_agent_url(base_url, name)}")
    uvicorn.run(create_demo_app(base_url), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
