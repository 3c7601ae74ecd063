"""The one place that knows whether an invocation is a cold start.

Lambda tells the runtime how its execution environment was initialised through
``AWS_LAMBDA_INITIALIZATION_TYPE``:

``on-demand`` (or unset, as under the emulator)
    The init phase ran because a request arrived and found no warm environment: the first
    invocation in the process waited for it. That invocation is the cold start.
``provisioned-concurrency``, ``snap-start``, and any other value (managed instances, ...)
    The init phase ran ahead of any request (or, for SnapStart, when the version was
    published; the environment is restored from a snapshot). No request waited for the init,
    so no invocation is reported as a cold start — this is Powertools' rule too. The first
    invocation is still flagged as ``first_invocation``, and with SnapStart as ``restored``.

Init is measured from the process start (``/proc/self/stat``, clock-tick resolution) — the
moment the runtime launched the interpreter — or, where that cannot be read, from
``import lambdaslim.bootstrap`` (else from the first use of the decorator). Only standard-library modules are imported here.
"""

from __future__ import annotations

import os
import sys
import threading
import time

ON_DEMAND = "on-demand"
PROVISIONED = "provisioned-concurrency"
SNAP_START = "snap-start"


def _process_start_monotonic() -> tuple[float, str]:
    """This process's start on the ``time.monotonic()`` scale, and where it was read from."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            stat = fh.read()
        # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
        fields = stat[stat.rindex(b")") + 2 :].split()
        start_ticks = int(fields[19])  # field 22 overall: starttime, clock ticks after boot
        ticks = os.sysconf("SC_CLK_TCK")
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / ticks
        if 0 <= age < 7 * 24 * 3600:
            return time.monotonic() - age, "process"
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    imported = getattr(sys.modules.get("lambdaslim.bootstrap"), "imported_at", None)
    if isinstance(imported, float):
        return imported, "import"
    return time.monotonic(), "import"


class ColdStart:
    """Process-wide state: when init began, whether an invocation has happened yet.

    ``begin()`` is called at the top of every decorated invocation; the first call in the
    process returns ``first=True``. After a SnapStart restore :meth:`restored` resets the
    first-call flag so the first invocation after a restore is reported as ``restored``.
    """

    def __init__(self) -> None:
        self.init_start, self.init_start_source = _process_start_monotonic()
        self._lock = threading.Lock()
        self._invoked = False
        self._restored_at: float | None = None
        self.first_call_at: float | None = None
        self.decorated_at: float | None = None  # about the end of the handler module's import

    @staticmethod
    def init_type() -> str:
        """``AWS_LAMBDA_INITIALIZATION_TYPE``, ``on-demand`` when unset."""
        return os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") or ON_DEMAND

    def begin(self, now: float) -> bool:
        """Mark an invocation as started at ``now``; True for the first one in the process."""
        if self._invoked:
            return False
        with self._lock:
            if self._invoked:
                return False
            self._invoked = True
            self.first_call_at = now
            return True

    def is_cold(self, first: bool) -> bool:
        """Whether an invocation (``first`` from :meth:`begin`) waited for the init phase."""
        return first and self._restored_at is None and self.init_type() == ON_DEMAND

    def mark_decorated(self) -> None:
        """A handler was decorated: the init code is (nearly) done."""
        if not self._invoked:
            self.decorated_at = time.monotonic()

    def idle_seconds(self) -> float | None:
        """From the end of the init code to the first call: near zero when a request was
        waiting for the init (a true cold start), large when Lambda initialised the
        environment ahead of any request (proactive initialisation)."""
        if self.first_call_at is None or self.decorated_at is None:
            return None
        return max(0.0, self.first_call_at - self.decorated_at)

    def init_seconds(self) -> float | None:
        """Seconds from process start (or restore) to the first invocation, once known."""
        if self.first_call_at is None:
            return None
        start = self._restored_at if self._restored_at is not None else self.init_start
        return max(0.0, self.first_call_at - start)

    @property
    def restored(self) -> bool:
        return self._restored_at is not None

    def restored_now(self) -> None:
        """SnapStart after-restore hook: the next invocation is the first of a new sandbox."""
        with self._lock:
            self._restored_at = time.monotonic()
            self._invoked = False
            self.first_call_at = None


STATE = ColdStart()

