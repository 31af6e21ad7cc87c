"""A Lava process whose model raises on purpose, to test the watchdog.

Lava's model discovery imports every .py file in this folder, so nothing
here may act at import time.
"""
from lava.magma.core.process.ports.ports import OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class Faulty(AbstractProcess):
    """Sends zeros; at step ``fail_at`` its model raises ``ValueError``.

    ``before_send=True`` raises before this step's output is sent, which makes
    Lava hang; otherwise Lava reports the failure after the step.
    """

    def __init__(self, shape=(1,), fail_at=2, before_send=True, **kwargs):
        super().__init__(fail_at=fail_at, before_send=before_send, **kwargs)
        self.s_out = OutPort(shape=shape)
        self.count = Var(shape=(1,), init=0)
