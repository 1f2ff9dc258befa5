"""Tool ids (``name`` or ``name:version``) and version resolution.

A version is ``v?MAJOR.MINOR.PATCH`` with an optional channel: ``v1.0.0-stable``,
``v2.1.0-beta``, ``1.4.2``. A version without a channel, or with channel ``stable``, is
*stable*. References resolve like this:

- ``name:v1.0.0-stable`` — exactly that version (``name:v1.0.0`` also finds ``-stable``);
- ``name`` — the unversioned tool of that name if there is one, else the newest stable version;
- ``name:latest`` — the newest version of any channel; ``name:stable`` — the newest stable one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from toolrun.errors import InvalidDefinition, ToolNotFound

NAME_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}"
VERSION_PATTERN = r"v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([A-Za-z0-9][A-Za-z0-9.\-]*))?"
_NAME_RE = re.compile(rf"^{NAME_PATTERN}$")
_VERSION_RE = re.compile(rf"^{VERSION_PATTERN}$")
ALIASES = ("latest", "stable")
MAX_VERSION_LENGTH = 64
STABLE_CHANNELS = ("", "stable")


@dataclass(frozen=True, order=True)
class Version:
    """A parsed version; orders by number, then stable above any other channel."""

    major: int
    minor: int
    patch: int
    stable: bool
    channel: str
    text: str

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _VERSION_RE.match(text)
        if not match:
            raise InvalidDefinition(
                f"invalid version {text!r}: expected v<major>.<minor>.<patch>[-channel], "
                "e.g. v1.0.0-stable"
            )
        major, minor, patch, channel = match.groups()
        channel = channel or ""
        return cls(int(major), int(minor), int(patch), channel in STABLE_CHANNELS, channel, text)

    @property
    def number(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)


def validate_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise InvalidDefinition(
            f"invalid tool name {name!r}: use 1-128 letters, digits, '_', '.', '-', "
            "not starting with '.' or '-'"
        )
    return name


def validate_version(version: str | None) -> str | None:
    if version in (None, ""):
        return None
    assert version is not None
    if version in ALIASES:
        raise InvalidDefinition(f"{version!r} is a reserved alias, not a version")
    if len(version) > MAX_VERSION_LENGTH:
        raise InvalidDefinition(f"version {version[:80]!r}... is longer than {MAX_VERSION_LENGTH}")
    Version.parse(version)
    return version


def make_id(name: str, version: str | None) -> str:
    return f"{name}:{version}" if version else name


@dataclass(frozen=True)
class ToolRef:
    """A reference as a user writes it: a name and an optional version or alias."""

    name: str
    version: str | None

    @classmethod
    def parse(cls, ref: str) -> ToolRef:
        name, sep, version = ref.partition(":")
        if not name or (sep and not version) or ":" in version:
            raise ToolNotFound(f"{ref!r} is not a tool reference: use name or name:version")
        return cls(name, version or None)

    def resolve(self, candidates: Iterable[str | None]) -> str | None:
        """Pick the version this reference means among the stored versions of its name.

        ``candidates`` are the stored version strings (``None`` for the unversioned tool).
        Returns the chosen version (``None`` for the unversioned one); raises
        :class:`ToolNotFound` with a helpful message when nothing fits.
        """
        stored = list(candidates)
        versions = sorted(Version.parse(v) for v in stored if v)
        if self.version is None:
            if None in stored:
                return None
            stable = [v for v in versions if v.stable]
            if stable:
                return stable[-1].text
            return self._missing("has no stable version", versions)
        if self.version == "latest":
            if versions:
                return versions[-1].text
            if None in stored:
                return None
            return self._missing("has no versions", versions)
        if self.version == "stable":
            stable = [v for v in versions if v.stable]
            if stable:
                return stable[-1].text
            return self._missing("has no stable version", versions)
        if self.version in stored:
            return self.version
        try:
            wanted = Version.parse(self.version)
        except InvalidDefinition:
            return self._missing(f"has no version {self.version!r}", versions)
        if not wanted.channel:
            for v in reversed(versions):
                if v.number == wanted.number and v.stable:
                    return v.text
        return self._missing(f"has no version {self.version!r}", versions)

    def _missing(self, why: str, versions: list[Version]) -> str | None:
        known = ", ".join(v.text for v in versions) or "none"
        raise ToolNotFound(f"tool {self.name!r} {why} (stored versions: {known})")
