"""Stopping what a run left running, from inside a confined Python kernel.

`WATCH_CODE` installs two IPython hooks (once per kernel process). Before each cell
``pre_run_cell`` notes the threads alive then; after it ``post_run_cell`` raises
``SystemExit`` in every thread started since, except the kernel's own machinery. That
stops a thread looping in Python at its next bytecode; one blocked inside C code (a
long ``time.sleep``) stops when the call returns. It then kills every other process
of the kernel's pid namespace (its own: only bwrap's init, pid 1, is not the code's)
and reaps its children. Running in the cell's own execution, after the code and
before the reply, this costs the run no second round trip to the kernel; silent
executions (the server's own) fire neither hook. `KEEP_NEXT_CODE`, run silently just
before a run asked to keep its processes, spares that one run's leftovers.
"""

from __future__ import annotations

from typing import Final

__all__ = ["KEEP_NEXT_CODE", "WATCH_CODE"]

_WATCH: Final = """
import threading
from IPython import get_ipython
shell = get_ipython()
if shell is not None and not getattr(shell, '_sbm_watching_threads', False):
    def note_threads(*args, shell=shell):
        shell._sbm_threads = {t.ident for t in threading.enumerate()}
    def stop_leftovers(*args, shell=shell, code=compile(STOP, '<stop leftovers>', 'exec')):
        if getattr(shell, '_sbm_keep_next', False):
            shell._sbm_keep_next = False
        else:
            exec(code, {'before': getattr(shell, '_sbm_threads', None)})
    shell.events.register('pre_run_cell', note_threads)
    shell.events.register('post_run_cell', stop_leftovers)
    shell._sbm_watching_threads = True
"""

_STOP: Final = """
import ctypes, threading
machinery = ('ipykernel', 'zmq', 'IPython', 'jupyter_client', 'comm', 'traitlets')
if before is not None:
    for thread in threading.enumerate():
        if (thread.ident in before or thread is threading.current_thread()
                or isinstance(thread, threading._DummyThread)
                or type(thread).__module__.startswith(machinery)):
            continue
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident), ctypes.py_object(SystemExit))
import os, signal
me = os.getpid()
for _ in range(3):
    others = []
    for name in os.listdir('/proc'):
        if name.isdigit() and int(name) not in (1, me):
            try:
                with open(f'/proc/{name}/stat') as stat:
                    if stat.read().rsplit(')', 1)[1].split()[0] != 'Z':
                        others.append(int(name))
            except OSError:
                pass
    for pid in others:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
    if not others:
        break
"""

#: Installs the hooks (once per kernel process).
WATCH_CODE: Final = f"exec({_WATCH!r}, {{'STOP': {_STOP!r}}})"
#: Spares the leftovers of the next cell only.
KEEP_NEXT_CODE: Final = "__import__('IPython').get_ipython()._sbm_keep_next = True"
