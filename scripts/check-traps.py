#!/usr/bin/env python3
"""Fails on Swift code in Sources/ that can trap on a value: a force unwrap
(`x!`), `try!`, `as!`, a trapping integer conversion (`Int(x)` of a floating
point or wider value; `Int(exactly:)`, `Int(clamping:)`,
`Int(truncatingIfNeeded:)` and `UInt8(ascii:)` cannot trap), `fatalError`,
`precondition`.

A line may stay only with an entry in scripts/trap-allowlist: the file, a
piece of the line, and a one-line reason why it cannot trap (a string parse
that returns an optional, a widening from a smaller type, a constant...).
Entries that match nothing are reported too, so the list stays true.

Comments and string literals are blanked before scanning, so that text
about `!` or `Int(` in them is not flagged.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
ALLOWLIST = ROOT / "scripts" / "trap-allowlist"

PATTERNS = [
    ("try!", re.compile(r"\btry!")),
    ("as!", re.compile(r"\bas!")),
    ("force unwrap", re.compile(r"(?<=[\w\)\]\}>])!(?!=)")),
    ("integer conversion", re.compile(r"\b(?:U?Int(?:8|16|32|64)?|time_t|Int32)\((?!\s*(?:exactly|clamping|truncatingIfNeeded|bitPattern|ascii)\s*:)")),
    ("fatalError", re.compile(r"\b(?:fatalError|preconditionFailure|precondition)\(")),
]


def blank(source: str) -> str:
    """Comments and string literals replaced by spaces, line breaks kept."""
    out = []
    i = 0
    n = len(source)
    while i < n:
        c = source[i]
        if source.startswith("//", i):
            j = source.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif source.startswith("/*", i):
            depth = 0
            j = i
            while j < n:
                if source.startswith("/*", j):
                    depth += 1
                    j += 2
                elif source.startswith("*/", j):
                    depth -= 1
                    j += 2
                    if depth == 0:
                        break
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", source[i:j]))
            i = j
        elif c == "#" and re.match(r'#+"', source[i:]):
            hashes = re.match(r'#+', source[i:]).group(0)
            triple = source.startswith(hashes + '"""', i)
            opener = hashes + ('"""' if triple else '"')
            closer = ('"""' if triple else '"') + hashes
            j = source.find(closer, i + len(opener))
            j = n if j < 0 else j + len(closer)
            out.append(re.sub(r"[^\n]", " ", source[i:j]))
            i = j
        elif c == '"':
            triple = source.startswith('"""', i)
            j = i + (3 if triple else 1)
            depth = 0
            while j < n:
                if source[j] == "\\":
                    if j + 1 < n and source[j + 1] == "(":
                        # Interpolation: skip to the matching parenthesis (its code is scanned as string, conservatively blanked).
                        depth += 1
                        j += 2
                        continue
                    j += 2
                    continue
                if depth > 0:
                    if source[j] == "(":
                        depth += 1
                    elif source[j] == ")":
                        depth -= 1
                    j += 1
                    continue
                if triple and source.startswith('"""', j):
                    j += 3
                    break
                if not triple and source[j] == '"':
                    j += 1
                    break
                if not triple and source[j] == "\n":
                    break
                j += 1
            out.append(re.sub(r"[^\n]", " ", source[i:j]))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def load_allowlist():
    entries = []
    for number, line in enumerate(ALLOWLIST.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(" | ")
        if len(parts) != 3 or not parts[2].strip():
            sys.exit(f"{ALLOWLIST}:{number}: expected 'path | piece of the line | reason'")
        entries.append({"path": parts[0].strip(), "snippet": parts[1].strip(), "reason": parts[2].strip(), "used": False,
                        "line": number})
    return entries


def main():
    entries = load_allowlist()
    problems = []
    for path in sorted((ROOT / "Sources").rglob("*.swift")):
        relative = str(path.relative_to(ROOT))
        original = path.read_text().splitlines()
        scanned = blank(path.read_text()).splitlines()
        for number, (code, text) in enumerate(zip(scanned, original), 1):
            for name, pattern in PATTERNS:
                if not pattern.search(code):
                    continue
                allowed = [e for e in entries if e["path"] == relative and e["snippet"] in text]
                for entry in allowed:
                    entry["used"] = True
                if not allowed:
                    problems.append(f"{relative}:{number}: {name}: {text.strip()}")
    for entry in entries:
        if not entry["used"]:
            problems.append(f"{ALLOWLIST.relative_to(ROOT)}:{entry['line']}: matches nothing any more: {entry['path']} | {entry['snippet']}")
    if problems:
        print("Code that can trap on a value (fix it, or allow-list it with a reason in scripts/trap-allowlist):")
        print("\n".join(problems))
        sys.exit(1)
    print(f"check-traps: no unlisted trap in Sources/ ({len(entries)} allow-listed lines)")


if __name__ == "__main__":
    main()
