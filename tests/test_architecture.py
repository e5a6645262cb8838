"""The package rules of aggregator/*/__init__.py, checked on every import of every module.

Imports are read with ``ast`` (those inside functions and under TYPE_CHECKING count too), so
a rule broken by a lazy import is caught as surely as one at the top of a file.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "aggregator"

# Lowest first: a layer may import the ones before it, never one after it.
ORDER = (
    "base",
    "store",
    "extraction",
    "translation",
    "pipeline",
    "polling",
    "publishing",
    "desk",
    "web",
    "service",
    "cli",
)
# Top-level modules (aggregator/*.py) are base modules, importing only each other, except
# these, put in the layer their imports give them.
LAYER_OF_MODULE = {
    "aggregator.pipeline": "pipeline",
    "aggregator.full_text": "pipeline",  # where the entry stage takes the article from
    "aggregator.shapes": "desk",  # the drafts' JSON, as the CLI and the API print it
    "aggregator.__main__": "cli",
}
# What each package's docstring allows, where it is stricter than the order.
ALLOWED: dict[str, set[str]] = {
    "base": {"base"},
    "store": {"base"},
    "extraction": {"base"},
    "translation": {"base", "extraction"},
    "pipeline": {"base", "store", "extraction", "translation"},
    "polling": {"base", "store", "pipeline"},
    "publishing": {"base", "extraction", "store"},
    "desk": {"base", "store", "extraction", "translation", "publishing"},
    "web": {"base", *ORDER[1:8]},
    "service": set(ORDER[:10]),
    "cli": set(ORDER),
}
# Polling's HTTP interpretation and pure scheduling decisions import only base modules, so
# translation (an engine's Retry-After) and the pipeline (articles, retries) may use them.
POLLING_LEAVES = {
    "aggregator.polling.fetch",
    "aggregator.polling.connect",
    "aggregator.polling.decide",
}
MAY_USE_POLLING_LEAVES = {"translation", "pipeline"}
HTTP_FRAMEWORKS = {"starlette", "uvicorn", "fastapi"}
MAY_USE_HTTP_FRAMEWORKS = {"web", "service"}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    if module in LAYER_OF_MODULE:
        return LAYER_OF_MODULE[module]
    if module == "aggregator" or (PACKAGE / f"{module.split('.')[1]}.py").exists():
        return "base"
    package = module.split(".")[1]
    assert package in ORDER, f"{module} is in no layer: add its package to ORDER"
    return package


def imports_of(path: Path, root: Path = PACKAGE) -> Iterator[tuple[int, str]]:
    """(line, name) of every import in the file: ``from aggregator.polling import decide``
    imports aggregator.polling.decide, ``from aggregator.store import Store`` the store."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            for alias in node.names:
                yield node.lineno, f"{source}.{alias.name}"


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def known_module(name: str) -> str | None:
    """The aggregator module ``name`` is or lies in (a name imported from it), or None."""
    while name.startswith("aggregator"):
        path = PACKAGE.parent / name.replace(".", "/")
        if path.with_suffix(".py").exists() or (path / "__init__.py").exists():
            return name
        name = name.rpartition(".")[0]
    return None


def broken_rules(path: Path, root: Path = PACKAGE) -> list[str]:
    here = module_name(path, root)
    layer = layer_of(here)
    broken = []
    for line, name in imports_of(path, root):
        where = f"{path.relative_to(root.parent)}:{line}"
        if name.split(".")[0] in HTTP_FRAMEWORKS and layer not in MAY_USE_HTTP_FRAMEWORKS:
            broken.append(f"{where}: {layer} imports {name} (only web/ and service/ may)")
        target = known_module(name)
        if target is None or target == here or target.startswith(f"{here}."):
            continue
        if target == "aggregator" and name != "aggregator":
            continue  # ``from aggregator import __version__``: the base package
        allowed = ALLOWED[layer] | {layer}
        if target in POLLING_LEAVES and (layer in MAY_USE_POLLING_LEAVES or layer == "polling"):
            continue
        if layer_of(target) not in allowed:
            broken.append(f"{where}: {layer} ({here}) imports {target} ({layer_of(target)})")
    return broken


@pytest.mark.parametrize("path", modules(), ids=lambda p: module_name(p))
def test_every_import_keeps_the_package_rules(path: Path) -> None:
    assert broken_rules(path) == []


def test_the_rules_never_let_a_layer_import_a_higher_one() -> None:
    for layer, allowed in ALLOWED.items():
        higher = {other for other in allowed if ORDER.index(other) > ORDER.index(layer)}
        assert not higher, f"{layer} may import {higher}, above it"


def test_polling_leaves_import_only_base_modules_and_each_other() -> None:
    for leaf in POLLING_LEAVES:
        path = PACKAGE.parent / (leaf.replace(".", "/") + ".py")
        targets = {known_module(name) for _, name in imports_of(path)} - {
            None,
            "aggregator.polling",
        }
        outside = {t for t in targets if t not in POLLING_LEAVES and layer_of(str(t)) != "base"}
        assert not outside, f"{leaf} imports {outside}"


@pytest.mark.parametrize(
    ("where", "code", "complaint"),
    [
        ("store/feeds.py", "def later():\n    from aggregator.polling import decide\n",
         "store (aggregator.store.feeds) imports aggregator.polling.decide"),
        ("store/memory.py", "if True:\n    from aggregator.translation import translate\n",
         "store (aggregator.store.memory) imports aggregator.translation.translate"),
        ("desk/service.py", "from starlette.requests import Request\n",
         "desk imports starlette.requests"),
        ("polling/refresh.py", "import aggregator.desk.compare\n",
         "polling (aggregator.polling.refresh) imports aggregator.desk.compare"),
        ("translation/engines.py", "from aggregator.polling.fetch import parse_retry_after\n",
         None),  # a polling leaf, allowed
    ],
)  # fmt: skip
def test_a_broken_rule_is_named_even_in_a_function_body(
    tmp_path: Path, where: str, code: str, complaint: str | None
) -> None:
    sample = tmp_path / "aggregator" / where
    sample.parent.mkdir(parents=True)
    sample.write_text(code, encoding="utf-8")
    broken = broken_rules(sample, tmp_path / "aggregator")
    if complaint is None:
        assert broken == []
    else:
        assert len(broken) == 1 and complaint in broken[0], broken
