"""TensorBoard scalars of the training steps and the GCN, written in the calling thread.

tensorboardX's ``SummaryWriter`` writes from a background thread: on a full disk that thread
dies with a traceback naming neither the disk nor the file, and the next ``add_scalar`` waits
forever on its full queue.  Here each event is appended by the caller (tensorboardX's own
synchronous ``EventsWriter``), so a full disk is an :class:`wsgcn.infra.io.EnvironmentFault` naming
the folder, raised where the step can stop.  The file name ends with the process id, so two
runs (or two processes) never write the same file, even when started in the same second.
"""
import itertools
import os
import time
from pathlib import Path

from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto.event_pb2 import Event
from tensorboardX.summary import scalar

from wsgcn.infra.io import environment_faults, make_folder

FLUSH_SECONDS = 30  # a flush syncs the file to disk: not after every scalar
_SERIAL = itertools.count()  # several logs of one process in one second (a run started twice in-process)


class ScalarLog:
    """``add_scalar(tag, value, step)`` and ``close()`` into ``log_dir/events.out.tfevents.<time>.<host>.<pid>.<n>``."""

    def __init__(self, log_dir):
        self.log_dir = Path(log_dir)
        with environment_faults(self.log_dir):
            make_folder(self.log_dir)
            self._events = EventsWriter(str(self.log_dir / "events"), filename_suffix=f".{os.getpid()}.{next(_SERIAL)}")
        self._flushed = time.monotonic()

    def add_scalar(self, tag, value, step):
        with environment_faults(self.log_dir):
            self._events.write_event(Event(wall_time=time.time(), step=int(step), summary=scalar(tag, float(value))))
            if time.monotonic() - self._flushed > FLUSH_SECONDS:
                self._events.flush()
                self._flushed = time.monotonic()

    def close(self):
        with environment_faults(self.log_dir):
            self._events.close()

