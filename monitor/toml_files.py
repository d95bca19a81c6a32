"""Reading the project's TOML files (alarm profiles, scenario files): a shipped one by name or any file
by path, with an error that names the file and says what is wrong. One loader, so every config file
fails the same, clear way."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

ErrorFactory = Callable[[Path, str | None, str], Exception]


def load_named_toml(
    path_or_name: str | Path, folder: Path, what: str, error: ErrorFactory
) -> tuple[Path, dict[str, Any]]:
    """A string ending in ".toml" or containing a slash is a path; anything else names a file in `folder`."""
    text = str(path_or_name)
    if isinstance(path_or_name, Path) or text.endswith(".toml") or "/" in text:
        file = Path(path_or_name)
    else:
        file = folder / f"{text}.toml"
        if not file.is_file():
            available = ", ".join(sorted(p.stem for p in folder.glob("*.toml")))
            raise error(file, None, f"no {what} named {text!r}; available: {available}")
    try:
        with file.open("rb") as handle:
            return file, tomllib.load(handle)
    except OSError as exc:
        raise error(file, None, f"cannot read the file: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(file, None, f"not valid TOML: {exc}") from None
