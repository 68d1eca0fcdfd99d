"""Checks a results folder against what a remote GPU run can return, and lists its files.

    python scripts/check_outputs.py OUT_DIR [--max-files 8] [--max-depth 2]

The rules: at most --max-files files; each a plain file (no links, no special
files); every name in its path made of letters, digits, '.', '_' and '-';
at most --max-depth folders below OUT_DIR. Prints the files with their sizes,
then one line per broken rule, and exits 1 if any rule is broken.
"""
from __future__ import annotations

import argparse
import os
import re
import stat
import sys

ALLOWED_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
MAX_FILES, MAX_DEPTH = 8, 2


def problems_in(root: str, max_files: int = MAX_FILES, max_depth: int = MAX_DEPTH) -> tuple[list, list]:
    """(files as paths relative to root, problems as sentences) of the folder `root`."""
    if not os.path.isdir(root):
        return [], [f"{root} is not a folder"]
    files, problems = [], []
    for folder, subfolders, names in os.walk(root, followlinks=False):
        relative_folder = os.path.relpath(folder, root)
        depth = 0 if relative_folder == "." else len(relative_folder.split(os.sep))
        for name in sorted(subfolders + names):
            path = os.path.join(folder, name)
            relative = os.path.normpath(os.path.join(relative_folder, name))
            if not ALLOWED_NAME.match(name):
                problems.append(f"{ascii(relative)}: a name with characters other than letters, digits, '.', '_', '-'")
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                problems.append(f"{relative}: a link")
            elif name in subfolders:
                continue
            elif not stat.S_ISREG(mode):
                problems.append(f"{relative}: not a plain file")
            else:
                files.append(relative)
                if depth > max_depth:
                    problems.append(f"{relative}: {depth} folders deep (at most {max_depth})")
        subfolders[:] = [s for s in subfolders if not os.path.islink(os.path.join(folder, s))]
    if len(files) > max_files:
        problems.append(f"{len(files)} files (at most {max_files})")
    return sorted(files), problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--max-files", type=int, default=MAX_FILES)
    parser.add_argument("--max-depth", type=int, default=MAX_DEPTH)
    args = parser.parse_args(argv)
    files, problems = problems_in(args.out_dir, args.max_files, args.max_depth)
    for relative in files:
        print(f"{os.path.getsize(os.path.join(args.out_dir, relative)):>10}  {relative}")
    for problem in problems:
        print(f"output rule broken: {problem}")
    print(f"{len(files)} files in {args.out_dir}; " + ("rules kept" if not problems else f"{len(problems)} problems"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
