#!/usr/bin/env python3
"""Checks that the two ways of building the image agree, and that every manifest names it.

  check_image.py packages SOURCE BINARY
      daemonset/Containerfile's runtime package list (its `apt-get download` line) equals what
      scripts/image.sh derives from BINARY (ldd + dpkg -S, plus ca-certificates): the packages
      that own exactly the libraries the binary links. A library added to the build without a
      Containerfile change, or a package left in it after a library went, fails here.
  check_image.py refs SOURCE NAME VERSION
      daemonset/daemonset.yaml's image is NAME:VERSION (the CMake project version), and the Helm
      chart's values.yaml names NAME as image.repository and its Chart.yaml VERSION as appVersion
      (the tag the chart uses when image.tag is empty).
"""
import os
import re
import subprocess
import sys


def containerfile_packages(source):
    text = open(os.path.join(source, "daemonset", "Containerfile")).read()
    text = text.replace("\\\n", " ")
    m = re.search(r"apt-get download ([^&\n]+)", text)
    if not m:
        sys.exit("FAIL: daemonset/Containerfile has no `apt-get download ...` runtime package list")
    return set(m.group(1).split())


def image_sh_packages(source, binary):
    out = subprocess.run(["bash", os.path.join(source, "scripts", "image.sh"), "packages", binary],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    return set(out.split())


def check_packages(source, binary):
    listed = containerfile_packages(source)
    derived = image_sh_packages(source, binary)
    problems = []
    for p in sorted(derived - listed):
        problems.append("%s provides a library of %s, but daemonset/Containerfile does not "
                        "download it: add it to the runtime list" % (p, binary))
    for p in sorted(listed - derived):
        problems.append("daemonset/Containerfile downloads %s, which provides none of the "
                        "binary's libraries: remove it" % p)
    return problems, "%d runtime packages, the same in both" % len(derived)


def yaml_value(text, key):
    """The value of the first `key: value` line (top level or nested) in a simple YAML file."""
    m = re.search(r"^\s*%s:\s*\"?([^\"#\n]*?)\"?\s*(#.*)?$" % re.escape(key), text, re.M)
    return m.group(1).strip() if m else None


def check_refs(source, name, version):
    problems = []
    ds = open(os.path.join(source, "daemonset", "daemonset.yaml")).read()
    images = re.findall(r"^\s*image:\s*(\S+)", ds, re.M)
    want = "%s:%s" % (name, version)
    if images != [want]:
        problems.append("daemonset/daemonset.yaml names image %s; the build makes %s (the CMake "
                        "project version): change one" % (images, want))
    chart = os.path.join(source, "daemonset", "chart")
    if os.path.isdir(chart):
        values = open(os.path.join(chart, "values.yaml")).read()
        meta = open(os.path.join(chart, "Chart.yaml")).read()
        if yaml_value(values, "repository") != name:
            problems.append("daemonset/chart/values.yaml image.repository is %s, not %s"
                            % (yaml_value(values, "repository"), name))
        if yaml_value(meta, "appVersion") != version:
            problems.append("daemonset/chart/Chart.yaml appVersion is %s, not %s"
                            % (yaml_value(meta, "appVersion"), version))
    else:
        problems.append("daemonset/chart/ is missing")
    return problems, "every manifest names %s" % want


def main(argv):
    if len(argv) == 4 and argv[1] == "packages":
        problems, ok = check_packages(argv[2], argv[3])
    elif len(argv) == 5 and argv[1] == "refs":
        problems, ok = check_refs(argv[2], argv[3], argv[4])
    else:
        print(__doc__)
        return 2
    for p in problems:
        print("FAIL: " + p)
    print("image: %s" % ("%d problem(s)" % len(problems) if problems else ok))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
