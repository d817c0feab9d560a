"""The CLI imports only the module of the sub-command that runs, and still lists every command."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys

from wirecorr import cli


def test_command_list_matches_each_modules_parser() -> None:
    """`wirecorr --help` shows cli's line per command: it must be the one the module's add_parser gives."""
    for name, (module, summary) in cli.COMMANDS.items():
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        importlib.import_module(module).add_parser(sub)
        helps = {action.dest: action.help for action in sub._choices_actions}
        assert helps[name] == summary, name


def test_help_of_one_command_loads_no_other() -> None:
    """`wirecorr query --help` must not pay for the engine, the recorder or the labs."""
    code = (
        "import json, sys\n"
        "from wirecorr.cli import main\n"
        "try:\n"
        "    main(['query', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('wirecorr.'))), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "usage: wirecorr query" in out.stdout
    loaded = json.loads(out.stderr.strip().splitlines()[-1])
    assert "wirecorr.commands.query" in loaded
    heavy = [
        m for m in loaded if m.startswith(("wirecorr.engine", "wirecorr.labs", "wirecorr.views", "wirecorr.recording"))
    ]
    assert heavy == []
