"""The cyclic garbage collector, paused while the runtime's start builds what outlives it.

Importing the runtime and loading a model make ~200,000 objects that live as long as the
process: numba's typing and target registries (1,200 classes among them, slow to traverse),
onnx's descriptors, the kernels' dispatchers. As young objects, CPython's collector scans them
over and over while the heap grows; at its last full collection it walks them all. That was
90-100 ms of a 0.5 s warm start, and none of them is garbage. So the collector is paused while
they are made; then they join the oldest generation at once (``gc.freeze`` then
``gc.unfreeze``: list splices, no scan), where a later full collection looks at them once.

Compiling is different: numba's compiler makes garbage by the megabyte, so a compile ends
the pause (numba announces each with its ``numba:compile`` event). A process that froze
objects itself (before forking, say) keeps its own collector settings.
"""

import gc
from contextlib import contextmanager
from functools import cache


@cache
def _resume_on_compile():
    """A numba event listener that lets the collector run again when a compile starts (numba is
    imported here, inside the pause, so that its own import is paused too)."""
    from numba.core import event

    class ResumeOnCompile(event.Listener):
        def on_start(self, ev) -> None:
            if not gc.isenabled():  # the first compile: what exists now stays out of its scans
                gc.freeze()
                gc.enable()

        def on_end(self, ev) -> None:
            pass

    return ResumeOnCompile()


@contextmanager
def paused_for_long_lived_objects():
    """Run the block with the collector paused (see the module), unless it is off already or
    the process froze objects of its own."""
    if not gc.isenabled() or gc.get_freeze_count():
        yield
        return
    gc.disable()
    listening = False
    try:
        from numba.core import event

        event.register("numba:compile", _resume_on_compile())
        listening = True
        yield
    finally:
        if listening:
            event.unregister("numba:compile", _resume_on_compile())
        gc.freeze()
        gc.unfreeze()
        gc.enable()
