"""The README's Python example runs as written, its Quick start names real commands, and its MNIST
table shows the committed results."""

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert blocks, "the README has no Python example"
    for block in blocks:
        result = subprocess.run(
            [sys.executable, "-c", block], capture_output=True, text=True, cwd=ROOT, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert float(result.stdout.split()[0]) > 0.99999  # the printed AEP/exact cosine


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_second():
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```sh\n(.*?)\n```", quick, re.S)
    assert len(commands) == 2, commands
    assert "circuitep demo" in commands[0]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1].strip() in ci, "'.ci/run' must run the README's test command"


#: The README's MNIST table names algorithms for people; the results file by their keys.
MNIST_ALGORITHMS = {
    "AEP": "aep",
    "EP": "ep",
    "VF": "vf",
    "bp (exact)": "bp",
    "output layer only": "output",
}


def _shown(stat) -> str:
    """An accuracy statistic as the README shows it: percent with 2 decimals, ± std over >1 seed."""
    if stat is None:
        return "–"
    mean = f"{100 * stat['mean']:.2f}"
    return f"{mean} %" if stat["seeds"] == 1 else f"{mean} ± {100 * stat['std']:.2f} %"


#: The settings the README's MNIST tables show, and where their results are committed.
MNIST_RESULTS = {
    "feedforward": ("mnist.json", "feedforward"),
    "layered": ("mnist.json", "layered"),
    "layered, cosine lr": ("mnist-cosine.json", "layered"),
}


def test_mnist_tables_match_the_committed_results():
    section = README.split("## MNIST", 1)[1].split("\n## ", 1)[0]
    rows = [
        [cell.strip().replace("*", "") for cell in line.split("|")[1:-1]]
        for line in section.splitlines()
        if line.startswith("| ") and not line.startswith("| setting")
    ]
    results = {
        name: json.loads((ROOT / "experiments" / "results" / name).read_text())
        for name in {file for file, _ in MNIST_RESULTS.values()}
    }
    expected = {
        (file, setting, algorithm)
        for file, setting in MNIST_RESULTS.values()
        for algorithm in results[file].get(setting, {})
    }
    shown = {(*MNIST_RESULTS[row[0]], MNIST_ALGORITHMS[row[1]]) for row in rows}
    assert shown == expected and len(rows) == len(expected), "one row per committed run"
    for setting, algorithm, seeds, epoch1, epoch20, last in rows:
        file, key = MNIST_RESULTS[setting]
        summary = results[file][key][MNIST_ALGORITHMS[algorithm]]
        if summary is None:  # not run
            assert (seeds.split()[0], epoch1, epoch20, last) == ("0", "", "", ""), (
                setting,
                algorithm,
            )
            continue
        assert seeds.split()[0] == str(summary["seeds"]), (setting, algorithm)
        assert epoch1 == _shown(summary["test_accuracy_epoch1"]), (setting, algorithm)
        assert epoch20 == _shown(summary["test_accuracy_epoch20"]), (setting, algorithm)
        assert last == _shown(summary["test_accuracy_last_epochs"]), (setting, algorithm)


def test_the_mismatch_table_shows_the_committed_monte_carlo():
    """The README's gain-mismatch table (section "The circuit is not the model") is the committed
    mc-digits-sigma-gain.json: median / worst cosines and test accuracy per sigma."""
    section = README.split("## The circuit is not the model", 1)[1].split("\n## ", 1)[0]
    doc = json.loads((ROOT / "experiments/results/mc-digits-sigma-gain.json").read_text())
    rows = [r for r in section.splitlines() if re.match(r"\| \d+ % \|", r)]
    assert len(rows) == len(doc["sweep"]["values"])
    for row, value, point in zip(rows, doc["sweep"]["values"], doc["sweep"]["points"], strict=True):
        s = point["summary"]
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[0] == f"{100 * value:g} %"
        for cell, name in zip(cells[1:5], ("aep", "model", "aep_own", "ep"), strict=True):
            assert cell == f"{s[name]['median_cosine']:.3f} / {s[name]['worst_cosine']:.3f}"
        a = s["test_accuracy"]
        assert cells[5] == f"{100 * a['mean']:.2f} ± {100 * a['std']:.2f} %"
