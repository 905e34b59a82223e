"""
The twistd plugin is found from an installed package, and stays cheap to load.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile

import pytest

from tests.conftest import REPO


def test_help_does_not_import_numpy(tmp_path):
    """`twistd iradialer --help` reads the options only: no numpy, no simulator."""
    script = (
        "import sys\n"
        "from twisted.scripts.twistd import run\n"
        "sys.argv = ['twistd', 'iradialer', '--help']\n"
        "try:\n    run()\nexcept SystemExit:\n    pass\n"
        "print('NUMPY' if 'numpy' in sys.modules else 'NO-NUMPY')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    assert "--config" in out and "--simulate" in out and "--manhole" in out
    assert out.strip().endswith("NO-NUMPY")


@pytest.mark.slow
def test_plugin_discovered_from_installed_wheel(tmp_path):
    """
    Build the wheel, install it somewhere that is not the checkout, and ask Twisted for its
    plugins from there (site processing off, so the editable checkout is not on the path).
    """
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("iradialer-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "twisted/plugins/iradialer_plugin.py" in names
    assert "twisted/__init__.py" not in names and "twisted/plugins/__init__.py" not in names
    assert not any(n.startswith("tests/") for n in names)

    target = tmp_path / "installed"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    site_packages = sysconfig.get_paths()["purelib"]
    script = (
        "from twisted.plugin import getPlugins\n"
        "from twisted.application.service import IServiceMaker\n"
        "import iradialer\n"
        "found = [p for p in getPlugins(IServiceMaker) if p.tapname == 'iradialer']\n"
        "print(len(found), found[0].module, iradialer.__file__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", script],
        cwd=tmp_path,
        env={"PYTHONPATH": f"{target}:{site_packages}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0] == "1" and out[1] == "iradialer.tap"
    assert out[2].startswith(str(target))
