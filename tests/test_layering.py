"""Imports run one way: elements -> spec -> physics -> netlists -> engines -> estimators -> training
-> cli."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "circuitep"

# a module may import only from its own layer or the layers below
LAYERS = [
    {"checks", "devices", "netlist", "datasets", "fileio", "costs", "phases"},
    # circuitep/elements/: one module per element kind (their equations, parameter tables and
    # SPICE), the registry that lists them and the AEP correction: below the spec, which reads
    # their tables. Every module of the package sits here (a new kind needs no entry).
    {"elements.*"},
    {"spec"},
    {"kcl", "builders", "specio", "variation"},
    {"compiler", "transistors", "userfiles", "verilog_a"},
    {
        "engines.base",
        "engines.newton",
        "engines.numpy_engine",
        "engines.layered",
        "engines.ngspice_engine",
        "engines.pool",
        "engines.measured",
        "engines.ota",
        "engines.va",
    },
    {"estimators", "sens", "report", "plots", "golden", "cluster"},
    {"gradcheck", "train"},
    {"runs", "demo"},
    {"montecarlo"},
    {"cli"},
]


def layer_of(module: str) -> int:
    for k, layer in enumerate(LAYERS):
        if module in layer or module.startswith("elements.") and "elements.*" in layer:
            return k
    raise AssertionError(
        f"module circuitep.{module} is not placed in a layer of tests/test_layering.py"
    )


def test_no_import_points_upward():
    problems = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "__init__.py":
            continue
        module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("circuitep")
            ):
                names = (
                    [node.module[len("circuitep.") :]]
                    if node.module != "circuitep"
                    else [a.name for a in node.names]
                )
                if (PACKAGE / names[0].replace(".", "/")).is_dir() and node.module != "circuitep":
                    names = [
                        f"{names[0]}.{a.name}" for a in node.names
                    ]  # from circuitep.elements import x
                for target in names:
                    if layer_of(target) > layer_of(module):
                        problems.append(f"circuitep.{module} imports circuitep.{target}")
    assert not problems, "imports against the data flow:\n" + "\n".join(problems)
