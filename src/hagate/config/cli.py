"""`hagate check`: lint keepalived.conf files, one node each, and the cluster they form."""

from __future__ import annotations

import argparse
import json
import sys

_DESCRIPTION = """\
Check keepalived.conf files the way 'keepalived -t' does, and catch what it lets through:
annotations that are not syntax, keywords in the wrong block, nopreempt that cannot work,
scripts that are missing, not executable or unsafe. Given the configs of all nodes of one
cluster it also checks them together (same VRID, version, advert_int, auth and VIPs;
distinct priorities; one address owner at most; unicast peers that point at each other) and
explains who takes the VIP back after a failover.

Findings are printed as FILE:LINE: KEYWORD: WHY."""

_EPILOG = """\
exit status (keepalived -t's where they apply):
  0  no errors (warnings only)
  3  keepalived could not run this configuration
  4  errors, but keepalived would run after ignoring the bad parts
  5  scripts are configured without enable_script_security
  1  any other error (cluster checks, script files)

example: hagate check node1.conf node2.conf"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = sub.add_parser(
        "check",
        help="check keepalived.conf files, alone and as one cluster",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="keepalived.conf, one per node")
    check.add_argument("--json", action="store_true", help="print findings as JSON")
    check.add_argument(
        "--dump", action="store_true", help="print the normalised model, defaults filled in"
    )
    check.add_argument(
        "--no-script-files",
        action="store_true",
        help="skip checks of script files (when checking on another machine)",
    )
    check.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hagate.config.check import check
    from hagate.config.dump import dump_text, to_data
    from hagate.config.findings import Severity

    report = check(args.files, check_files=not args.no_script_files)
    findings, notes, code = report.findings, report.notes, report.exit_code
    if args.json:
        data: dict[str, object] = {
            "exit_code": code,
            "findings": [f.as_dict() for f in findings],
            "cluster": list(notes),
        }
        if args.dump:
            data["configs"] = [to_data(r.config) for r in report.results]
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return code
    if args.dump:
        for result in report.results:
            sys.stdout.write(dump_text(result.config))
    for finding in findings:
        print(finding)
    for note in notes:
        print(f"cluster: {note}")
    errors = sum(1 for f in findings if f.severity is Severity.ERROR)
    warnings = len(findings) - errors
    print(
        f"{len(report.results)} file(s): {errors} error(s), {warnings} warning(s); exit {code}",
        file=sys.stderr,
    )
    return code
