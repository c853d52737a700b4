"""Tidier Snakemake logs for the avvp workflow.

With `printshellcmds` (both profiles) Snakemake prints the command of every job, and for a rule
whose body is a `script:` (most of ours are one call into the package) that line reads
"Shell command: None". `hide_empty_shell_commands` drops exactly those lines; the commands of
shell rules are still printed.
"""
from __future__ import annotations

import logging


def _has_a_command(record: logging.LogRecord) -> bool:
    return not (str(getattr(record, "event", "")) == "shellcmd" and getattr(record, "shellcmd", "") is None)


def hide_empty_shell_commands() -> None:
    """Filter Snakemake's logger (call once from the Snakefile)."""
    from snakemake.logging import logger

    if _has_a_command not in logger.filters:
        logger.addFilter(_has_a_command)
