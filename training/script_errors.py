"""One way for the ``python -m training.*``/``experiments.*`` scripts to turn a user's mistake into a message.

An unknown model version or missing datasets is a typo or a skipped step, not a bug: the
person running the script needs one line saying what to do, not a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from wmstudio.registry import RegistryError

USER_ERRORS = (FileNotFoundError, RegistryError)

Result = TypeVar("Result")
Params = ParamSpec("Params")


def exit_on_user_error(main: Callable[Params, Result]) -> Callable[Params, Result]:
    """Run a script's ``main``; a user error ends it with its message and exit status 1."""

    @functools.wraps(main)
    def guarded(*args: Params.args, **kwargs: Params.kwargs) -> Result:
        try:
            return main(*args, **kwargs)
        except USER_ERRORS as exc:
            raise SystemExit(str(exc)) from None

    return guarded
