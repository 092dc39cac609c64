#!/usr/bin/env python3
"""sync-help.py: rewrite every "$ lorafuse CMD --help" block of the docs with the program's own output.

test_cli_options fails when a block differs from `lorafuse CMD --help`; after changing a subcommand's
options or help text, run this from the repository root (after building) and commit the result:

    python3 scripts/sync-help.py [--bin build/lorafuse] [FILE.md ...]   (default: README.md, docs/*.md)
"""
import argparse
import glob
import re
import subprocess

ap = argparse.ArgumentParser()
ap.add_argument("--bin", default="build/lorafuse")
ap.add_argument("files", nargs="*")
args = ap.parse_args()
files = args.files or ["README.md"] + sorted(glob.glob("docs/*.md"))
block = re.compile(r"```text\n\$ lorafuse ([a-z-]+) --help\n.*?```", re.S)


def render(m):
    cmd = m.group(1)
    out = subprocess.run([args.bin, cmd, "--help"], capture_output=True, text=True, check=True).stdout
    return "```text\n$ lorafuse %s --help\n%s```" % (cmd, out)


for path in files:
    text = open(path, encoding="utf-8").read()
    new = block.sub(render, text)
    if new != text:
        open(path, "w", encoding="utf-8").write(new)
        print("updated", path)
