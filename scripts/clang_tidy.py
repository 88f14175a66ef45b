#!/usr/bin/env python3
"""clang-tidy on every .cpp of the product (agent/, ec2/, netlink/) and the project headers they
include, with .clang-tidy and the compile database of a configured build. The tests are not in
scope: GoogleTest's headers double the stage's time on a cold CI machine, and the tests run under
ASan and UBSan anyway. Any finding fails: exit status 1, each finding listed once at the end.

scripts/clang_tidy.py [BUILD_DIR] [-j N] [--no-cache]

scripts/test.sh runs it as its "clang-tidy" stage; docs/testing.md says what it checks. A file
that passed is not checked again while nothing clang-tidy would read changed: the key is the
file as clang sees it (preprocessed with comments, so every included header and every NOLINT
counts), its flags, the .clang-tidy files and the clang-tidy version. Passes are kept under
$HOME/.cache/eni-agent/clang-tidy; findings never are.
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import time

TIDY = "clang-tidy-19"  # 14 (Debian's default) cannot parse lambdas capturing structured bindings
CLANG = "clang++-19"  # preprocesses as clang-tidy parses
SCOPE = ("agent/", "ec2/", "netlink/")
CONFIGS = (".clang-tidy",)
CACHE_DAYS = 30
FINDING = re.compile(r"^\S.*:\d+:\d+: (warning|error): .*$", re.M)


def compile_args(entry):
    """The entry's compiler flags: no launcher, compiler, -c, output, depfile or source file."""
    args = entry["arguments"] if "arguments" in entry else shlex.split(entry["command"])
    if os.path.basename(args[0]) == "ccache":
        args = args[1:]
    out, skip = [], False
    for a in args[1:]:
        if skip:
            skip = False
        elif a in ("-o", "-MF", "-MT", "-MQ"):
            skip = True
        elif a not in ("-c", "-MD", "-MMD") and os.path.join(entry["directory"], a) != entry["file"]:
            out.append(a)
    return out


class Unit:
    def __init__(self, entry, root):
        self.file = entry["file"]
        self.rel = os.path.relpath(self.file, root)
        self.directory = entry["directory"]
        self.args = compile_args(entry)
        # libstdc++ 12's stable_partition and stable_sort call get_temporary_buffer, which clang 19
        # calls deprecated inside the system header; the project's own code never uses it.
        self.extra = ["--extra-arg=-Wno-deprecated-declarations"]


def cache_key(unit, root, salt):
    """What clang-tidy reads for this unit, with the checkout's path taken out."""
    pre = subprocess.run([CLANG, "-E", "-C", "-w", *unit.args, unit.file], cwd=unit.directory,
                         capture_output=True)
    if pre.returncode != 0:
        return None  # clang-tidy will say why
    h = hashlib.sha256(salt)
    h.update(" ".join(unit.extra + unit.args).replace(root, "<root>").encode())
    h.update(pre.stdout.replace(root.encode(), b"<root>"))
    return h.hexdigest()


def check(unit, args, root, salt):
    started = time.monotonic()
    key = None if args.no_cache else cache_key(unit, root, salt)
    marker = os.path.join(args.cache, key) if key else None
    if marker and os.path.exists(marker):
        os.utime(marker)
        return unit, "cached", "", time.monotonic() - started
    header_filter = "^" + re.escape(root) + "/(agent|ec2|netlink)/"
    tidy = subprocess.run([TIDY, "-p", args.build, "--quiet", "--use-color=false",
                           "--header-filter=" + header_filter, *unit.extra, unit.file],
                          capture_output=True, text=True)
    output = tidy.stdout + tidy.stderr
    passed = tidy.returncode == 0 and not FINDING.search(output)
    if passed and marker:
        open(marker, "w").close()
    return unit, "passed" if passed else "failed", output, time.monotonic() - started


def prune(cache):
    horizon = time.time() - CACHE_DAYS * 86400
    for name in os.listdir(cache):
        path = os.path.join(cache, name)
        if os.path.getmtime(path) < horizon:
            os.remove(path)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build", nargs="?", default=os.environ.get("BUILD_DIR",
                                                                   os.path.join(root, "build")))
    parser.add_argument("-j", type=int, default=os.cpu_count())
    parser.add_argument("--no-cache", action="store_true", help="check every file again")
    parser.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache",
                                                        "eni-agent", "clang-tidy"))
    args = parser.parse_args()
    args.build = os.path.abspath(args.build)
    database = os.path.join(args.build, "compile_commands.json")
    if not os.path.exists(database):
        sys.exit(f"clang-tidy: no {database}; configure the build first")
    with open(database) as f:
        units = [Unit(e, root) for e in json.load(f)
                 if os.path.relpath(e["file"], root).startswith(SCOPE) and e["file"].endswith(".cpp")]
    os.makedirs(args.cache, exist_ok=True)
    prune(args.cache)
    salt = subprocess.run([TIDY, "--version"], capture_output=True).stdout
    for config in CONFIGS:
        with open(os.path.join(root, config), "rb") as f:
            salt += f.read()

    started = time.monotonic()
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.j) as pool:
        for result in pool.map(lambda u: check(u, args, root, salt), units):
            unit, verdict, output, seconds = result
            results.append(result)
            if verdict == "failed":
                print(f"== {unit.rel} ({seconds:.0f}s)\n{output}", flush=True)
    counts = {v: sum(1 for r in results if r[1] == v) for v in ("passed", "cached", "failed")}
    slowest = sorted(results, key=lambda r: -r[3])[:3]
    print(f"clang-tidy: {len(units)} files in {time.monotonic() - started:.0f}s with -j{args.j}: "
          f"{counts['passed']} passed, {counts['cached']} unchanged since they passed, "
          f"{counts['failed']} with findings; slowest: "
          + ", ".join(f"{r[0].rel} {r[3]:.0f}s" for r in slowest))
    findings = sorted({m.group(0) for r in results for m in FINDING.finditer(r[2])})
    if counts["failed"]:
        print(f"clang-tidy: {len(findings)} finding(s). Fix each one, or silence a false positive "
              "on its line with NOLINT(check-name) and a comment saying why:")
        print("\n".join(findings))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
