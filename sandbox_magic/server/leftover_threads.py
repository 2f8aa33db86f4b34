"""Stopping the Python threads a run left running (confined Python kernels).

Before each cell IPython fires ``pre_run_cell``; a hook installed by `WATCH_CODE`
notes the threads alive then. After the run, `STOP_CODE` raises ``SystemExit`` in
every thread started since, except the kernel's own machinery. That stops a thread
looping in Python at its next bytecode; one blocked inside C code (a long
``time.sleep``) stops when the call returns. Both pieces run as silent executions
and leave no names in the user's namespace.
"""

from __future__ import annotations

from typing import Final

__all__ = ["STOP_CODE", "WATCH_CODE"]

_WATCH: Final = """
import threading
from IPython import get_ipython
shell = get_ipython()
if shell is not None and not getattr(shell, '_sbm_watching_threads', False):
    def note_threads(*args, shell=shell):
        shell._sbm_threads = {t.ident for t in threading.enumerate()}
    shell.events.register('pre_run_cell', note_threads)
    shell._sbm_watching_threads = True
"""

_STOP: Final = """
import ctypes, threading
from IPython import get_ipython
before = getattr(get_ipython(), '_sbm_threads', None)
machinery = ('ipykernel', 'zmq', 'IPython', 'jupyter_client', 'comm', 'traitlets')
if before is not None:
    for thread in threading.enumerate():
        if (thread.ident in before or thread is threading.current_thread()
                or isinstance(thread, threading._DummyThread)
                or type(thread).__module__.startswith(machinery)):
            continue
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident), ctypes.py_object(SystemExit))
"""

#: Installs the hook (once per kernel process).
WATCH_CODE: Final = f"exec({_WATCH!r}, {{}})"
#: Stops the threads started since the last cell began.
STOP_CODE: Final = f"exec({_STOP!r}, {{}})"
