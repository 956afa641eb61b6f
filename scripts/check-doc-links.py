#!/usr/bin/env python3
"""Checks the links of README.md and docs/*.md: every relative link names a
file that exists and, with a #fragment, a heading of that file (GitHub's
anchor rules); every page of docs/ is linked from README.md. Web links are
not fetched. Prints each problem and exits 1 when there is any.

Usage: scripts/check-doc-links.py   (from anywhere in the repository)
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def strip_code_blocks(text):
    """The text without fenced code blocks, line numbers kept."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            out.append("")
        else:
            out.append("" if fenced else line)
    return out


def anchors(path):
    """GitHub's anchors for the headings of a Markdown file."""
    seen, result = {}, set()
    for line in strip_code_blocks(path.read_text(encoding="utf-8")):
        m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        title = re.sub(r"`([^`]*)`", r"\1", m.group(2))
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        result.add(slug if n == 0 else f"{slug}-{n}")
    return result


def main():
    pages = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
    problems, checked = [], 0
    linked_from_readme = set()
    for page in pages:
        for number, line in enumerate(strip_code_blocks(page.read_text(encoding="utf-8")), 1):
            for target in LINK.findall(line):
                if re.match(r"^[a-z]+:", target):
                    continue
                checked += 1
                where = f"{page.relative_to(ROOT)}:{number}: {target}"
                file_part, _, fragment = target.partition("#")
                dest = (page.parent / file_part).resolve() if file_part else page
                if not dest.exists():
                    problems.append(f"{where}: no such file")
                    continue
                if page.name == "README.md" and page.parent == ROOT:
                    linked_from_readme.add(dest)
                if fragment:
                    if dest.suffix != ".md":
                        problems.append(f"{where}: a fragment into a file that is not Markdown")
                    elif fragment not in anchors(dest):
                        problems.append(f"{where}: no heading #{fragment} in {dest.relative_to(ROOT)}")
    for page in pages[1:]:
        if page.resolve() not in linked_from_readme:
            problems.append(f"{page.relative_to(ROOT)}: not linked from README.md")
    for problem in problems:
        print(problem)
    print(f"{checked} links checked in {len(pages)} pages, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
