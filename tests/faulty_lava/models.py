import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from faulty_lava.process import Faulty

MESSAGE = "faulty model exploded at step {}"


@implements(proc=Faulty, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFaultyModel(PyLoihiProcessModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    count: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def run_spk(self):
        fail = self.time_step == self.proc_params["fail_at"]
        if fail and self.proc_params["before_send"]:
            raise ValueError(MESSAGE.format(self.time_step))
        self.s_out.send(np.zeros(self.s_out.shape, np.int32))
        self.count += 1
        if fail:
            raise ValueError(MESSAGE.format(self.time_step))
