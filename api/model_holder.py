"""Holds the served detector and swaps it for a newly promoted one without dropping requests.

A request takes a reference to the current detector once and uses it to the end; a reload
builds the new detector completely (and runs it once) before replacing the reference, so
in-flight requests finish on the old model and new ones start on the new model. No request
waits for a load. A champion that cannot be loaded or run (a corrupt ``model.onnx``, a broken
card) is logged and reported, and the old model keeps serving.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from wmstudio.registry import Registry, RegistryError
from wmstudio.runtime import Detector
from wmstudio.runtime.detector import ModelLoadError

log = logging.getLogger(__name__)

# Everything a broken version folder can raise while it is read and loaded.
LOAD_ERRORS = (RegistryError, ModelLoadError, OSError, ValueError, KeyError, TypeError, json.JSONDecodeError)


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
        """(Re)load the champion; returns True when the served version changed.

        On failure the served detector is left as it was and ``last_error`` says why; the
        registry stamp is still recorded, so the poller does not retry the same broken file
        every few seconds (a new promotion or ``POST /v1/model/reload`` tries again).
        """
        with self._lock:
            stamp = self.registry.stamp()
            try:
                folder = self.registry.champion_path()
                if self._detector is not None and self._detector.version == folder.name:
                    self._stamp = stamp
                    self.last_error = None
                    return False
                detector = Detector.from_version_dir(folder, self.threads)
                detector.self_check()
            except LOAD_ERRORS as exc:
                self._stamp = stamp
                self.last_error = str(exc)
                serving = self._detector.version if self._detector else "nothing"
                log.error("model load failed, still serving %s: %s", serving, exc)
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
