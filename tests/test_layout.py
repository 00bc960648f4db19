"""The floors of the code: what may import what (read from the sources with ``ast``), and the
docs' layout page naming every module of the tree."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("IRN", "GCN", "DeepLab", "wsgcn")


def project_imports(path):
    """The project modules ``path`` imports: ['wsgcn.infra.io', 'IRN.net.resnet50_cam', ...]."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [f"{node.module}.{alias.name}" for alias in node.names] if node.module in PACKAGES \
                else [node.module]
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return [name for name in found if name.split(".")[0] in PACKAGES]


def sources(folder):
    return sorted((ROOT / folder).rglob("*.py"))


def test_infra_imports_nothing_else_of_the_project():
    for path in sources("wsgcn/infra"):
        outside = [m for m in project_imports(path) if not m.startswith("wsgcn.infra")]
        assert not outside, f"{path.relative_to(ROOT)} imports {outside}"


def test_seg_stands_on_infra_only():
    for path in sources("wsgcn/seg"):
        outside = [m for m in project_imports(path) if not m.startswith(("wsgcn.infra", "wsgcn.seg"))]
        assert not outside, f"{path.relative_to(ROOT)} imports {outside}"


def test_the_ground_floor_imports_no_stage():
    for path in sources("wsgcn"):
        stages = [m for m in project_imports(path) if m.split(".")[0] != "wsgcn"]
        assert not stages, f"{path.relative_to(ROOT)} imports {stages}"


def test_stage_ii_takes_only_the_cam_network_from_stage_i():
    borrowed = {(str(path.relative_to(ROOT)), m) for path in sources("DeepLab") for m in project_imports(path)
                if m.startswith(("IRN", "GCN"))}
    assert borrowed == {("DeepLab/train.py", "IRN.net.resnet50_cam")}


def test_the_layout_page_names_every_module_of_the_tree():
    text = (ROOT / "docs/usage.md").read_text()
    layout = text[text.index("## Code layout"):]
    named = set(re.findall(r"`([\w/]+\.py)`", layout))
    for package in PACKAGES:
        for path in sources(package):
            if path.name == "__init__.py":
                continue
            relative = path.relative_to(ROOT / package)
            # the page names modules as `name.py` under their folder's item, or by their path
            assert {path.name, str(relative), str(path.relative_to(ROOT))} & named, \
                f"docs/usage.md's code layout does not name {path.relative_to(ROOT)}"
    for folder in ("wsgcn/infra", "wsgcn/seg"):
        assert f"`{folder.split('/')[1]}/`" in layout
