"""The control plane behind `reconciler serve`: git in, xDS and the HTTP API out.

Start with server.py (the assembly); decide.py holds every decision of the serve loop as a
pure function, loop.py and rollback.py carry them out, grpc_setup.py and proxy_events.py are
the xDS side, watch.py and renewal.py the timers.
"""

from reconciler.controlplane.server import ControlPlane
from reconciler.controlplane.settings import ServeSettings, SetupError
from reconciler.source.refs import APPLIED_REF, PIN_REF
from reconciler.xds.registration import DATAPLANE_METADATA_KEY

__all__ = ["ServeSettings", "ControlPlane", "SetupError", "APPLIED_REF", "PIN_REF", "DATAPLANE_METADATA_KEY"]
