"""``crm-infra up | down | status | env | token``: the local servers of one profile."""

from __future__ import annotations

import argparse
import sys
import time

from local_infra.infra import PROFILES, Infra
from local_infra.keycloak_server import password_grant, staff_password
from local_infra.process import InfraError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crm-infra", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "env", "token"])
    parser.add_argument(
        "user",
        nargs="?",
        default="rm-0001",
        help="token: the demo user (local profiles' realm) whose access token to print",
    )
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="run",
        help="'run' for make run (default), 'test' for the test harness's servers",
    )
    args = parser.parse_args(argv)
    infra = Infra(PROFILES[args.profile])
    try:
        if args.command == "up":
            began = time.monotonic()
            timings = infra.up()
            for name, seconds in timings.items():
                print(f"started {name} in {seconds:.1f}s")
            elapsed = time.monotonic() - began
            print(f"infrastructure up in {elapsed:.1f}s; addresses in {infra.env_file}")
        elif args.command == "down":
            stopped = infra.down()
            print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        elif args.command == "token":
            password = staff_password(infra.keycloak.secrets).get_secret_value()
            print(password_grant(infra.keycloak.address, args.user, password))
        elif args.command == "env":
            for key, value in infra.env().items():
                print(f"{key}={value}")
        else:
            print(f"{'server':9} {'state':8} {'pid':>8}  {'version':22} {'address':52} data dir")
            for s in infra.status():
                state = "running" if s.running else "stopped"
                pid = str(s.pid) if s.pid else "-"
                print(f"{s.name:9} {state:8} {pid:>8}  {s.version:22} {s.address:52} {s.data_dir}")
    except InfraError as error:
        print(f"crm-infra {args.command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
