"""Holds the served detector and swaps it for a newly promoted one without dropping requests.

A request takes a reference to the current detector once and uses it to the end; a reload
builds the new detector completely before replacing the reference, so in-flight requests
finish on the old model and new ones start on the new model. No request waits for a load.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from wmstudio.registry import Registry, RegistryError
from wmstudio.runtime import Detector

log = logging.getLogger(__name__)


class ModelHolder:
    def __init__(self, registry: Registry | Path, threads: int = 2) -> None:
        self.registry = registry if isinstance(registry, Registry) else Registry(registry)
        self.threads = threads
        self._detector: Detector | None = None
        self._stamp: float | None = None
        self._lock = threading.Lock()
        self.last_error: str | None = None

    @property
    def detector(self) -> Detector | None:
        return self._detector

    def load(self) -> bool:
        """(Re)load the champion; returns True when the served version changed."""
        with self._lock:
            stamp = self.registry.stamp()
            try:
                folder = self.registry.champion_path()
                if self._detector is not None and self._detector.version == folder.name:
                    self._stamp = stamp
                    return False
                detector = Detector.from_version_dir(folder, self.threads)
            except (RegistryError, OSError, ValueError, KeyError) as exc:
                self.last_error = str(exc)
                log.error("model load failed: %s", exc)
                return False
            previous = self._detector.version if self._detector else None
            self._detector = detector
            self._stamp = stamp
            self.last_error = None
            log.info("serving model %s (was %s)", detector.version, previous)
            return True

    def reload_if_promoted(self) -> bool:
        """Cheap check of the registry file; reload only when it changed."""
        if self.registry.stamp() == self._stamp:
            return False
        return self.load()
