"""``run --reload``: the supervisor of ``serve/workers.py`` with one worker, restarted when a
watched file changes (watchfiles, as uvicorn's reloader uses).

uvicorn's options and defaults: ``--reload-dir`` (default: the current directory),
``--reload-include`` (default ``*.py``), ``--reload-exclude`` (default ``.*``, ``.py[cod]``,
``.sw.*``, ``~*``; a pattern naming an existing directory excludes that directory),
``--reload-delay`` (0.25 s between checks). The new server is started, and the old one stopped
once the new one serves: an edit that breaks the app leaves the old one serving (uvicorn stops
it first and serves nothing until the next edit). An app that does not start at all (or a
server that exits) is started again at the next change, as uvicorn's reloader does: the
reloader prints the error and keeps watching.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from fastrapi_compat.errors import StartupError
from fastrapi_compat.serve.logs import SERVER_LOGGER

logger = logging.getLogger(SERVER_LOGGER)

DEFAULT_INCLUDES = ("*.py",)
DEFAULT_EXCLUDES = (".*", ".py[cod]", ".sw.*", "~*")


@dataclasses.dataclass(frozen=True)
class ReloadOptions:
    dirs: tuple[Path, ...]
    includes: tuple[str, ...]
    excludes: tuple[str, ...]
    exclude_dirs: tuple[Path, ...]
    delay: float

    @classmethod
    def from_flags(
        cls, dirs: Iterable[str], includes: Iterable[str], excludes: Iterable[str], delay: float
    ) -> ReloadOptions:
        """The options of ``--reload-dir/-include/-exclude/-delay`` (each flag repeatable)."""
        given_in, given_out = list(includes), list(excludes)
        watched = tuple(Path(d).resolve() for d in dirs) or (Path.cwd(),)
        for directory in watched:
            if not directory.is_dir():
                raise StartupError(f"--reload-dir {directory} is not a directory")
        inside = [p for p in DEFAULT_INCLUDES if p not in given_out] + given_in
        exclude_dirs = tuple(Path(p).resolve() for p in given_out if Path(p).is_dir())
        outside = [p for p in DEFAULT_EXCLUDES if p not in given_in]
        outside += [p for p in given_out if not Path(p).is_dir()]
        if delay < 0:
            raise StartupError(f"--reload-delay must be a number of seconds >= 0, got {delay}")
        return cls(watched, tuple(dict.fromkeys(inside)), tuple(dict.fromkeys(outside)), exclude_dirs, delay)

    def watched(self, path: Path) -> bool:
        """Whether a change to ``path`` restarts the server."""
        if not any(path.match(pattern) for pattern in self.includes):
            return False
        if any(directory in path.parents for directory in self.exclude_dirs):
            return False
        return not any(path.match(pattern) for pattern in self.excludes)


def start_watching(options: ReloadOptions, on_change: Callable[[list[Path]], None]) -> Callable[[], None]:
    """Watches ``options.dirs`` in a background thread and calls ``on_change`` with the changed
    paths that count; returns the function that stops it."""
    try:
        from watchfiles import watch
    except ImportError:
        raise StartupError(
            "--reload needs watchfiles: pip install 'fastrapi-compat[standard]' (or watchfiles)"
        ) from None
    stop = threading.Event()

    def run() -> None:
        for changes in watch(*options.dirs, stop_event=stop, ignore_permission_denied=True, yield_on_timeout=False):
            paths = sorted({Path(path) for _, path in changes if options.watched(Path(path))})
            if paths:
                on_change(paths)
            if stop.wait(options.delay):
                return

    names = ", ".join(f"'{d}'" for d in options.dirs)
    logger.info("Will watch for changes in these directories: [%s]", names)
    watcher = threading.Thread(target=run, name="fastrapi-reload", daemon=True)
    watcher.start()

    def stop_watching() -> None:
        stop.set()
        watcher.join(5)

    return stop_watching
