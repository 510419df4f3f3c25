"""docs/plugins.md documents every hook, and its worked example is the real example plugin."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from cellkit.plugins import hookspecs

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "plugins.md"
EXAMPLE = REPO / "plugins" / "cellkit-mobilenet"

HOOKS = sorted(
    name
    for name, obj in vars(hookspecs).items()
    if callable(obj) and hasattr(obj, f"{hookspecs.PROJECT_NAME}_spec")
)


@pytest.fixture(scope="module")
def doc() -> str:
    if not DOC.is_file():
        pytest.skip("docs/ is not in this checkout")
    return DOC.read_text()


def _hook_section(doc: str, name: str) -> str:
    match = re.search(rf"^### `{name}\((.*?)\)`\n(.*?)(?=^#{{1,3}} )", doc, flags=re.M | re.S)
    assert match, f"docs/plugins.md has no '### `{name}(...)`' section"
    return match.group(0)


def test_hooks_are_found():
    assert "cellkit_register_backbones" in HOOKS


@pytest.mark.parametrize("name", HOOKS)
def test_every_hookspec_is_documented_with_its_arguments(doc, name):
    section = _hook_section(doc, name)
    spec = getattr(hookspecs, name)
    assert inspect.getdoc(spec), f"hookspec {name} has no docstring"
    params = list(inspect.signature(spec).parameters)
    heading_args = re.match(rf"### `{name}\((.*?)\)`", section).group(1)
    assert [a.strip() for a in heading_args.split(",") if a.strip()] == params
    for param in params:
        assert f"`{param}`" in section
    if not params:
        assert "*Arguments:* none" in section
    assert "*Returns:*" in section


def test_every_documented_hook_exists(doc):
    reference = doc.split("## Hook reference", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^### `(\w+)\(", reference, flags=re.M)
    assert sorted(documented) == HOOKS


def test_worked_example_is_the_shipped_plugin_verbatim(doc):
    if not EXAMPLE.is_dir():
        pytest.skip("plugins/ is not in this checkout")
    for path in (EXAMPLE / "pyproject.toml", EXAMPLE / "src" / "cellkit_mobilenet" / "__init__.py"):
        assert path.read_text().strip() in doc, (
            f"docs/plugins.md does not show {path.relative_to(REPO)} verbatim"
        )


def test_python_snippets_compile(doc):
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    assert len(blocks) >= 3
    for block in blocks:
        compile(block, "docs/plugins.md", "exec")


def test_documents_the_entry_point_group_and_autoload_switch(doc):
    from cellkit.plugins import DISABLE_AUTOLOAD_ENV, ENTRY_POINT_GROUP

    assert f"[project.entry-points.{ENTRY_POINT_GROUP}]" in doc
    assert f"{DISABLE_AUTOLOAD_ENV}=1" in doc
    assert "`cellkit-<name>`" in doc


def test_run_time_registration_snippet_works(doc):
    from cellkit.plugins import reset_plugin_manager

    (block,) = [
        b for b in re.findall(r"```python\n(.*?)```", doc, flags=re.S) if "plugin_manager().register" in b
    ]
    namespace: dict = {}
    reset_plugin_manager()
    try:
        exec(compile(block, "docs/plugins.md", "exec"), namespace)
        assert namespace["model"].output.shape == (None, 8)
    finally:
        reset_plugin_manager()
