#!/usr/bin/env python3
"""The docs checks (test/run.sh runs them; make test counts their lines).

  - README.md is at most 300 lines;
  - every page in docs/ is linked from README.md;
  - every relative link in README.md, docs/*.md and the READMEs under src/
    resolves to a file or directory of the checkout, and its #anchor, where it
    has one, to a heading of the target page (GitHub's heading slugs), or
    (#L10, #L10-L20 into a source file) to lines it has;
  - every flag and SDR_CREDS_* environment variable that the HTTP server's
    --help and the refresher's usage print is documented in README.md or docs/.

Prints one "ok - docs: ..." or "not ok - docs: ..." line per check, with
"# " lines saying what failed; exits 1 if any check failed.

    test/docs/check.py [--root DIR]
The binaries are SDR_SERVER and SDR_REFRESHER (test/run.sh sets them), by
default src/server/sdr_creds_server and src/refresher/sdr_creds_refresher.
"""
import argparse
import glob
import os
import re
import subprocess
import sys
import unicodedata

README_MAX_LINES = 300

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target "title") and ![alt](target); the target has no spaces or
# angle brackets, or is written <like this>
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(\S+)")
LINE_ANCHOR = re.compile(r"^L(\d+)(?:-L(\d+))?$")      # GitHub's #L10 or #L10-L20 in a source file
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
ENV = re.compile(r"\bSDR_CREDS_[A-Z0-9_]+\b")

results = []


def report(ok, what, details=()):
    results.append(ok)
    print(("ok" if ok else "not ok") + " - docs: " + what)
    for d in details:
        print("# " + d)


def prose_lines(text):
    """The lines outside fenced code blocks, with their 1-based numbers."""
    fence = None
    for n, line in enumerate(text.split("\n"), 1):
        m = FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif m.group(1) == fence:
                fence = None
            continue
        if fence is None:
            yield n, line


def slug(heading):
    """GitHub's anchor for a heading: its text, lower case, without
    punctuation but hyphens and underscores, spaces made hyphens."""
    text = CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)   # links: their text
    text = re.sub(r"<[^>]+>", "", text)                       # inline HTML
    text = re.sub(r"(\*+|(?<!\w)_+|_+(?!\w))", "", text)      # emphasis markers
    out = []
    for ch in text.lower():
        cat = unicodedata.category(ch)
        if ch in "-_" or cat[0] in "LN" or cat == "Mn":
            out.append(ch)
        elif ch == " ":
            out.append("-")
    return "".join(out)


def anchors(path, cache={}):
    if path not in cache:
        seen = {}
        found = set()
        with open(path, encoding="utf-8") as f:
            for _, line in prose_lines(f.read()):
                m = HEADING.match(line)
                if not m:
                    continue
                s = slug(m.group(2))
                if s in seen:
                    seen[s] += 1
                    s = "%s-%d" % (s, seen[s])
                else:
                    seen[s] = 0
                found.add(s)
        cache[path] = found
    return cache[path]


def links(text):
    """(line number, target) of each link outside code blocks and code spans."""
    for n, line in prose_lines(text):
        line = CODE_SPAN.sub("", line)
        for m in INLINE_LINK.finditer(line):
            yield n, m.group(1).strip("<>")
        m = REFERENCE_DEF.match(line)
        if m:
            yield n, m.group(1).strip("<>")


def check_links(root, rel):
    path = os.path.join(root, rel)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    bad = []
    count = 0
    for n, target in links(text):
        if SCHEME.match(target) or target.startswith("//"):
            continue                                   # http:, https:, mailto:
        count += 1
        file_part, _, anchor = target.partition("#")
        dest = path if file_part == "" else os.path.normpath(os.path.join(os.path.dirname(path), file_part))
        if os.path.relpath(dest, root).startswith(".."):
            bad.append("%s:%d: %s leaves the checkout" % (rel, n, target))
        elif not os.path.exists(dest):
            bad.append("%s:%d: %s: no such file" % (rel, n, target))
        elif anchor:
            lines = LINE_ANCHOR.match(anchor)
            if lines and os.path.isfile(dest) and not dest.endswith(".md"):
                with open(dest, encoding="utf-8", errors="replace") as f:
                    length = len(f.read().splitlines())
                if int(lines.group(2) or lines.group(1)) > length:
                    bad.append("%s:%d: %s: %s has %d lines" % (rel, n, target, os.path.relpath(dest, root), length))
            elif not dest.endswith(".md") or os.path.isdir(dest):
                bad.append("%s:%d: %s: an anchor into a file that is not Markdown" % (rel, n, target))
            elif anchor not in anchors(dest):
                bad.append("%s:%d: %s: no heading #%s in %s" % (rel, n, target, anchor, os.path.relpath(dest, root)))
    report(not bad, "relative links in %s resolve, #anchors included (%d link%s)"
           % (rel, count, "" if count == 1 else "s"), bad)


def usage_text(binary, args):
    """What the binary prints (stdout and stderr) when run with args."""
    try:
        p = subprocess.run([binary] + args, capture_output=True, text=True, timeout=10)
    except OSError as e:
        return None, "cannot run %s: %s" % (binary, e.strerror)
    except subprocess.TimeoutExpired:
        return None, "%s %s did not exit within 10 s" % (binary, " ".join(args))
    return p.stdout + p.stderr, None


def check_flags(name, binary, args, documented):
    text, error = usage_text(binary, args)
    if text is None:
        report(False, "every flag that %s prints is documented" % name, [error])
        return
    flags = sorted(set(FLAG.findall(text)))
    env = sorted(set(ENV.findall(text)))
    missing = [f for f in flags if not re.search(r"(?<![\w-])" + re.escape(f) + r"(?![\w-])", documented)]
    missing += [e for e in env if not re.search(r"\b" + re.escape(e) + r"\b", documented)]
    details = ["%s is not in README.md or docs/" % m for m in missing]
    if not flags:
        details.append("%s %s printed no flags:" % (binary, " ".join(args)))
        details += text.splitlines()[:5]
    report(not details, "every flag (%d) and environment variable (%d) that %s %s prints is documented"
           % (len(flags), len(env), name, " ".join(args)), details)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=os.path.normpath(os.path.join(here, "..", "..")))
    root = ap.parse_args().root

    readme = os.path.join(root, "README.md")
    with open(readme, encoding="utf-8") as f:
        readme_text = f.read()
    nlines = len(readme_text.splitlines())
    report(nlines <= README_MAX_LINES, "README.md is at most %d lines (%d)" % (README_MAX_LINES, nlines))

    pages = sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, "docs", "*.md")))
    linked = {os.path.normpath(os.path.join(root, t.partition("#")[0]))
              for _, t in links(readme_text) if not SCHEME.match(t)}
    unlinked = [p for p in pages if os.path.join(root, p) not in linked]
    report(pages and not unlinked, "every page in docs/ (%d) is linked from README.md" % len(pages),
           ["%s is not linked from README.md" % p for p in unlinked] or ([] if pages else ["no docs/*.md"]))

    src_readmes = sorted(os.path.relpath(p, root)
                         for p in glob.glob(os.path.join(root, "src", "**", "README.md"), recursive=True))
    for rel in ["README.md"] + pages + src_readmes:
        check_links(root, rel)

    documented = readme_text
    for p in pages:
        with open(os.path.join(root, p), encoding="utf-8") as f:
            documented += "\n" + f.read()
    server = os.environ.get("SDR_SERVER") or os.path.join(root, "src/server/sdr_creds_server")
    refresher = os.environ.get("SDR_REFRESHER") or os.path.join(root, "src/refresher/sdr_creds_refresher")
    check_flags("sdr_creds_server", server, ["--help"], documented)
    # the refresher has no --help: an unknown flag prints its usage (exit 2)
    check_flags("sdr_creds_refresher", refresher, ["--help"], documented)
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
