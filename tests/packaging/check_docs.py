#!/usr/bin/env python3
"""Checks the documentation's shape: README.md stays short and is the way in to docs/.

  check_docs.py ROOT          check the repository at ROOT
  check_docs.py --self-test   check this checker against small trees it makes

Fails, saying what to fix, when
- README.md has more than 200 lines;
- a file under docs/ is not linked from README.md;
- a relative link in README.md or in a Markdown file under docs/ points to a file that does not
  exist, or to a heading (#anchor) that the target Markdown file does not have.

Links are Markdown inline links and reference definitions outside code; links with a scheme
(https:, mailto:, ...) are not followed. Anchors follow GitHub's rule: the heading's text, lower
case, without punctuation, spaces as hyphens, and -1, -2, ... for repeats.
"""
import os
import re
import sys
import tempfile

MAX_README_LINES = 200

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
INLINE_LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def outside_code(text):
    """The lines of `text` that are not in fenced code blocks, as (line number, line)."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def slug(heading):
    text = INLINE_LINK.sub(lambda m: m.group(1), heading)
    text = INLINE_CODE.sub(lambda m: m.group(2), text)
    text = text.replace("*", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    seen = {}
    out = set()
    with open(path, encoding="utf-8") as f:
        for _, line in outside_code(f.read()):
            m = HEADING.match(line)
            if not m:
                continue
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else "%s-%d" % (base, n))
    return out


def links(path):
    """(line number, target) of every link in the Markdown file at `path`."""
    with open(path, encoding="utf-8") as f:
        for number, line in outside_code(f.read()):
            ref = REFERENCE.match(line)
            if ref:
                yield number, ref.group(1)
                continue
            for m in INLINE_LINK.finditer(INLINE_CODE.sub("", line)):
                yield number, m.group(2)


def docs_files(root):
    out = []
    for folder, dirs, files in os.walk(os.path.join(root, "docs")):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                out.append(os.path.normpath(os.path.join(folder, name)))
    return out


def check(root):
    """Every problem found under `root`, one line each; empty when the docs are in shape."""
    problems = []
    readme = os.path.join(root, "README.md")
    if not os.path.isfile(readme):
        return ["README.md: missing"]
    with open(readme, encoding="utf-8") as f:
        lines = len(f.read().splitlines())
    if lines > MAX_README_LINES:
        problems.append("README.md: %d lines, at most %d allowed; move detail to a file under docs/"
                        " and link it" % (lines, MAX_README_LINES))

    docs = docs_files(root)
    markdown = [readme] + [d for d in docs if d.endswith(".md")]
    linked_from_readme = set()
    anchor_cache = {}
    for source in markdown:
        where = os.path.relpath(source, root)
        for number, target in links(source):
            if not target or SCHEME.match(target):
                continue
            path_part, _, anchor = target.partition("#")
            if path_part:
                resolved = os.path.normpath(os.path.join(os.path.dirname(source), path_part))
            else:
                resolved = source
            if not os.path.exists(resolved):
                problems.append("%s:%d: link to %s, which does not exist" % (where, number, target))
                continue
            if source == readme:
                linked_from_readme.add(resolved)
            if anchor and resolved.endswith(".md") and os.path.isfile(resolved):
                if resolved not in anchor_cache:
                    anchor_cache[resolved] = anchors(resolved)
                if anchor not in anchor_cache[resolved]:
                    problems.append("%s:%d: link to %s, but %s has no heading with the anchor #%s" %
                                    (where, number, target, os.path.relpath(resolved, root),
                                     anchor))
    for doc in docs:
        if doc not in linked_from_readme:
            problems.append("README.md: does not link %s; every file under docs/ must be linked "
                            "from the README" % os.path.relpath(doc, root))
    return problems


def self_test():
    """Each rule on a tree that keeps it and on one that breaks it; the checker must tell them
    apart, or this check could pass by construction."""
    good_readme = ("# x\n\nSee [a](docs/a.md), [b's part](docs/b.md#the-part-two) and "
                   "[web](https://example.invalid/missing.md).\n\n```sh\n# not a heading\n"
                   "[not a link](docs/none.md)\n```\n\nInline `[code](docs/none.md)` is no link.\n"
                   "[ref]: docs/a.md#a-title\n")
    good = {
        "README.md": good_readme,
        "docs/a.md": "# A title\n\n[back](../README.md), [b](b.md#the-part-two), [self](#a-title)\n",
        "docs/b.md": "# B\n\n## The `part`: two\n\ntext\n",
    }
    cases = [
        ("good tree", good, []),
        ("README too long", dict(good, **{"README.md": good_readme + "line\n" * 200}),
         ["lines, at most 200"]),
        ("unlinked doc", dict(good, **{"docs/c.md": "# C\n"}), ["does not link docs/c.md"]),
        ("unlinked non-Markdown doc", dict(good, **{"docs/img/d.png": "x"}),
         ["does not link docs/img/d.png"]),
        ("missing file", dict(good, **{"docs/a.md": "# A title\n\n[gone](gone.md)\n"}),
         ["docs/a.md:3: link to gone.md, which does not exist"]),
        ("missing anchor", dict(good, **{"docs/a.md": "# A title\n\n[b](b.md#nope)\n"}),
         ["has no heading with the anchor #nope"]),
        ("missing anchor in the file itself",
         dict(good, **{"docs/a.md": "# A title\n\n[self](#a-titl)\n"}), ["anchor #a-titl"]),
        ("broken link in the README",
         dict(good, **{"README.md": good_readme + "[x](docs/missing.md)\n"}),
         ["README.md:12: link to docs/missing.md"]),
    ]
    failures = []
    for name, files, expected in cases:
        with tempfile.TemporaryDirectory() as root:
            for rel, text in files.items():
                path = os.path.join(root, rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
            got = check(root)
        if not expected and got:
            failures.append("%s: expected no problem, got %s" % (name, got))
        for want in expected:
            if not any(want in line for line in got):
                failures.append("%s: expected a problem containing %r, got %s" % (name, want, got))
        if expected and len(got) != len(expected):
            failures.append("%s: expected %d problem(s), got %s" % (name, len(expected), got))
    for heading, want in [("Memory, and the DaemonSet's resources",
                           "memory-and-the-daemonsets-resources"),
                          ("`--run-as-user UID[:GID]`", "--run-as-user-uidgid"),
                          ("Extrapolation to 5,000 nodes", "extrapolation-to-5000-nodes"),
                          ("[Link](x.md) and **bold**", "link-and-bold")]:
        if slug(heading) != want:
            failures.append("slug(%r) = %r, expected %r" % (heading, slug(heading), want))
    return failures


def main(argv):
    if argv[1:] == ["--self-test"]:
        failures = self_test()
        for line in failures:
            print("FAIL " + line)
        print("self-test: %s" % ("failed" if failures else "ok"))
        return 1 if failures else 0
    if len(argv) != 2:
        print(__doc__)
        return 2
    problems = check(argv[1])
    for line in problems:
        print(line)
    print("docs: %s" % ("%d problem(s)" % len(problems) if problems else "ok"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
