"""What a remote client (REST, an external registry) may not decide about a tool.

Trust is the operator's: a tool runs inside the API process only with ``isolation="inline"``,
and that is granted at start-up (``--demo``, discovery) or with ``toolrun register`` on the
server's own data directory, never over the network. For the same reason a remote write may
not point a tool at a folder to import code from (``metadata.source_folder``), nor change the
runtime or policy of a tool that is already trusted.
"""

from __future__ import annotations

from toolrun.errors import NotPermitted
from toolrun.registry.discovery import SOURCE_FOLDER
from toolrun.registry.tool import Tool

OPERATOR_ONLY = (
    "only the operator can grant that: register the tool at start-up "
    "(TOOLRUN_FUNCTIONS_DIRS / TOOLRUN_FUNCTIONS_PACKAGES) or with `toolrun register` "
    "on the server's data directory"
)


def check_remote_write(new: Tool, current: Tool | None = None) -> None:
    """Raise :class:`NotPermitted` (403) when a remote write would grant trust."""
    was_trusted = current is not None and current.policy.trusted
    if new.policy.trusted and not was_trusted:
        raise NotPermitted(
            f"isolation 'inline' runs {new.id} inside the API process; " + OPERATOR_ONLY
        )
    if (
        was_trusted
        and current is not None
        and (new.runtime != current.runtime or new.policy != current.policy)
    ):
        raise NotPermitted(
            f"{new.id} is trusted (runs inside the API process), so its runtime and policy "
            "cannot be changed remotely; " + OPERATOR_ONLY
        )
    old_folder = current.metadata.get(SOURCE_FOLDER) if current is not None else None
    if new.metadata.get(SOURCE_FOLDER) != old_folder:
        raise NotPermitted(
            f"metadata.{SOURCE_FOLDER} says where code is imported from; " + OPERATOR_ONLY
        )
