"""Which programming language a piece of (OCR'd) code is written in: a scored heuristic.

Why a heuristic and not a model: no offline classifier ships here, and a handful of syntax
markers per language separates the common ones well even through OCR noise. Each language has
weighted regular expressions; a language's score is the sum of the weights of the markers found
(each counted at most `_CAP` times, so one repeated idiom cannot dominate). A file name's
extension, when the editor shows one, outweighs everything else.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

_CAP = 3
EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".java": "java",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".hpp": "cpp",
    ".cxx": "cpp",
    ".go": "go",
    ".rs": "rust",
    ".sh": "shell",
    ".bash": "shell",
    ".zsh": "shell",
}

# (pattern, weight) per language; patterns run per line with re.MULTILINE on the whole text.
_MARKERS: dict[str, list[tuple[str, float]]] = {
    "python": [
        (r"^\s*def \w+\(.*\)\s*(->\s*[\w\[\], .|]+)?:\s*$", 3),
        (r"^\s*(from [\w.]+ )?import [\w., ]+$", 2),
        (r"^\s*class \w+(\(.*\))?:\s*$", 2),
        (r"\bself\.", 1.5),
        (r"^\s*(if|elif|while|for) .*:\s*$", 1.5),
        (r"\bNone\b|\bTrue\b|\bFalse\b", 1),
        (r'"""', 2),
        (r"\bprint\(", 1),
        (r"^\s*@\w+", 1),
        (r"\belif\b|\blambda\b|\bexcept\b", 2),
        (r"\bf\"", 1),
    ],
    "javascript": [
        (r"\b(const|let|var) \w+\s*=", 2),
        (r"\bfunction\s*\w*\s*\(", 2.5),
        (r"=>", 1.5),
        (r"\bconsole\.log\(", 3),
        (r"\brequire\(['\"]", 3),
        (r"^\s*(export|import) .*from ['\"]", 2),
        (r"===|!==", 2),
        (r"\bundefined\b|\bnull\b", 1),
        (r";\s*$", 0.5),
        (r"\basync\b|\bawait\b", 0.5),
        (r"\bdocument\.|\bwindow\.", 2),
    ],
    "typescript": [
        (r"\binterface \w+\s*\{", 3),
        (r"\btype \w+\s*=", 2.5),
        (r"\w+\s*:\s*(string|number|boolean|void|any)\b", 3),
        (r"\b(const|let) \w+\s*:\s*\w+", 2),
        (r"\bexport (default )?(function|class|const|interface)\b", 1),
        (r"===|!==", 1),
        (r"=>", 1),
        (r"<\w+>\(", 1),
        (r"\bimport .* from ['\"]", 1),
    ],
    "java": [
        (r"\b(public|private|protected) (static )?(final )?[\w<>\[\]]+ \w+\s*\(", 3),
        (r"\bpublic class \w+", 3),
        (r"\bSystem\.out\.print", 3),
        (r"^\s*import java\.", 3),
        (r"\bString\[\] args\b", 3),
        (r"\bnew \w+(<.*>)?\(", 1),
        (r";\s*$", 0.5),
        (r"@Override\b", 2),
        (r"^\s*package [\w.]+;", 2),
    ],
    "c": [
        (r"^\s*#include\s*<\w+\.h>", 3),
        (r"\bprintf\(", 2),
        (r"\bint main\s*\(", 2),
        (r"\bmalloc\(|\bfree\(", 2),
        (r"\b(struct|typedef)\b", 1),
        (r"^\s*#define\b", 2),
        (r"\bchar \*", 1.5),
        (r";\s*$", 0.5),
        (r"->", 0.5),
    ],
    "cpp": [
        (r"^\s*#include\s*<\w+>", 3),
        (r"\bstd::", 3),
        (r"\bcout\s*<<|<<\s*std::endl", 3),
        (r"\bnamespace \w+|using namespace\b", 3),
        (r"\btemplate\s*<", 3),
        (r"\bauto \w+\s*=", 1.5),
        (r"\bclass \w+\s*(:\s*public \w+)?\s*\{", 1.5),
        (r";\s*$", 0.5),
        (r"\bvector<", 2),
    ],
    "go": [
        (r"^\s*package \w+\s*$", 3),
        (r"\bfunc (\(\w+ \*?\w+\) )?\w+\(", 3),
        (r":=", 2.5),
        (r"\bfmt\.\w+\(", 3),
        (r"^\s*import \(\s*$|^\s*import \"\w+\"", 2),
        (r"\berr != nil\b", 3),
        (r"\bstruct \{", 1),
        (r"\bchan\b|\bgo func\b|\bdefer\b", 2),
        (r"\[\]\w+", 1),
    ],
    "rust": [
        (r"\bfn \w+(<.*>)?\(", 3),
        (r"\blet mut\b", 3),
        (r"\bprintln!\(|\bvec!\[|\bformat!\(", 3),
        (r"\bimpl\b", 2),
        (r"\buse \w+(::\w+)+", 2.5),
        (r"->\s*(Self|Result|Option|[A-Z]\w*|i32|u32|usize|String)", 1),
        (r"\bpub (fn|struct|enum)\b", 2),
        (r"&(mut )?self\b", 3),
        (r"::new\(", 1),
        (r"\bmatch \w+ \{", 2),
        (r"\bSome\(|\bOk\(|\bErr\(", 1.5),
    ],
    "shell": [
        (r"^#!\s*/(usr/)?bin/(env )?(ba|z)?sh", 5),
        (r"^\s*(echo|export|cd|mkdir|grep|sed|awk|curl) ", 2),
        (r"\$\{?\w+\}?", 1),
        (r"^\s*if \[\[? .* \]\]?;? *(then)?$", 3),
        (r"^\s*(fi|done|esac)\s*$", 3),
        (r"^\s*for \w+ in .*; *do$|^\s*do\s*$", 2),
        (r"\|\s*\w+", 0.5),
        (r"^\s*\w+=\S", 1),
        (r"\$\(", 2),
        (r"^\s*set -\w+", 2),
    ],
}
_COMPILED = {lang: [(re.compile(p, re.MULTILINE), w) for p, w in ms] for lang, ms in _MARKERS.items()}
_EXT_WEIGHT = 50.0


def language_scores(text: str, filename: str | None = None) -> dict[str, float]:
    """Score per language (higher is likelier); `filename`'s extension adds a large bonus."""
    scores = {
        lang: sum(w * min(_CAP, len(p.findall(text))) for p, w in pats) for lang, pats in _COMPILED.items()
    }
    # TypeScript is JavaScript plus types: JS markers count towards it too, so typed code wins there.
    scores["typescript"] += 0.5 * scores["javascript"] if scores["typescript"] >= 3 else 0.0
    # C++ includes most of C: a C file has no C++ markers, a C++ file gets C's as well.
    if scores["cpp"] >= 3:
        scores["cpp"] += 0.5 * scores["c"]
    if filename:
        lang = EXTENSIONS.get(PurePosixPath(filename).suffix.lower())
        if lang:
            scores[lang] += _EXT_WEIGHT
    return scores


def detect_language(text: str, filename: str | None = None) -> tuple[str, float]:
    """(language, confidence in [0, 1]); ("text", 0.0) when nothing looks like code."""
    scores = language_scores(text, filename)
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    best, top = ranked[0]
    if top < 2.0:
        return "text", 0.0
    second = ranked[1][1]
    return best, round(min(1.0, (top - second) / top + 0.2), 3)
