#!/usr/bin/env python3
"""extract_sd_modules.py: turn the module tables of sd-modules.md into the keymap test fixtures.

Usage: python3 scripts/extract_sd_modules.py PATH/TO/sd-modules.md
(the module tables document the fixtures were first made from; it is not part of this repository, and
the committed .tsv files are the fixtures: docs/keymap.md "Module tables")

Writes, under tests/data/ of the repository:
  sd15_modules.tsv  section A (SD1.5 U-Net, kohya names = flattened diffusers paths) plus the four
                    LyCORIS-preset extras (conv_in, conv_out, time_embedding.linear_1/2)
  sdxl_modules.tsv  section B (SDXL U-Net, kohya names = flattened SGM/LDM paths)
  te_modules.tsv    sections C.1-C.3 (lora_te / lora_te1 / lora_te2), the elided "..." rows expanded
                    to every layer (12 / 12 / 32)

Each file is tab-separated, one module per line, after a '#' header line:
  kohya_name  checkpoint_key  rows  shape
checkpoint_key is the full key of the weight in the single-file checkpoint; rows is "-" or "a:b" for a
row slice of that weight (SDXL TE2 q/k/v in attn.in_proj_weight); shape is the module's weight shape
as "d0,d1,..." (for a slice: the slice's shape). The files are committed fixtures of
tests/keymap/test_keymap.c; CI does not regenerate them. Python 3 standard library only.
"""
import os
import re
import sys

UNET_PREFIX = "model.diffusion_model."


def strip_cell(cell):
    cell = cell.strip()
    if len(cell) >= 2 and cell[0] == "`" and cell[-1] == "`":
        cell = cell[1:-1]
    return cell


def parse_shape(text):
    m = re.fullmatch(r"\(([0-9, ]+)\)", text.strip())
    if not m:
        raise ValueError("bad shape %r" % text)
    return ",".join(d.strip() for d in m.group(1).split(",") if d.strip())


def split_sections(lines):
    """Sections keyed by heading text ('' for the part before the first '## '); values: line lists."""
    sections = {"": []}
    cur = ""
    for line in lines:
        if line.startswith("## ") or line.startswith("### "):
            cur = line.lstrip("#").strip()
            sections[cur] = []
        else:
            sections[cur].append(line)
    return sections


def table_rows(lines):
    """Body rows (lists of cells) of every markdown table in lines; header and separator dropped."""
    rows = []
    for i, line in enumerate(lines):
        if not line.startswith("|"):
            continue
        if re.fullmatch(r"\|(\s*:?-+:?\s*\|)+\s*", line):
            continue
        if i + 1 < len(lines) and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+\s*", lines[i + 1]):
            continue  # header row
        cells = [strip_cell(c) for c in line.strip().strip("|").split("|")]
        rows.append(cells)
    return rows


def find_section(sections, start):
    for name, body in sections.items():
        if name.startswith(start):
            return name, body
    raise SystemExit("sd-modules.md: no section starting with %r" % start)


def stated_count(body):
    for line in body:
        m = re.match(r"^(\d+) modules\.", line.strip())
        if m:
            return int(m.group(1))
    return None


def unet_rows(body, what):
    out = []
    for cells in table_rows(body):
        name, ldm, shape = cells[0], cells[1], cells[2]
        if not name.startswith("lora_unet_"):
            raise SystemExit("%s: unexpected row %r" % (what, cells))
        out.append((name, UNET_PREFIX + ldm + ".weight", "-", parse_shape(shape)))
    n = stated_count(body)
    if n is not None and n != len(out):
        raise SystemExit("%s: %d rows, the file says %d" % (what, len(out), n))
    return out


def te_rows(heading, body):
    m = re.search(r"(\d+) layers", heading)
    if not m:
        raise SystemExit("%s: no layer count in heading" % heading)
    nlayers = int(m.group(1))
    rows = [c for c in table_rows(body) if c[0] != "…"]
    first = [c for c in rows if "_layers_0_" in c[0]]
    last = [c for c in rows if "_layers_%d_" % (nlayers - 1) in c[0]]
    if len(first) != 6 or len(last) != 6 or len(rows) != 12:
        raise SystemExit("%s: expected 6 rows for layer 0 and 6 for layer %d" % (heading, nlayers - 1))

    def row(cells, n):
        name, _hf, key, shape = cells
        name = name.replace("_layers_0_", "_layers_%d_" % n)
        key = key.replace(".layers.0.", ".layers.%d." % n).replace(".resblocks.0.", ".resblocks.%d." % n)
        sl = "-"
        ms = re.fullmatch(r"(.*)\[(\d+):(\d+), :\]", key)
        if ms:
            key, sl = ms.group(1), "%s:%s" % (ms.group(2), ms.group(3))
        return (name, key, sl, parse_shape(shape))

    out = [row(c, n) for n in range(nlayers) for c in first]
    # The expansion must reproduce the last layer the file lists.
    listed_last = [row(c, nlayers - 1) for c in last]
    if out[-6:] != listed_last:
        raise SystemExit("%s: expanded layer %d differs from the listed one" % (heading, nlayers - 1))
    return out


def write_tsv(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("# generated by scripts/extract_sd_modules.py from sd-modules.md; "
                "columns: kohya_name checkpoint_key rows shape\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    print("%s: %d modules" % (path, len(rows)))


def main(argv):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if len(argv) != 2:
        raise SystemExit("usage: extract_sd_modules.py PATH/TO/sd-modules.md")
    src = argv[1]
    with open(src, encoding="utf-8") as f:
        lines = f.read().splitlines()
    sections = split_sections(lines)

    extras = []
    for cells in table_rows(sections[""]):
        name, ldm, shape = cells[0], cells[1], cells[2]
        extras.append((name, UNET_PREFIX + ldm + ".weight", "-", parse_shape(shape)))
    if len(extras) != 4:
        raise SystemExit("expected 4 LyCORIS-preset extra rows, found %d" % len(extras))

    _, body_a = find_section(sections, "A.")
    _, body_b = find_section(sections, "B.")
    sd15 = unet_rows(body_a, "section A") + extras
    sdxl = unet_rows(body_b, "section B")
    te = []
    for sec in ("C.1", "C.2", "C.3"):
        heading, body = find_section(sections, sec)
        te += te_rows(heading, body)

    out_dir = os.path.join(root, "tests", "data")
    os.makedirs(out_dir, exist_ok=True)
    write_tsv(os.path.join(out_dir, "sd15_modules.tsv"), sd15)
    write_tsv(os.path.join(out_dir, "sdxl_modules.tsv"), sdxl)
    write_tsv(os.path.join(out_dir, "te_modules.tsv"), te)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
