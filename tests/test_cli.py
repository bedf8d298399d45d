"""`moalign.cli`: every command module is imported; one that fails to import is an error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from moalign import cli


def test_a_broken_command_module_is_an_error_naming_it(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken_commands.py").write_text("import no_such_dependency_for_moalign\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match="'broken_commands' failed to import") as info:
        cli.load_commands(["moalign.commands.scoring", "broken_commands"])
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    assert "no_such_dependency_for_moalign" in str(info.value)


def test_a_missing_command_module_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "moalign.commands.serve", None)  # import now fails
    with pytest.raises(ImportError, match="'moalign.commands.serve' failed to import"):
        cli.load_commands()


def test_importing_the_cli_fails_when_a_command_module_does() -> None:
    code = "import sys; sys.modules['moalign.commands.serve'] = None; import moalign.cli"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0
    assert "'moalign.commands.serve' failed to import" in proc.stderr
