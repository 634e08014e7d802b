"""Run the scim2-tester (PyPI) RFC 7643/7644 compliance checks against a SCIM server.

Usage:
    python scim_tester.py [options] BASE_URL TOKEN

BASE_URL is the SCIM service root, e.g. http://127.0.0.1:8080/scim/v2; every
request carries "Authorization: Bearer TOKEN". It runs every check of
scim2-tester on the User and Group resource types, prints one line per check
result:

    STATUS    check_name [ResourceType]: reason

then a summary line. Failed checks are followed by one indented "data:" line
holding what the server answered (cut to --data-chars characters).

Exit status: 0 when no check failed (SKIPPED results are allowed), 1 when a
check failed or the checks did not finish in time, 2 when the server cannot be
reached or rejects the token, or on a usage error.

It needs the scim2-tester, scim2-client and httpx2 packages; scripts/scim-tester
installs them in a venv and prints the command that runs this file with it.
"""

import argparse
import signal
import sys
from collections import Counter
from importlib import metadata
from typing import NoReturn

PACKAGES = ("scim2-tester", "scim2-client", "scim2-models", "httpx2")

# Statuses that make the run fail: the server breaks a MUST of the RFCs.
FAILING = {"ERROR", "CRITICAL"}


def versions() -> str:
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (missing)")
    return ", ".join(found)


def die(message: str, code: int = 2) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


try:
    import httpx2
    from scim2_client.engines.httpx2 import SyncSCIMClient
    from scim2_tester import Status
    from scim2_tester import check_server
    from scim2_tester import get_all_available_tags
except ImportError as exc:  # pragma: no cover - depends on the environment
    die(
        f"{exc}; run this with the python of the venv that scripts/scim-tester "
        f"installs ({versions()})"
    )


class Deadline(BaseException):
    """Raised by the alarm when the whole run takes too long.

    A BaseException, so that the checker decorator of scim2-tester, which turns
    every Exception into an ERROR result and goes on, lets it through.
    """


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scim_tester.py",
        description="Check a SCIM 2.0 server against RFC 7643/7644 with scim2-tester.",
    )
    parser.add_argument("base_url", metavar="BASE_URL", help="SCIM service root, e.g. http://127.0.0.1:8080/scim/v2")
    parser.add_argument("token", metavar="TOKEN", help="bearer token sent in the Authorization header")
    parser.add_argument(
        "--resource-type",
        action="append",
        dest="resource_types",
        metavar="NAME",
        help="resource type to check (repeatable; default: User and Group)",
    )
    parser.add_argument(
        "--include-tag",
        action="append",
        dest="include_tags",
        metavar="TAG",
        help="run only checks with this tag (repeatable): " + ", ".join(get_all_available_tags()),
    )
    parser.add_argument(
        "--exclude-tag",
        action="append",
        dest="exclude_tags",
        metavar="TAG",
        help="skip the checks with this tag (repeatable)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds allowed per HTTP request (default 10)")
    parser.add_argument(
        "--total-timeout",
        type=int,
        default=600,
        help="seconds allowed for the whole run, 0 for no limit (default 600)",
    )
    parser.add_argument(
        "--data-chars",
        type=int,
        default=1500,
        help="characters of server data printed under a failed check, 0 for none (default 1500)",
    )
    parser.add_argument("--version", action="version", version=versions())
    args = parser.parse_args(argv)
    if not args.base_url.startswith(("http://", "https://")):
        parser.error(f"BASE_URL must start with http:// or https://, not {args.base_url!r}")
    if not args.token:
        parser.error("TOKEN is empty")
    args.base_url = args.base_url.rstrip("/")
    args.resource_types = args.resource_types or ["User", "Group"]
    return args


def one_line(text: object) -> str:
    return " | ".join(line.strip() for line in str(text).splitlines() if line.strip())


def render(data: object) -> str:
    """Make the debugging data of a result readable: responses, exceptions and models."""
    if hasattr(data, "status_code") and hasattr(data, "text"):  # an httpx2 response
        return f"HTTP {data.status_code} {data.text}".rstrip()
    if isinstance(data, BaseException):
        notes = " ".join(getattr(data, "__notes__", []))
        return " ".join(part for part in (type(data).__name__, str(data), notes) if part)
    if hasattr(data, "model_dump"):  # a scim2-models object
        try:
            return str(data.model_dump(mode="json", by_alias=True, exclude_none=True))
        except Exception:
            return repr(data)
    if isinstance(data, dict):
        return "{" + ", ".join(f"{key!r}: {render(value)}" for key, value in data.items()) + "}"
    if isinstance(data, (list, tuple)):
        return "[" + ", ".join(render(value) for value in data) + "]"
    return repr(data)


def preflight(http: "httpx2.Client", base_url: str) -> None:
    """Fail early, with a clear message, when the server is not usable at all."""
    url = f"{base_url}/ResourceTypes"
    try:
        response = http.get("/ResourceTypes")
    except httpx2.TimeoutException:
        die(f"GET {url} timed out: is the SCIM server at {base_url} hung?")
    except httpx2.RequestError as exc:
        die(f"cannot reach the SCIM server at {base_url}: GET {url}: {exc or type(exc).__name__}")
    if response.status_code in (401, 403):
        die(f"GET {url} answered {response.status_code}: the server rejects the bearer token")
    if response.status_code == 404:
        die(f"GET {url} answered 404: is {base_url} the SCIM service root (e.g. .../scim/v2)?")


def main(argv: list[str]) -> int:
    args = parse_args(argv)

    # trust_env=False: never route the (usually loopback) server through the
    # HTTP(S)_PROXY of the environment.
    http = httpx2.Client(
        base_url=args.base_url,
        headers={"Authorization": f"Bearer {args.token}"},
        timeout=args.timeout,
        trust_env=False,
        follow_redirects=False,
    )
    preflight(http, args.base_url)

    def on_alarm(signum: int, frame: object) -> None:
        raise Deadline()

    if args.total_timeout > 0:
        signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(args.total_timeout)

    print(f"scim2-tester: checking {args.base_url} ({versions()})", flush=True)
    try:
        results = check_server(
            SyncSCIMClient(http),
            raise_exceptions=False,
            include_tags=set(args.include_tags) if args.include_tags else None,
            exclude_tags=set(args.exclude_tags) if args.exclude_tags else None,
            resource_types=args.resource_types,
        )
    except Deadline:
        print(
            f"error: the checks did not finish within {args.total_timeout} s "
            "(--total-timeout); some resources they created may be left on the server",
            file=sys.stderr,
        )
        return 1
    except Exception as exc:  # a bug in scim2-tester rather than in the server
        print(f"error: scim2-tester crashed: {type(exc).__name__}: {one_line(exc)}", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
        http.close()

    counts: Counter[str] = Counter()
    for result in results:
        status = result.status.name
        counts[status] += 1
        name = result.title or "?"
        if result.resource_type:
            name += f" [{result.resource_type}]"
        reason = one_line(result.reason) if result.reason else ""
        print(f"{status:<9} {name}: {reason}".rstrip(": "), flush=True)
        if status in FAILING and args.data_chars > 0 and result.data is not None:
            data = one_line(render(result.data))
            if len(data) > args.data_chars:
                data = data[: args.data_chars] + "..."
            print(f"          data: {data}")

    failed = sum(counts[status] for status in FAILING)

    # check_server silently checks nothing for a resource type the server does
    # not publish: a missing User or Group type is a failure here. random_url
    # runs (or is skipped) only once discovery has described the server.
    described = any(result.title == "random_url" for result in results)
    checked = {result.resource_type for result in results if result.resource_type}
    for resource_type in args.resource_types:
        if described and resource_type not in checked:
            print(
                f"ERROR     resource_type_published [{resource_type}]: the server publishes "
                f"no '{resource_type}' resource type, so none of its checks ran"
            )
            counts["ERROR"] += 1
            failed += 1

    if not results:
        print("ERROR     scim2-tester ran no check")
        failed += 1

    summary = ", ".join(f"{counts[status.name]} {status.name}" for status in Status if counts[status.name])
    verdict = "FAILED" if failed else "PASSED"
    print(f"scim2-tester {verdict}: {len(results)} results ({summary or 'none'})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
