"""What every command module of the CLI shares: the exit codes and the shape of ``add``."""

from __future__ import annotations

import argparse
from typing import Callable

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

Command = Callable[[argparse.Namespace], int]
# add(name, command, help) -> the subcommand's parser, with --config/--set already on it
AddCommand = Callable[[str, Command, str], argparse.ArgumentParser]
