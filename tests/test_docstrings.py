"""Every public definition in circuitep has a docstring; functions describe their parameters.

Read with ``ast`` (nothing is imported). Public means a name not starting with ``_``: a class, a
module-level function, or a method of a public class (nested functions are not API). A public
module-level function or public method that takes parameters beyond ``self``/``cls`` needs a
numpydoc ``Parameters`` section. The CLI's argparse handlers (``cli.cmd_*``) may keep a one-line
docstring, which must say what they return (the exit status). See STYLE.md item 9.
"""

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "circuitep"

# the modules checked: every module (a new one must be added here: test_every_module_is_listed)
CHECKED = {
    "__init__.py",
    "builders.py",
    "compiler.py",
    "devices.py",
    "estimators.py",
    "kcl.py",
    "netlist.py",
    "sens.py",
    "variation.py",
    "cluster.py",
    "montecarlo.py",
    "spec.py",
    "elements/__init__.py",
    "elements/aep.py",
    "elements/bias.py",
    "elements/blocks.py",
    "elements/capacitance.py",
    "elements/diode_clamp.py",
    "elements/expr.py",
    "elements/leak.py",
    "elements/nudge.py",
    "elements/ota.py",
    "elements/params.py",
    "elements/registry.py",
    "elements/resistor.py",
    "elements/tanh.py",
    "elements/vccs.py",
    "engines/layered.py",
    "engines/measured.py",
    "engines/ota.py",
    "userfiles.py",
    "verilog_a.py",
    "engines/va.py",
    "transistors.py",
    "engines/newton.py",
    "engines/numpy_engine.py",
    "checks.py",
    "cli.py",
    "costs.py",
    "datasets.py",
    "demo.py",
    "fileio.py",
    "golden.py",
    "gradcheck.py",
    "phases.py",
    "plots.py",
    "report.py",
    "runs.py",
    "specio.py",
    "train.py",
    "engines/__init__.py",
    "engines/base.py",
    "engines/ngspice_engine.py",
    "engines/pool.py",
}

PARAMETERS = re.compile(r"^\s*Parameters\n\s*-{10,}\s*$", re.MULTILINE)


def _modules() -> list[str]:
    return sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py"))


def _parameters(fn: ast.FunctionDef | ast.AsyncFunctionDef, method: bool) -> list[str]:
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
    names += [x.arg for x in (a.vararg, a.kwarg) if x is not None]
    static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in fn.decorator_list)
    if method and not static and names and names[0] in ("self", "cls"):
        names = names[1:]
    return names


def _is_public_function(node: ast.AST) -> bool:
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    return isinstance(node, functions) and not node.name.startswith("_")


def _is_property(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for d in fn.decorator_list:
        name = d.attr if isinstance(d, ast.Attribute) else getattr(d, "id", "")
        if name in ("property", "cached_property", "setter"):
            return True
    return False


def _check_function(module: str, qualname: str, fn, method: bool, problems: list[str]) -> None:
    doc = ast.get_docstring(fn)
    where = f"circuitep/{module}:{fn.lineno} {qualname}"
    if not doc:
        problems.append(f"{where}: no docstring")
        return
    if module == "cli.py" and fn.name.startswith("cmd_"):
        if "exit status" not in doc:
            problems.append(f"{where}: an argparse handler's docstring must name its exit status")
        return
    if _parameters(fn, method) and not _is_property(fn) and not PARAMETERS.search(doc):
        problems.append(
            f"{where}: takes {', '.join(_parameters(fn, method))} but has no numpydoc "
            "Parameters section"
        )


def offenders(module: str, source: str | None = None) -> list[str]:
    """Every missing docstring or Parameters section in ``circuitep/<module>`` (or ``source``)."""
    source = (PACKAGE / module).read_text() if source is None else source
    tree = ast.parse(source, filename=module)
    problems: list[str] = []
    for node in tree.body:
        if _is_public_function(node):
            _check_function(module, node.name, node, False, problems)
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            if not ast.get_docstring(node):
                problems.append(f"circuitep/{module}:{node.lineno} class {node.name}: no docstring")
            for item in node.body:
                if _is_public_function(item):
                    _check_function(module, f"{node.name}.{item.name}", item, True, problems)
    return problems


def test_every_module_is_listed():
    unlisted = [m for m in _modules() if m not in CHECKED]
    assert not unlisted, f"add to CHECKED in {__file__}: {unlisted}"
    missing = sorted(CHECKED - set(_modules()))
    assert not missing, f"CHECKED lists modules that do not exist: {missing}"


def test_public_definitions_have_numpydoc_docstrings():
    problems = [p for module in sorted(CHECKED) for p in offenders(module)]
    assert not problems, f"{len(problems)} public definitions lack documentation:\n" + "\n".join(
        problems
    )


def test_the_checker_finds_what_it_must():
    """The checker itself: a bare function, a method without Parameters and a bare class are found;
    a documented one, a property and a parameterless method are not."""
    source = '''
def bare(x): pass
def documented(x):
    """Summary.

    Parameters
    ----------
    x : float
        In V.
    """
def _private(x): pass
class Bare:
    def method(self, y):
        """Only a summary."""
    def no_args(self):
        """Fine."""
    @property
    def value(self):
        """Fine."""
'''
    found = offenders("probe.py", source)
    text = "\n".join(found)
    assert len(found) == 3, text
    assert "bare: no docstring" in text and "class Bare: no docstring" in text
    assert "Bare.method: takes y but has no numpydoc Parameters section" in text
