"""The one direction of dependence: tracker -> engines <- trainer, and nothing else."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"engines": {"tracker", "trainer"}, "tracker": {"trainer"}, "trainer": {"tracker"}}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_in_the_allowed_direction(package):
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = imported_packages(path) & FORBIDDEN[package]
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {', '.join(sorted(bad))}")
    assert not offenders, "\n".join(offenders)


# engines' own layers: each sub-package imports only those below it (engines.errors: anyone)
ENGINES_LAYERS = {
    "common": set(),                                    # frames, boxes, letterbox, atomic files
    "models": {"common"},                               # networks, presets, catalogue, weights
    "hub": {"common", "models"},                        # downloads and the model cache
    "runtimes": {"common", "hub", "models"},            # backends that run a network
    "detectors": {"common", "hub", "models", "runtimes"},
    "pose": {"common", "hub", "models", "runtimes"},    # estimator, processing, codec, schemas
    "formats": {"common", "pose"},                      # PoseTrack / COCO files (pose: the schemas)
    "tools": {"common", "models", "hub", "runtimes", "detectors", "pose", "formats"},  # the CLIs
}


def engines_imports() -> dict[str, set[str]]:
    """Sub-package -> the other engines sub-packages its modules import."""
    found = {name: set() for name in ENGINES_LAYERS}
    for path in sorted((ROOT / "engines").rglob("*.py")):
        parts = path.relative_to(ROOT / "engines").parts
        if len(parts) < 2:
            continue                                    # engines/__init__, __main__, errors
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            modules = ([node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                       else [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
            for module in modules:
                target = module.split(".")
                if target[0] == "engines" and len(target) > 1 and target[1] not in ("errors", parts[0]):
                    found.setdefault(parts[0], set()).add(target[1])
    return found


def test_every_engines_sub_package_has_a_layer():
    assert set(engines_imports()) == set(ENGINES_LAYERS)


@pytest.mark.parametrize("package", sorted(ENGINES_LAYERS))
def test_engines_sub_packages_import_only_the_layers_below(package):
    extra = engines_imports()[package] - ENGINES_LAYERS[package]
    assert not extra, f"engines/{package} imports engines.{', engines.'.join(sorted(extra))}"


def test_engines_layers_have_no_cycle():
    graph, done = engines_imports(), set()

    def visit(node, path):
        assert node not in path, " -> ".join(path + [node])
        if node not in done:
            for target in graph.get(node, ()):
                visit(target, path + [node])
            done.add(node)

    for node in graph:
        visit(node, [])
