"""Video-to-code: language heuristic, observation merging, and end to end on generated tutorials.

The slow tests render narrated tutorials (1280x720 H.264, code typed line by line over >= 60 s),
run the real pipeline (Tesseract OCR, faster-whisper, decode) and compare with the ground truth
the generator recorded: final text (exact lines, indentation included), language, and the time
each line appeared against the step that added it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from analysis.code_lang import detect_language
from analysis.code_merge import Obs, merge

SNIPPETS = {
    "python": "import os\n\ndef main(path: str) -> None:\n    if not path:\n        return None\n    print(path)\n",
    "javascript": "const fs = require('fs');\nfunction main(path) {\n  if (path === undefined) {\n"
    "    console.log('no path');\n  }\n  return fs.readFileSync(path);\n}\n",
    "typescript": "interface User {\n  name: string;\n  age: number;\n}\nexport function greet(u: User): string {\n"
    "  return `hi ${u.name}`;\n}\n",
    "java": "public class Main {\n    public static void main(String[] args) {\n"
    '        System.out.println("hi");\n    }\n}\n',
    "c": "#include <stdio.h>\n#include <stdlib.h>\n\nint main(void) {\n    char *p = malloc(10);\n"
    '    printf("%s\\n", p);\n    free(p);\n    return 0;\n}\n',
    "cpp": "#include <iostream>\n#include <vector>\nusing namespace std;\n\nint main() {\n"
    "    std::vector<int> v = {1, 2};\n    std::cout << v.size() << std::endl;\n}\n",
    "go": 'package main\n\nimport "fmt"\n\nfunc main() {\n    x := 3\n    if err != nil {\n        return\n    }\n'
    "    fmt.Println(x)\n}\n",
    "rust": "use std::collections::HashMap;\n\nfn main() {\n    let mut m = HashMap::new();\n"
    '    m.insert(1, 2);\n    println!("{:?}", m);\n}\n',
    "shell": '#!/usr/bin/env bash\nset -euo pipefail\nfor f in *.txt; do\n  echo "$f"\ndone\n'
    'if [ -z "$HOME" ]; then\n  exit 1\nfi\n',
}


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_detect_language_every_language(language: str) -> None:
    assert detect_language(SNIPPETS[language])[0] == language


def test_detect_language_prose_is_text_and_extension_wins() -> None:
    assert detect_language("Welcome to the talk. Today we discuss markets.")[0] == "text"
    assert detect_language(SNIPPETS["c"], "main.cpp")[0] == "cpp"


def test_merge_votes_out_a_single_misread_and_keeps_indentation() -> None:
    cw = 12.0

    def obs(t: float, row: int, text: str, col: int = 0, full: bool = True) -> Obs:
        return Obs(t, 40 + col * cw, 50 + row * 26, len(text) * cw, 18, text, full)

    seen = [
        obs(0, 0, "def f(x):"),
        obs(1, 0, "def f(x):"),
        obs(1, 1, "return x", col=4, full=False),
        obs(2, 0, "def f(x);"),
        obs(2, 1, "return x", col=4),
        obs(3, 0, "def f(x):"),
        obs(3, 1, "return x", col=4),
    ]
    merged = merge(seen)
    assert merged.text == "def f(x):\n    return x"
    assert [s.t for s in merged.states] == [0, 1]


@dataclass
class Case:
    video: object
    result: list


LONG_PY = '''import json
from pathlib import Path

class Store:
    """Keep records on disk."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.count = 0

    def save(self, key: str, value: dict) -> None:
        path = self.root / f"{key}.json"
        path.write_text(json.dumps(value))
        self.count += 1

    def load(self, key: str) -> dict:
        path = self.root / f"{key}.json"
        if not path.exists():
            raise KeyError(key)
        return json.loads(path.read_text())'''
PY_SAID = [
    "First we import json and pathlib.",
    "Now a class that stores records.",
    "The constructor keeps the root folder and a counter.",
    "Save writes one record as JSON.",
    "Load reads it back and fails on a missing key.",
]

JS = """const fs = require("fs");

function readConfig(path) {
  const text = fs.readFileSync(path, "utf8");
  return JSON.parse(text);
}

function main() {
  const config = readConfig("config.json");
  if (config.debug === true) {
    console.log("debug mode");
  }
  return config;
}

module.exports = { readConfig, main };"""
JS_SAID = [
    "We load the file system module.",
    "This function reads and parses the config file.",
    "Main reads the config and logs debug mode.",
    "Finally we export both functions.",
]

GO = """package main

import "fmt"

type Counter struct {
	name  string
	value int
}

func (c *Counter) Add(n int) {
	c.value += n
}

func main() {
	c := &Counter{name: "hits"}
	c.Add(3)
	fmt.Println(c.name, c.value)
}""".replace("\t", "    ")
GO_SAID = [
    "This is the main package.",
    "We import fmt for printing.",
    "A counter has a name and a value.",
    "Add increases the value.",
    "Main makes a counter and prints it.",
]


def _analyze(path: Path, data_dir: Path) -> list:
    from analysis.runner import analyze
    from analysis.schema import AnalysisRequest
    from cluster.config import load_settings

    settings = load_settings(env={"VIDRAY_DATA_DIR": str(data_dir), "VIDRAY_OFFLINE": "1"})
    result = analyze(str(path), AnalysisRequest(tasks=["code"]), settings)
    assert not result.public().get("errors"), result.public().get("errors")
    return list(result.code or [])


_SPECS = {
    "python": (LONG_PY, PY_SAID, {"filename": "store.py", "theme": "dark", "seconds_per_line": 3.0}),
    "javascript": (JS, JS_SAID, {"filename": "config.js", "theme": "light", "seconds_per_line": 4.0}),
    "go": (GO, GO_SAID, {"theme": "light", "line_numbers": False, "seconds_per_line": 3.5}),
}


@pytest.fixture(scope="module")
def tutorials(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Case]:
    """Each language's tutorial is made and analysed once, on first use (so each test's timeout covers one)."""
    from vidray.samples_tutorial import make_tutorial_video

    d = tmp_path_factory.mktemp("tutorials")
    done: dict[str, Case] = {}

    def get(language: str) -> Case:
        if language not in done:
            code, said, opts = _SPECS[language]
            tv = make_tutorial_video(d / f"{language}.mp4", code, language=language, narration=said, **opts)
            done[language] = Case(tv, _analyze(tv.path, d / "data"))
        return done[language]

    return get


def _line_accuracy(truth: str, got: str) -> float:
    t, g = truth.split("\n"), got.split("\n")
    return sum(1 for a, b in zip(t, g, strict=False) if a == b) / len(t)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # one tutorial made + OCR + Whisper: ~5 min on a busy 2-core machine
@pytest.mark.parametrize("language", ["python", "javascript", "go"])
def test_tutorial_code_recovered(tutorials: Callable[[str], Case], language: str) -> None:
    case = tutorials(language)
    tv = case.video
    assert tv.duration >= 60
    assert len(case.result) == 1, [f.filename for f in case.result]
    f = case.result[0]
    accuracy = _line_accuracy(tv.final_code, f.text)
    print(f"{language}: {accuracy:.3f} of {len(tv.final_code.splitlines())} lines exact")
    assert accuracy >= 0.9, f.text
    assert f.language == language
    if language == "python":
        assert f.filename == "store.py"


@pytest.mark.slow
@pytest.mark.timeout(1800)  # one tutorial made + OCR + Whisper: ~5 min on a busy 2-core machine
@pytest.mark.parametrize("language", ["python", "javascript", "go"])
def test_tutorial_steps_match_typing_times(tutorials: Callable[[str], Case], language: str) -> None:
    case = tutorials(language)
    tv, f = case.video, case.result[0]
    errors = []
    lines = tv.final_code.split("\n")
    for i, line in enumerate(lines):
        if not line.strip() or lines.count(line) > 1:  # "}" twice: which step added which is ambiguous
            continue
        added = [s for s in f.steps if any(d == "+" + line for d in s.diff.splitlines())]
        if added:
            errors.append(abs(added[0].start - tv.line_times[i]))
    errors_arr = np.array(errors)
    print(
        f"{language}: step timing |error| mean {errors_arr.mean():.2f} s, max {errors_arr.max():.2f} s "
        f"over {len(errors)} lines"
    )
    assert len(errors) >= 0.8 * sum(1 for x in lines if x.strip() and lines.count(x) == 1)
    assert (errors_arr <= 2.0).mean() >= 0.9
    # Narration: the step adding the first line overlaps the first spoken sentence.
    assert any(s.narration for s in f.steps)
    assert all(s.end >= s.start for s in f.steps)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_two_files_in_title_bar_become_two_code_files(tmp_path: Path) -> None:
    from vidray.samples_tutorial import TutorialFile, make_tutorial_video

    greet = TutorialFile(
        'import sys\n\ndef greet(name):\n    return "hi " + name\n',
        ["We import sys.", "Greet builds a greeting."],
        "greet.py",
    )
    script = TutorialFile(
        '#!/usr/bin/env bash\nset -eu\nfor f in *.txt; do\n  echo "$f"\ndone',
        ["A bash script.", "It prints every text file."],
        "list.sh",
        step_lines=[2, 3],
    )
    tv = make_tutorial_video(
        tmp_path / "two.mp4", [greet, script], language="mixed", theme="light", seconds_per_line=2.5
    )
    files = _analyze(tv.path, tmp_path / "data")
    assert [(f.filename, f.language) for f in files] == [("greet.py", "python"), ("list.sh", "shell")]
    assert _line_accuracy(tv.files["list.sh"], files[1].text) >= 0.8
    first_step = files[1].steps[0]
    assert abs(first_step.start - tv.file_line_times["list.sh"][0]) <= 2.0
